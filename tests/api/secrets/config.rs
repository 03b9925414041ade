//! `Debug` of the configuration and of the objects built from it.

use payment_service::config::Settings;

use super::scan::leaks;
use base64::Engine as _;

use super::{
    API_KEY_ONE, API_KEY_TWO, BILLING_KEY, ENCRYPTION_KEY_BYTES, TOSS_BILLING_SECRET, TOSS_SECRET,
};
use crate::helpers::init_process;

#[test]
fn debug_output_of_the_configuration_holds_no_secret() {
    init_process();
    let mut settings = Settings::defaults();
    settings.toss.secret_key = Some(TOSS_SECRET.into());
    settings.toss.billing_secret_key = Some(TOSS_BILLING_SECRET.into());
    let encryption_key = base64::engine::general_purpose::STANDARD.encode(ENCRYPTION_KEY_BYTES);
    settings.billing.encryption_key = Some(encryption_key.clone().into());
    settings.auth.api_keys = vec![API_KEY_ONE.into(), API_KEY_TWO.into()];
    settings.database.url = Some("postgres://payments:dbpass_SECRETSCAN@127.0.0.1/payments".into());
    settings.nats.url = Some("nats://relay:natspass_SECRETSCAN@127.0.0.1:4222".into());
    let client =
        payment_service::gateway::TossClient::new(settings.toss.client(&TOSS_SECRET.into()))
            .expect("a Toss client");
    let keys = payment_service::http::ApiKeys::new(&settings.auth.api_keys);
    let cipher = payment_service::crypto::BillingKeyCipher::from_base64(&encryption_key)
        .expect("a 32-byte key");
    let billing_key = payment_service::domain::BillingKeySecret::new(BILLING_KEY.to_owned());
    let ciphertext = cipher.encrypt(payment_service::domain::BillingKeyId::new(), &billing_key);

    let shown = [
        ("Settings {:?}", format!("{settings:?}")),
        ("Settings {:#?}", format!("{settings:#?}")),
        ("TossSettings", format!("{:?}", settings.toss)),
        ("AuthSettings", format!("{:?}", settings.auth)),
        ("DatabaseSettings", format!("{:?}", settings.database)),
        ("NatsSettings", format!("{:?}", settings.nats)),
        ("TossClient", format!("{client:?}")),
        ("ApiKeys", format!("{keys:?}")),
        ("BillingSettings", format!("{:?}", settings.billing)),
        ("BillingKeyCipher", format!("{cipher:?}")),
        ("BillingKeySecret", format!("{billing_key:?}")),
        ("the stored ciphertext", ciphertext),
    ];
    let found: Vec<String> = shown
        .iter()
        .flat_map(|(place, text)| leaks(text, place))
        .collect();
    assert!(
        found.is_empty(),
        "secrets in Debug output:\n{}",
        found.join("\n")
    );
    assert!(
        shown[0].1.contains("api.tosspayments.com"),
        "the Debug output still shows the settings: {}",
        shown[0].1
    );
}

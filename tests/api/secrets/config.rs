//! `Debug` of the configuration and of the objects built from it.

use payment_service::config::Settings;

use super::scan::leaks;
use super::{API_KEY_ONE, API_KEY_TWO, TOSS_SECRET};
use crate::helpers::init_process;

#[test]
fn debug_output_of_the_configuration_holds_no_secret() {
    init_process();
    let mut settings = Settings::defaults();
    settings.toss.secret_key = Some(TOSS_SECRET.into());
    settings.auth.api_keys = vec![API_KEY_ONE.into(), API_KEY_TWO.into()];
    settings.database.url = Some("postgres://payments:dbpass_SECRETSCAN@127.0.0.1/payments".into());
    settings.nats.url = Some("nats://relay:natspass_SECRETSCAN@127.0.0.1:4222".into());
    let client =
        payment_service::gateway::TossClient::new(payment_service::gateway::TossSettings {
            api_url: "https://api.tosspayments.com".to_owned(),
            secret_key: TOSS_SECRET.into(),
            timeouts: settings.toss.timeouts(),
        })
        .expect("a Toss client");
    let keys = payment_service::http::ApiKeys::new(&settings.auth.api_keys);

    let shown = [
        ("Settings {:?}", format!("{settings:?}")),
        ("Settings {:#?}", format!("{settings:#?}")),
        ("TossConfig", format!("{:?}", settings.toss)),
        ("AuthSettings", format!("{:?}", settings.auth)),
        ("DatabaseSettings", format!("{:?}", settings.database)),
        ("NatsSettings", format!("{:?}", settings.nats)),
        ("TossClient", format!("{client:?}")),
        ("ApiKeys", format!("{keys:?}")),
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

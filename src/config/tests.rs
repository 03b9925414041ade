use super::*;

#[test]
fn defaults_parse() {
    let settings = Settings::defaults();
    assert_eq!(settings.server.bind_addr, "127.0.0.1:8080");
    assert!(settings.toss.secret_key.is_none());
    assert!(settings.toss.read_timeout_secs >= 60);
    assert_eq!(settings.idempotency.ttl_secs, 86_400);
    assert_eq!(settings.database.backend_name(), "sqlite");
    assert!(settings.nats.url().is_none());
    assert_eq!(settings.nats.subject_prefix, "");
    assert_eq!(settings.nats.interval_ms, 500);
    assert_eq!(settings.nats.batch_size, 100);
    assert_eq!(settings.server.header_read_timeout_secs, 30);
    assert!(settings.limits.trusted_proxies.is_empty());
    assert_eq!(settings.limits.trusted_proxy_networks(), Ok(Vec::new()));
    assert_eq!(settings.limits.max_concurrent_requests, 1024);
    assert_eq!(settings.webhooks.retention_secs, 7 * 86_400);
}

#[test]
fn trusted_proxies_are_networks_and_the_old_switch_is_refused() {
    let mut limits = Settings::defaults().limits;
    limits.trusted_proxies = vec![
        "10.0.0.0/8".to_owned(),
        " 192.0.2.7 ".to_owned(),
        "fd00::/8".to_owned(),
        "10.1.2.3/16".to_owned(),
    ];
    let networks: Vec<String> = limits
        .trusted_proxy_networks()
        .unwrap()
        .iter()
        .map(ToString::to_string)
        .collect();
    assert_eq!(
        networks,
        ["10.0.0.0/8", "192.0.2.7/32", "fd00::/8", "10.1.0.0/16"]
    );
    limits.trusted_proxies = vec!["10.0.0.0/33".to_owned()];
    let error = limits.trusted_proxy_networks().unwrap_err();
    assert!(error.contains("limits.trusted_proxies") && error.contains("10.0.0.0/33"));
    limits.trusted_proxies = Vec::new();
    limits.trust_forwarded_for = true;
    let error = limits.trusted_proxy_networks().unwrap_err();
    assert!(
        error.contains("trust_forwarded_for") && error.contains("trusted_proxies"),
        "{error}"
    );
}

#[test]
fn trusted_proxies_come_from_a_comma_separated_variable() {
    // The binary's loader, with the list as the environment gives it.
    let settings = Config::builder()
        .add_source(File::from_str(DEFAULTS, FileFormat::Toml))
        .add_source(
            environment().source(Some(
                [(
                    "APP_LIMITS__TRUSTED_PROXIES".to_owned(),
                    "10.0.0.0/8,fd00::/8".to_owned(),
                )]
                .into(),
            )),
        )
        .build()
        .and_then(Config::try_deserialize::<Settings>)
        .unwrap();
    assert_eq!(settings.limits.trusted_proxies, ["10.0.0.0/8", "fd00::/8"]);
}

#[test]
fn nats_url_is_logged_without_credentials() {
    let mut settings = Settings::defaults();
    settings.nats.url =
        Some("nats://relay:nats-password@10.0.0.1:4222, tls://tok3n@nats.internal".into());
    let logged = settings.nats.url_for_logs().unwrap();
    assert_eq!(logged, "nats://10.0.0.1:4222,tls://nats.internal");
    settings.nats.url = Some("127.0.0.1:4222".into());
    assert_eq!(
        settings.nats.url_for_logs().unwrap(),
        "nats://127.0.0.1:4222"
    );
    settings.nats.url = Some("nats://u:nats-password@h:4222".into());
    assert!(!format!("{settings:?}").contains("nats-password"));
}

fn production() -> Settings {
    let mut settings = Settings::defaults();
    settings.env = "production".to_owned();
    settings.toss.secret_key = Some("live_sk_x".into());
    settings.billing.encryption_key = Some("k".into());
    settings
}

#[test]
fn production_refuses_what_is_missing_or_unsafe_in_one_line() {
    assert_eq!(Settings::defaults().check_production(false), Ok(()));
    assert!(!Settings::defaults().is_production());
    let settings = production();
    assert!(settings.is_production());
    assert_eq!(settings.check_production(true), Ok(()));
    let why = settings.check_production(false).unwrap_err();
    assert!(why.contains("no API key"), "{why}");
    let mut settings = production();
    settings.toss.secret_key = Some("  ".into());
    let why = settings.check_production(true).unwrap_err();
    assert!(why.contains("TOSS_SECRET_KEY is not set"), "{why}");
    let mut settings = production();
    settings.billing.encryption_key = None;
    let why = settings.check_production(true).unwrap_err();
    assert!(
        why.contains("BILLING_KEY_ENCRYPTION_KEY is not set"),
        "{why}"
    );
    for (url, safe) in [
        ("https://api.tosspayments.com", true),
        ("http://127.0.0.1:9000", true),
        ("http://localhost:9000/", true),
        ("http://[::1]:9000", true),
        ("http://api.tosspayments.com", false),
        ("http://10.0.0.5:8080", false),
        ("http://127.0.0.1.example.com", false),
        ("ftp://api.tosspayments.com", false),
        ("not a url", false),
    ] {
        let mut settings = production();
        settings.toss.api_url = url.to_owned();
        let result = settings.check_production(true);
        assert_eq!(result.is_ok(), safe, "{url}: {result:?}");
        if let Err(why) = result {
            assert!(why.contains("TOSS_API_URL"), "{why}");
            assert!(!why.contains('\n'));
        }
    }
    let mut settings = Settings::defaults();
    settings.toss.api_url = "http://api.tosspayments.com".to_owned();
    assert_eq!(
        settings.check_production(false),
        Ok(()),
        "outside production"
    );
}

#[test]
fn debug_never_shows_secrets() {
    let mut settings = Settings::defaults();
    settings.toss.secret_key = Some("test_sk_secret_value".into());
    settings.toss.billing_secret_key = Some("test_sk_billing_value".into());
    settings.billing.encryption_key = Some("encryption-key-value".into());
    settings.auth.api_keys = vec!["api-key-secret-value".into()];
    settings.database.url = Some("postgres://u:db-password@h/db".into());
    let text = format!("{settings:?}");
    assert!(!text.contains("test_sk_secret_value"));
    assert!(!text.contains("test_sk_billing_value"));
    assert!(!text.contains("encryption-key-value"));
    assert!(!text.contains("api-key-secret-value"));
    assert!(!text.contains("db-password"));
    assert!(
        text.contains("postgres"),
        "backend is still visible: {text}"
    );
}

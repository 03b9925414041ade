//! The committed `openapi/openapi.json` must be what the code generates.
//! Regenerate with `UPDATE_OPENAPI=1 cargo test --test api openapi`.

use crate::helpers::{Backend, spawn_app};

const COMMITTED: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/openapi/openapi.json");

#[test]
fn committed_openapi_is_current() {
    let generated = serde_json::to_string_pretty(&payment_service::http::openapi()).unwrap() + "\n";
    if std::env::var("UPDATE_OPENAPI").is_ok() {
        std::fs::write(COMMITTED, &generated).unwrap();
    }
    let committed = std::fs::read_to_string(COMMITTED).unwrap_or_default();
    assert!(
        committed == generated,
        "openapi/openapi.json is stale: run `UPDATE_OPENAPI=1 cargo test --test api openapi` and commit it"
    );
}

#[test]
fn every_route_is_documented() {
    let doc = serde_json::to_value(payment_service::http::openapi()).unwrap();
    let paths = doc["paths"].as_object().unwrap();
    for (route, verb) in [
        ("/payments", "post"),
        ("/payments", "get"),
        ("/payments/{payment_id}", "get"),
        ("/payments/confirm", "post"),
        ("/payments/{payment_id}/refund", "post"),
        ("/payments/{payment_id}/refunds", "get"),
        ("/payments/toss/success", "get"),
        ("/payments/toss/fail", "get"),
        ("/events", "get"),
        ("/webhooks/toss", "post"),
        ("/health", "get"),
        ("/ready", "get"),
    ] {
        let operation = &paths[route][verb];
        assert!(operation.is_object(), "{verb} {route} is not documented");
        assert!(
            operation["responses"]
                .as_object()
                .is_some_and(|r| !r.is_empty())
        );
    }
    assert_eq!(
        doc["components"]["securitySchemes"]["api_key"]["scheme"],
        "bearer"
    );
}

#[tokio::test]
async fn served_openapi_and_swagger_ui() {
    let app = spawn_app(Backend::Sqlite).await;
    let served = app.get_public("/openapi.json").await;
    assert_eq!(served.status, 200);
    assert_eq!(
        served.body,
        serde_json::to_value(payment_service::http::openapi()).unwrap()
    );
    let ui = app
        .client
        .get(format!("{}/swagger-ui/", app.address))
        .send()
        .await
        .unwrap();
    assert_eq!(ui.status(), 200);
    assert!(ui.text().await.unwrap().contains("swagger-ui"));
    let config = app
        .client
        .get(format!("{}/swagger-ui/swagger-initializer.js", app.address))
        .send()
        .await
        .unwrap();
    assert_eq!(config.status(), 200);
    assert!(config.text().await.unwrap().contains("/openapi.json"));
    app.stop().await;
}

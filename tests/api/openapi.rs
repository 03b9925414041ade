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
        ("/payments/{payment_id}/attempts", "get"),
        ("/payments/{payment_id}/events", "get"),
        ("/payments/toss/success", "get"),
        ("/payments/toss/fail", "get"),
        ("/events", "get"),
        ("/webhooks/toss", "post"),
        ("/health", "get"),
        ("/ready", "get"),
        ("/billing/customers", "post"),
        ("/billing-keys", "post"),
        ("/billing-keys", "get"),
        ("/billing-keys/{billing_key_id}", "get"),
        ("/billing-keys/{billing_key_id}", "delete"),
        ("/billing/toss/success", "get"),
        ("/billing/toss/fail", "get"),
        ("/payments/{payment_id}/charge", "post"),
        ("/payments/{payment_id}/schedule", "post"),
        ("/payments/{payment_id}/schedule", "delete"),
        ("/billing/consents", "post"),
        ("/billing/consents", "get"),
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

/// Anonymous callers' answers (the public confirm, the success redirect) are documented as the
/// public view of a payment, which has no `user_id`, `subscription_id` or `schedule` and no
/// other field;
/// the fail redirect's as its own view of three fields.
#[test]
fn anonymous_answers_are_documented_as_public_payments() {
    let doc = serde_json::to_value(payment_service::http::openapi()).unwrap();
    let schemas = &doc["components"]["schemas"];
    let public = &schemas["PublicPaymentDto"];
    let properties = public["properties"].as_object().expect("PublicPaymentDto");
    assert!(!properties.contains_key("user_id") && !properties.contains_key("subscription_id"));
    // Nor the subscription's schedule (its billing key, its retries).
    assert!(!properties.contains_key("schedule"));
    assert_eq!(public["additionalProperties"], false);
    let full = schemas["PaymentDto"]["properties"].as_object().unwrap();
    let mut expected: Vec<&String> = full
        .keys()
        .filter(|k| *k != "user_id" && *k != "subscription_id" && *k != "schedule")
        .collect();
    let mut shown: Vec<&String> = properties.keys().collect();
    expected.sort();
    shown.sort();
    assert_eq!(shown, expected, "everything else of the payment is shown");

    let body = |path: &str, verb: &str, status: &str| {
        doc["paths"][path][verb]["responses"][status]["content"]["application/json"]["schema"]
            .clone()
    };
    let public_ref = serde_json::json!({"$ref": "#/components/schemas/PublicPaymentDto"});
    assert_eq!(body("/payments/toss/success", "get", "200"), public_ref);
    assert_eq!(body("/payments/toss/success", "get", "202"), public_ref);
    // The fail redirect, which anyone with an order id can call, shows the order, its status
    // and its failure, and nothing else.
    assert_eq!(
        body("/payments/toss/fail", "get", "200"),
        serde_json::json!({"$ref": "#/components/schemas/PaymentFailViewDto"})
    );
    let fail_view = &schemas["PaymentFailViewDto"];
    let mut fail_fields: Vec<&String> = fail_view["properties"]
        .as_object()
        .expect("PaymentFailViewDto")
        .keys()
        .collect();
    fail_fields.sort();
    assert_eq!(fail_fields, ["failure", "order_id", "status"]);
    assert_eq!(fail_view["additionalProperties"], false);
    for status in ["200", "202"] {
        let schema = body("/payments/confirm", "post", status);
        let name = schema["$ref"].as_str().expect("a named schema");
        let one_of = &schemas[name.trim_start_matches("#/components/schemas/")]["oneOf"];
        let refs: Vec<&str> = one_of
            .as_array()
            .expect("oneOf")
            .iter()
            .filter_map(|s| s["$ref"].as_str())
            .collect();
        assert_eq!(
            refs,
            [
                "#/components/schemas/PaymentDto",
                "#/components/schemas/PublicPaymentDto"
            ],
            "confirm {status}"
        );
    }
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

/// The document keeps one schema per name: two types registered under one name (two
/// `CardDto`s once) would document one of them as the other. Each name stands for one schema.
#[test]
fn no_two_schemas_share_a_name() {
    let mut seen = std::collections::BTreeMap::new();
    for (name, schema) in payment_service::http::schema_registrations() {
        let schema = serde_json::to_value(schema).unwrap();
        if let Some(first) = seen.insert(name.clone(), schema.clone()) {
            assert_eq!(first, schema, "two schemas are named {name}");
        }
    }
    assert!(seen.contains_key("PaymentDto") && seen.contains_key("BillingKeyDto"));
}

/// What the layers answer is documented on every route they guard: each POST that reads a JSON
/// body (all but the webhook) has the `Idempotency-Key` header and its 400, 409, 413, 415 and
/// 422; each path that names an id documents it once, as a UUID, and its 404.
#[test]
fn shared_answers_are_documented_on_every_route_they_guard() {
    let doc = serde_json::to_value(payment_service::http::openapi()).unwrap();
    for (path, item) in doc["paths"].as_object().unwrap() {
        for (verb, operation) in item.as_object().unwrap() {
            let responses = operation["responses"].as_object().unwrap();
            let parameters = operation["parameters"].as_array().cloned();
            let named = |name: &str| -> Vec<serde_json::Value> {
                let all = parameters.iter().flatten();
                all.filter(|p| p["name"] == name).cloned().collect()
            };
            if verb == "post" && path != "/webhooks/toss" {
                assert_eq!(named("Idempotency-Key").len(), 1, "{verb} {path}");
                for status in ["400", "409", "413", "415", "422"] {
                    assert!(responses.contains_key(status), "{verb} {path}: {status}");
                }
            }
            for id in ["payment_id", "billing_key_id", "run_id"] {
                if path.contains(&format!("{{{id}}}")) {
                    let found = named(id);
                    assert_eq!(found.len(), 1, "{verb} {path}: {id}");
                    assert_eq!(found[0]["schema"]["format"], "uuid", "{verb} {path}");
                    assert!(responses.contains_key("404"), "{verb} {path}: 404");
                }
            }
        }
    }
}

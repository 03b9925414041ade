//! Answers carry payment data: none may be stored by a browser or a cache, nor sniffed as
//! another content type (`Cache-Control: no-store`, `X-Content-Type-Options: nosniff`), whatever
//! produced them (a handler, a problem, the router's fallback). Swagger UI may not be framed
//! (`Content-Security-Policy: frame-ancestors 'none'`).

use reqwest::Method;
use serde_json::json;

use crate::helpers::{Backend, Reply, into_reply, spawn_app};
use crate::on_both_databases;

on_both_databases!(answers_with_payment_data_are_not_stored_or_sniffed);

fn assert_not_stored(reply: &Reply, what: &str) {
    assert_eq!(
        reply
            .headers
            .get("cache-control")
            .map(|v| v.to_str().unwrap()),
        Some("no-store"),
        "{what}: {:?}",
        reply.headers
    );
    assert_eq!(
        reply
            .headers
            .get("x-content-type-options")
            .map(|v| v.to_str().unwrap()),
        Some("nosniff"),
        "{what}"
    );
}

async fn answers_with_payment_data_are_not_stored_or_sniffed(backend: Backend) {
    let app = spawn_app(backend).await;
    let created = app
        .post(
            "/payments",
            json!({"user_id": "u-1", "order_id": "order_headers_01", "amount_krw": 2000, "payment_method": "card"}),
        )
        .await;
    assert_not_stored(&created, "create");
    let id = created.body["payment_id"].as_str().unwrap().to_owned();
    app.toss
        .authenticate("pk_headers_01", "order_headers_01", 2000);
    let confirmed = app
        .post_public(
            "/payments/confirm",
            json!({"payment_id": id, "payment_key": "pk_headers_01"}),
        )
        .await;
    assert_eq!(confirmed.status, 200, "{}", confirmed.text);
    assert_not_stored(&confirmed, "public confirm");
    for (path, auth) in [
        (format!("/payments/{id}"), true),
        ("/payments".to_owned(), true),
        (format!("/payments/{id}/refunds"), true),
        ("/events".to_owned(), true),
        (format!("/payments/{id}"), false),
        ("/no/such/route".to_owned(), true),
        (
            "/payments/toss/success?paymentKey=pk_headers_01&orderId=order_headers_01&amount=2000"
                .to_owned(),
            false,
        ),
        ("/openapi.json".to_owned(), false),
    ] {
        let reply = app.request(Method::GET, &path, None, auth).await;
        assert_not_stored(&reply, &format!("GET {path} ({})", reply.status));
        assert!(
            reply.headers.get("content-security-policy").is_none()
                || path.starts_with("/swagger-ui"),
            "{path}"
        );
    }
    let ui = into_reply(
        app.client
            .get(format!("{}/swagger-ui/", app.address))
            .send()
            .await
            .unwrap(),
    )
    .await;
    assert_eq!(ui.status, 200);
    assert_eq!(
        ui.headers["content-security-policy"].to_str().unwrap(),
        "frame-ancestors 'none'"
    );
    assert_eq!(ui.headers["x-frame-options"].to_str().unwrap(), "DENY");
    assert_not_stored(&ui, "swagger ui");
    app.stop().await;
}

//! `POST /payments` bodies.

use reqwest::header::CONTENT_TYPE;
use reqwest::{Method, StatusCode};
use serde_json::{Value, json};

use super::{assert_problem, payment_count, raw_json, request, send, valid_create};
use crate::helpers::{API_KEY, Backend, spawn_app};
use crate::on_both_databases;

on_both_databases!(
    create_refuses_a_positional_json_array,
    create_refuses_malformed_bodies_and_creates_nothing,
    create_refuses_invalid_fields_and_creates_nothing,
    create_accepts_boundary_values,
    markup_in_order_name_round_trips_as_json,
    duplicate_order_id_is_409_and_keeps_the_first,
);

/// `valid_create` with `field` set to `value`.
fn create_with(field: &str, value: Value) -> Value {
    let mut body = valid_create("order_input_0001");
    body[field] = value;
    body
}

fn create_without(field: &str) -> Value {
    let mut body = valid_create("order_input_0001");
    body.as_object_mut().unwrap().remove(field);
    body
}

async fn create_refuses_malformed_bodies_and_creates_nothing(backend: Backend) {
    let app = spawn_app(backend).await;
    app.create_payment("order_existing_1", 1000).await;

    let cases: Vec<(&str, &str, u16)> = vec![
        ("truncated JSON", r#"{"user_id":"#, 400),
        ("not JSON", "user_id=u-1&amount_krw=1", 400),
        ("empty body", "", 400),
        (
            "trailing garbage",
            r#"{"user_id":"u-1","order_id":"order_trail_01","amount_krw":15000,"payment_method":"card"} x"#,
            400,
        ),
        (
            "two objects",
            r#"{"user_id":"u-1","order_id":"order_trail_02","amount_krw":15000,"payment_method":"card"}{}"#,
            400,
        ),
        ("empty array", "[]", 422),
        (
            "array of an object",
            r#"[{"user_id":"u-1","order_id":"order_array_01","amount_krw":15000,"payment_method":"card"}]"#,
            422,
        ),
        ("null", "null", 422),
        ("number", "15000", 422),
        ("string", r#""order""#, 422),
        ("empty object", "{}", 422),
        (
            "duplicated key",
            r#"{"amount_krw":1,"amount_krw":2,"user_id":"u-1","order_id":"order_dupkey_01","payment_method":"card"}"#,
            422,
        ),
    ];
    for (name, body, status) in cases {
        let reply = send(raw_json(&app, "/payments", body)).await;
        assert_eq!(reply.status.as_u16(), status, "{name}: {}", reply.text);
        assert_problem(&reply, status, "VALIDATION_ERROR");
    }

    let valid = valid_create("order_ctype_0001").to_string();
    let text_plain = send(
        request(&app, Method::POST, "/payments")
            .bearer_auth(API_KEY)
            .header(CONTENT_TYPE, "text/plain")
            .body(valid.clone()),
    )
    .await;
    assert_problem(&text_plain, 415, "UNSUPPORTED_MEDIA_TYPE");
    let form = send(
        request(&app, Method::POST, "/payments")
            .bearer_auth(API_KEY)
            .header(CONTENT_TYPE, "application/x-www-form-urlencoded")
            .body(valid.clone()),
    )
    .await;
    assert_problem(&form, 415, "UNSUPPORTED_MEDIA_TYPE");
    let no_content_type = send(
        request(&app, Method::POST, "/payments")
            .bearer_auth(API_KEY)
            .body(valid.clone()),
    )
    .await;
    assert_problem(&no_content_type, 415, "UNSUPPORTED_MEDIA_TYPE");
    let no_body = send(request(&app, Method::POST, "/payments").bearer_auth(API_KEY)).await;
    assert_problem(&no_body, 415, "UNSUPPORTED_MEDIA_TYPE");

    assert_eq!(payment_count(&app).await, 1, "nothing was created");
    app.stop().await;
}

async fn create_refuses_invalid_fields_and_creates_nothing(backend: Backend) {
    let app = spawn_app(backend).await;
    app.create_payment("order_existing_1", 1000).await;

    let mut cases: Vec<(String, Value)> = Vec::new();
    for field in ["user_id", "order_id", "amount_krw", "payment_method"] {
        cases.push((format!("missing {field}"), create_without(field)));
    }
    let mut unknown = create_without("amount_krw");
    unknown["amount"] = json!(15000);
    cases.push(("amount instead of amount_krw".to_owned(), unknown));
    cases.push((
        "extra field".to_owned(),
        create_with("status", json!("COMPLETED")),
    ));
    for amount in [
        json!(0),
        json!(-1),
        json!(1_000_000_001),
        json!(i64::MAX),
        json!(i64::MIN),
        json!(1e3),
        json!(15000.5),
        json!("15000"),
        json!(null),
        json!(true),
        json!([15000]),
        json!({"value": 15000}),
    ] {
        cases.push((
            format!("amount_krw {amount}"),
            create_with("amount_krw", amount),
        ));
    }
    for order_id in [
        "ord_5".to_owned(),
        "o".repeat(65),
        "order 000001".to_owned(),
        "'; DROP TABLE payments;--".to_owned(),
        "order_주문_0001".to_owned(),
        "order_ñ_00001".to_owned(),
        "order/000001".to_owned(),
        "order.000001".to_owned(),
        "order_000001\n".to_owned(),
        String::new(),
    ] {
        cases.push((
            format!("order_id {order_id:?}"),
            create_with("order_id", json!(order_id)),
        ));
    }
    cases.push((
        "order_id number".to_owned(),
        create_with("order_id", json!(12345678)),
    ));
    for user_id in [
        String::new(),
        "   ".to_owned(),
        "u".repeat(65),
        "u-\u{0}1".to_owned(),
        "u-\n1".to_owned(),
    ] {
        cases.push((
            format!("user_id {user_id:?}"),
            create_with("user_id", json!(user_id)),
        ));
    }
    for payment_type in [json!("WEEKLY"), json!("one_time"), json!(""), json!(1)] {
        cases.push((
            format!("payment_type {payment_type}"),
            create_with("payment_type", payment_type),
        ));
    }
    for method in [json!(""), json!(" "), json!("m".repeat(65)), json!(null)] {
        cases.push((
            format!("payment_method {method}"),
            create_with("payment_method", method),
        ));
    }
    cases.push((
        "order_name of 101 chars".to_owned(),
        create_with("order_name", json!("n".repeat(101))),
    ));
    cases.push((
        "order_name with a control character".to_owned(),
        create_with("order_name", json!("name\u{7}")),
    ));
    cases.push((
        "subscription_id of 129 chars".to_owned(),
        create_with("subscription_id", json!("s".repeat(129))),
    ));

    for (name, body) in cases {
        let reply = app.post("/payments", body).await;
        assert!(
            matches!(reply.status.as_u16(), 400 | 422),
            "{name}: {} {}",
            reply.status,
            reply.text
        );
        assert_problem(&reply, reply.status.as_u16(), "VALIDATION_ERROR");
    }

    // Oversize integers, which serde_json cannot even hold.
    for raw in [
        r#"{"user_id":"u-1","order_id":"order_big_0001","amount_krw":99999999999999999999999,"payment_method":"card"}"#,
        r#"{"user_id":"u-1","order_id":"order_big_0002","amount_krw":-99999999999999999999999,"payment_method":"card"}"#,
        r#"{"user_id":"u-1","order_id":"order_big_0003","amount_krw":1e400,"payment_method":"card"}"#,
    ] {
        let reply = send(raw_json(&app, "/payments", raw)).await;
        assert!(
            matches!(reply.status.as_u16(), 400 | 422),
            "{raw}: {}",
            reply.text
        );
        assert_problem(&reply, reply.status.as_u16(), "VALIDATION_ERROR");
    }

    assert_eq!(payment_count(&app).await, 1, "nothing was created");
    // The table survived its would-be injection.
    let list = app.get("/payments").await;
    assert_eq!(list.body["payments"][0]["order_id"], "order_existing_1");
    app.stop().await;
}

async fn create_accepts_boundary_values(backend: Backend) {
    let app = spawn_app(backend).await;
    let cases = [
        json!({"user_id": "u", "order_id": "abc-_9", "amount_krw": 1, "payment_method": "c"}),
        json!({"user_id": "u".repeat(64), "order_id": "O".repeat(64), "amount_krw": 1_000_000_000,
               "payment_method": "m".repeat(64), "order_name": "n".repeat(100),
               "subscription_id": "s".repeat(128), "payment_type": "SUBSCRIPTION"}),
        json!({"user_id": "사용자-1", "order_id": "order_unicode_user", "amount_krw": 15000,
               "payment_method": "kakao_pay", "order_name": "비타민 D × 3"}),
    ];
    for body in cases {
        let reply = app.post("/payments", body.clone()).await;
        assert_eq!(reply.status, StatusCode::CREATED, "{body}: {}", reply.text);
        for (field, value) in body.as_object().unwrap() {
            assert_eq!(&reply.body[field], value, "{field} round-trips");
        }
        let id = reply.body["payment_id"].as_str().unwrap();
        assert_eq!(app.payment(id).await, reply.body);
    }
    assert_eq!(payment_count(&app).await, 3);
    app.stop().await;
}

async fn markup_in_order_name_round_trips_as_json(backend: Backend) {
    let app = spawn_app(backend).await;
    let name = r#"<script>alert("x")</script> & 'quotes'"#;
    let reply = app
        .post(
            "/payments",
            json!({"user_id": "u-1", "order_id": "order_markup_01", "order_name": name,
                   "amount_krw": 1000, "payment_method": "card"}),
        )
        .await;
    assert_eq!(reply.status, StatusCode::CREATED, "{}", reply.text);
    assert!(
        reply.headers["content-type"]
            .to_str()
            .unwrap()
            .starts_with("application/json")
    );
    assert_eq!(reply.body["order_name"], name);
    let id = reply.body["payment_id"].as_str().unwrap();
    let read = app.get(&format!("/payments/{id}")).await;
    assert_eq!(read.body["order_name"], name);
    assert!(
        read.headers["content-type"]
            .to_str()
            .unwrap()
            .starts_with("application/json")
    );
    // JSON, not HTML-escaped.
    assert!(read.text.contains("<script>"), "{}", read.text);
    assert!(!read.text.contains("&lt;"), "{}", read.text);
    app.stop().await;
}

async fn duplicate_order_id_is_409_and_keeps_the_first(backend: Backend) {
    let app = spawn_app(backend).await;
    let first = app.create_payment("order_dup_00001", 15000).await;
    let id = first["payment_id"].as_str().unwrap();

    for body in [
        valid_create("order_dup_00001"),
        json!({"user_id": "u-2", "order_id": "order_dup_00001", "amount_krw": 1,
               "payment_method": "bank_transfer", "order_name": "other"}),
    ] {
        let reply = app.post("/payments", body).await;
        assert_problem(&reply, 409, "DUPLICATE_ORDER_ID");
    }
    // Order ids are case-sensitive, like Toss's: another case is another order.
    let other_case = app.post("/payments", valid_create("ORDER_DUP_00001")).await;
    assert_eq!(
        other_case.status,
        StatusCode::CREATED,
        "{}",
        other_case.text
    );

    assert_eq!(
        app.payment(id).await,
        first,
        "the first payment is unchanged"
    );
    assert_eq!(payment_count(&app).await, 2);
    app.stop().await;
}

async fn create_refuses_a_positional_json_array(backend: Backend) {
    let app = spawn_app(backend).await;
    let reply = send(raw_json(
        &app,
        "/payments",
        r#"["u-1","order_array_02",null,null,null,15000,"card"]"#,
    ))
    .await;
    assert_problem(&reply, 422, "VALIDATION_ERROR");
    assert_eq!(payment_count(&app).await, 0, "nothing was created");
    app.stop().await;
}

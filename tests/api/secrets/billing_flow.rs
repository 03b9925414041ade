//! The billing part of the flow: a customer key, a card registered through the success
//! redirect, charges approved and declined, the keys listed and deleted, and Toss's
//! `BILLING_DELETED` naming the billing key.

use reqwest::Method;
use serde_json::json;

use super::flow::Flow;
use super::{API_KEY_ONE, API_KEY_TWO, BILLING_KEY};

pub(super) async fn drive_billing_flow(flow: &mut Flow) {
    let customer = flow
        .send(
            "billing customer",
            flow.request(Method::POST, "/billing/customers")
                .bearer_auth(API_KEY_ONE)
                .json(&json!({"user_id": "u-secrets"})),
        )
        .await;
    assert_eq!(customer.status.as_u16(), 201);
    let customer_key = customer.body["customer_key"].as_str().unwrap().to_owned();
    let issued = flow
        .send(
            "billing success redirect",
            flow.request(
                Method::GET,
                &format!("/billing/toss/success?customerKey={customer_key}&authKey=bln_secretscan"),
            ),
        )
        .await;
    assert_eq!(issued.status.as_u16(), 201, "{}", issued.body);
    let key = issued.body["billing_key_id"].as_str().unwrap().to_owned();
    let reload = flow
        .send(
            "billing success redirect, reloaded",
            flow.request(
                Method::GET,
                &format!("/billing/toss/success?customerKey={customer_key}&authKey=bln_secretscan"),
            ),
        )
        .await;
    assert_eq!(reload.status.as_u16(), 201);

    for (order_id, expected) in [
        ("order_secret_bill_ok", 200),
        ("order_secret_bill_decline", 402),
    ] {
        let created = flow
            .send(
                "create for a charge",
                flow.request(Method::POST, "/payments")
                    .bearer_auth(API_KEY_TWO)
                    .json(
                        &json!({"user_id": "u-secrets", "order_id": order_id, "amount_krw": 9900,
                                  "payment_method": "card", "payment_type": "SUBSCRIPTION"}),
                    ),
            )
            .await;
        let id = created.body["payment_id"].as_str().unwrap().to_owned();
        let charged = flow
            .send(
                "charge",
                flow.request(Method::POST, &format!("/payments/{id}/charge"))
                    .bearer_auth(API_KEY_ONE)
                    .json(&json!({"billing_key_id": key})),
            )
            .await;
        assert_eq!(charged.status.as_u16(), expected, "{}", charged.body);
    }
    let listed = flow
        .send(
            "billing keys",
            flow.request(Method::GET, "/billing-keys?user_id=u-secrets")
                .bearer_auth(API_KEY_TWO),
        )
        .await;
    assert_eq!(listed.status.as_u16(), 200);
    let webhook = flow
        .send(
            "BILLING_DELETED",
            flow.request(Method::POST, "/webhooks/toss").json(&json!({
                "eventType": "BILLING_DELETED", "createdAt": "2026-12-01T10:00:00.000000",
                "data": {"billingKey": BILLING_KEY, "reason": "고객 요청"}
            })),
        )
        .await;
    assert_eq!(webhook.status.as_u16(), 200);
    assert_eq!(webhook.body["result"], "applied");
    let deleted = flow
        .send(
            "delete billing key",
            flow.request(Method::DELETE, &format!("/billing-keys/{key}"))
                .bearer_auth(API_KEY_ONE),
        )
        .await;
    assert_eq!(deleted.status.as_u16(), 200);
    assert_eq!(deleted.body["status"], "DELETED");
}

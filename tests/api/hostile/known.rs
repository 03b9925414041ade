//! What exists before the cases: payments in known states, and the values that name them.

use reqwest::StatusCode;
use serde_json::{Value, json};

use crate::helpers::TestApp;

#[derive(Debug)]
pub(super) struct Known {
    pub(super) ids: Vec<String>,
    pub(super) order_ids: Vec<String>,
    pub(super) payment_keys: Vec<String>,
    pub(super) amounts: Vec<i64>,
}

impl Known {
    pub(super) async fn create(app: &TestApp) -> Self {
        let mut ids = Vec::new();
        let mut order_ids = Vec::new();
        let mut amounts = Vec::new();
        let mut payment_keys = Vec::new();
        let mut remember = |payment: &Value| {
            ids.push(payment["payment_id"].as_str().unwrap().to_owned());
            order_ids.push(payment["order_id"].as_str().unwrap().to_owned());
            amounts.push(payment["amount_krw"].as_i64().unwrap());
        };
        // PENDING, three of them: generated confirms with a fresh payment key may complete some.
        for (n, amount) in [(1, 10_000), (2, 20_000), (3, 30_000)] {
            remember(
                &app.create_payment(&format!("order_hostile_pending_{n}"), amount)
                    .await,
            );
        }
        // PENDING with a failure recorded by the fail redirect.
        let failed = app
            .get_public(
                "/payments/toss/fail?code=PAY_PROCESS_CANCELED&message=cancelled&orderId=order_hostile_pending_3",
            )
            .await;
        assert_eq!(failed.status, StatusCode::OK, "{}", failed.text);
        // COMPLETED, PARTIAL_REFUND and REFUNDED, all paid through the fake Toss.
        for (name, amount, refund) in [
            ("done", 15_000, None),
            (
                "part",
                50_000,
                Some(json!({"reason": "one item returned", "refund_amount_krw": 20_000})),
            ),
            (
                "full",
                7_000,
                Some(json!({"reason": "everything returned"})),
            ),
        ] {
            let key = format!("pk_hostile_{name}_01");
            let paid = app
                .completed_payment(&format!("order_hostile_{name}_01"), amount, &key)
                .await;
            payment_keys.push(key);
            if let Some(refund) = refund {
                let id = paid["payment_id"].as_str().unwrap();
                let reply = app.post(&format!("/payments/{id}/refund"), refund).await;
                assert_eq!(reply.status, StatusCode::OK, "{}", reply.text);
            }
            remember(&app.payment(paid["payment_id"].as_str().unwrap()).await);
        }
        let statuses: Vec<String> = {
            let mut statuses = Vec::new();
            for id in &ids {
                statuses.push(app.payment(id).await["status"].as_str().unwrap().to_owned());
            }
            statuses
        };
        assert_eq!(
            statuses,
            [
                "PENDING",
                "PENDING",
                "PENDING",
                "COMPLETED",
                "PARTIAL_REFUND",
                "REFUNDED"
            ]
        );
        Self {
            ids,
            order_ids,
            payment_keys,
            amounts,
        }
    }
}

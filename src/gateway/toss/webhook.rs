//! Toss's webhook bodies (`docs/toss-api.md`, webhooks): `PAYMENT_STATUS_CHANGED` (a
//! Payment in `data`), `CANCEL_STATUS_CHANGED` (a Cancel in `data`), or `DEPOSIT_CALLBACK` (flat,
//! no `eventType`, with `secret`). Toss does not sign them, so a body is reduced to a
//! [`WebhookHint`]: which payment to read back from Toss, never what to believe about it.

use serde::Deserialize;
use serde_json::Value;

use crate::domain::{OrderId, PaymentKey};
use crate::gateway::{HintedPayment, WebhookHint};

/// A body that is not a Toss webhook: not JSON, not an object, or not of Toss's shape.
#[derive(Debug, thiserror::Error)]
pub enum NotAWebhook {
    #[error("not a Toss webhook body: {0}")]
    Json(#[from] serde_json::Error),
    #[error("not a Toss webhook body: expected a JSON object")]
    NotAnObject,
}

/// A webhook delivery as read: which payment it names (or why it is ignored), and what it
/// claims, for the log only.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Delivery {
    /// `eventType`; absent for `DEPOSIT_CALLBACK`.
    pub event_type: Option<String>,
    pub created_at: Option<String>,
    /// `status` of a `DEPOSIT_CALLBACK`: a claim, never applied.
    pub claimed_status: Option<String>,
    /// `transactionKey` of a `DEPOSIT_CALLBACK`.
    pub transaction_key: Option<String>,
    /// The payment to read back, or why the body names none worth reading.
    pub hint: Result<WebhookHint, &'static str>,
    /// `BILLING_DELETED`: the fingerprint of the billing key Toss removed (the key itself is
    /// not kept past parsing).
    pub billing_deleted: Option<String>,
}

/// Reads a webhook body. `Err` only for a body that is not a Toss webhook at all; a webhook
/// about something else is a [`Delivery`] whose `hint` says why it is ignored.
pub fn parse(body: &[u8]) -> Result<Delivery, NotAWebhook> {
    // serde fills a struct from an array too, by position; Toss sends an object.
    if body.iter().find(|b| !b.is_ascii_whitespace()) != Some(&b'{') {
        return Err(NotAWebhook::NotAnObject);
    }
    let body: Body = serde_json::from_slice(body)?;
    let billing_deleted = match body.event_type.as_deref() {
        Some("BILLING_DELETED") => body
            .data
            .as_ref()
            .and_then(|data| data.get("billingKey"))
            .and_then(Value::as_str)
            .filter(|key| !key.is_empty())
            .map(crate::crypto::fingerprint),
        _ => None,
    };
    Ok(Delivery {
        hint: hint_of(&body),
        billing_deleted,
        event_type: body.event_type,
        created_at: body.created_at,
        claimed_status: body.status,
        transaction_key: body.transaction_key,
    })
}

/// A Toss webhook body: `PAYMENT_STATUS_CHANGED` (a Payment in `data`), `CANCEL_STATUS_CHANGED`
/// (a Cancel in `data`), `BILLING_DELETED` (`data: {billingKey, reason}`), or `DEPOSIT_CALLBACK`
/// (flat, no `eventType`, with `secret`).
// Every field is optional: Toss sends three shapes to one URL and adds fields without notice.
// The same type documents the body in the OpenAPI document (`POST /webhooks/toss`).
#[derive(Debug, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "camelCase")]
#[schema(as = TossWebhook, example = json!({
    "eventType": "PAYMENT_STATUS_CHANGED",
    "createdAt": "2026-11-23T12:18:15.000000",
    "data": {
        "paymentKey": "5EnNZRJGvaBX7zk2yd8ydw26XvwXkLrx9POLqKQjmAw4b0e1",
        "orderId": "order_20261123_0001",
        "status": "DONE",
        "totalAmount": 15000,
        "secret": "ps_eqRGgYO1r57E4Z541ZMW3QnN2Eya"
    }
}))]
pub struct Body {
    /// Absent for `DEPOSIT_CALLBACK`.
    #[schema(pattern = r"^[^\u0000]*$")]
    event_type: Option<String>,
    #[schema(pattern = r"^[^\u0000]*$")]
    created_at: Option<String>,
    /// The Payment (or Cancel) object; its contents are only a hint. Any JSON value is taken (a
    /// body without an object here is ignored), as long as no string in it holds U+0000.
    // Only its `paymentKey`, `orderId` and `secret` are read.
    data: Option<Value>,
    /// `DEPOSIT_CALLBACK` only.
    #[schema(pattern = r"^[^\u0000]*$")]
    secret: Option<String>,
    /// `DEPOSIT_CALLBACK` only.
    #[schema(pattern = r"^[^\u0000]*$")]
    status: Option<String>,
    /// `DEPOSIT_CALLBACK` only.
    #[schema(pattern = r"^[^\u0000]*$")]
    order_id: Option<String>,
    /// `DEPOSIT_CALLBACK` only.
    #[schema(pattern = r"^[^\u0000]*$")]
    transaction_key: Option<String>,
}

fn hint_of(body: &Body) -> Result<WebhookHint, &'static str> {
    match body.event_type.as_deref() {
        Some(kind @ ("PAYMENT_STATUS_CHANGED" | "CANCEL_STATUS_CHANGED")) => {
            let data = body.data.as_ref().ok_or("no data")?;
            Ok(WebhookHint {
                event_type: kind.to_owned(),
                payment: hinted(text(data.get("orderId")), text(data.get("paymentKey"))),
                secret: text(data.get("secret")),
            })
        }
        Some("BILLING_DELETED") => Err("no billing key in the body"),
        Some(_) => Err("not a payment event"),
        None if body.order_id.is_some() && body.secret.is_some() => Ok(WebhookHint {
            event_type: "DEPOSIT_CALLBACK".to_owned(),
            payment: hinted(body.order_id.clone().filter(|o| o.len() <= 64), None),
            secret: body.secret.clone().filter(|s| s.len() <= 64),
        }),
        None => Err("unrecognised body"),
    }
}

/// The order id when the body has one, else the key; a value that does not parse still names
/// a payment, one that cannot be ours.
fn hinted(order_id: Option<String>, payment_key: Option<String>) -> HintedPayment {
    match (order_id, payment_key) {
        (Some(order_id), _) => {
            OrderId::parse(&order_id).map_or(HintedPayment::Malformed, HintedPayment::ByOrder)
        }
        (None, Some(key)) => {
            PaymentKey::parse(&key).map_or(HintedPayment::Malformed, HintedPayment::ByKey)
        }
        (None, None) => HintedPayment::Missing,
    }
}

/// A string field of `data`, if it is one of a length worth looking up.
fn text(value: Option<&Value>) -> Option<String> {
    value
        .and_then(Value::as_str)
        .filter(|s| !s.is_empty() && s.len() <= 200)
        .map(str::to_owned)
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn parsed(body: Value) -> Delivery {
        parse(body.to_string().as_bytes()).expect("a webhook body")
    }

    /// The documented body and the parser agree: the OpenAPI example, with a field Toss may add.
    #[test]
    fn a_payment_status_change_names_the_key_the_order_and_the_secret() {
        let schema = serde_json::to_value(<Body as utoipa::PartialSchema>::schema()).unwrap();
        let mut body = schema["example"].clone();
        body["data"]["brandNewField"] = json!([1, 2, 3]);
        let delivery = parsed(body);
        assert_eq!(
            delivery.hint,
            Ok(WebhookHint {
                event_type: "PAYMENT_STATUS_CHANGED".to_owned(),
                payment: HintedPayment::ByOrder(OrderId::parse("order_20261123_0001").unwrap()),
                secret: Some("ps_eqRGgYO1r57E4Z541ZMW3QnN2Eya".to_owned()),
            })
        );
        assert_eq!(
            delivery.event_type.as_deref(),
            Some("PAYMENT_STATUS_CHANGED")
        );
        assert_eq!(
            delivery.created_at.as_deref(),
            Some("2026-11-23T12:18:15.000000")
        );
    }

    #[test]
    fn a_cancel_status_change_names_its_payment() {
        let delivery = parsed(json!({
            "eventType": "CANCEL_STATUS_CHANGED",
            "data": {"paymentKey": "pk_1", "transactionKey": "tx_1", "cancelAmount": 1000}
        }));
        let hint = delivery.hint.unwrap();
        assert_eq!(hint.event_type, "CANCEL_STATUS_CHANGED");
        assert_eq!(
            hint.payment,
            HintedPayment::ByKey(PaymentKey::parse("pk_1").unwrap())
        );
        assert_eq!(hint.secret, None);
    }

    #[test]
    fn a_deposit_callback_is_flat_and_names_the_order() {
        let delivery = parsed(json!({
            "createdAt": "2026-11-23T12:18:15.000000",
            "secret": "ps_secret",
            "status": "DONE",
            "transactionKey": "tx_1",
            "orderId": "order_20261123_0001"
        }));
        assert_eq!(
            delivery.hint,
            Ok(WebhookHint {
                event_type: "DEPOSIT_CALLBACK".to_owned(),
                payment: HintedPayment::ByOrder(OrderId::parse("order_20261123_0001").unwrap()),
                secret: Some("ps_secret".to_owned()),
            })
        );
        assert_eq!(delivery.claimed_status.as_deref(), Some("DONE"));
        assert_eq!(delivery.transaction_key.as_deref(), Some("tx_1"));
    }

    #[test]
    fn other_bodies_are_ignored_with_a_reason() {
        let reason = |body: Value| parsed(body).hint.unwrap_err();
        assert_eq!(
            reason(json!({"eventType": "PAYOUT_STATUS_CHANGED", "data": {}})),
            "not a payment event"
        );
        assert_eq!(
            reason(json!({"eventType": "PAYMENT_STATUS_CHANGED"})),
            "no data"
        );
        assert_eq!(reason(json!({"orderId": "order_1"})), "unrecognised body");
        assert_eq!(reason(json!({})), "unrecognised body");
    }

    #[test]
    fn the_order_id_counts_before_the_key() {
        let hint = |data: Value| {
            parsed(json!({"eventType": "PAYMENT_STATUS_CHANGED", "data": data}))
                .hint
                .unwrap()
                .payment
        };
        let key = || HintedPayment::ByKey(PaymentKey::parse("pk_1").unwrap());
        assert_eq!(hint(json!({"paymentKey": "pk_1"})), key());
        // Empty or oversize strings, and other types, are as good as absent.
        assert_eq!(hint(json!({"paymentKey": "pk_1", "orderId": ""})), key());
        assert_eq!(hint(json!({"paymentKey": "pk_1", "orderId": 7})), key());
        assert_eq!(
            hint(json!({"paymentKey": "pk_1", "orderId": "o".repeat(201)})),
            key()
        );
        // A present order id that is not one names no payment of ours, whatever the key.
        assert_eq!(
            hint(json!({"paymentKey": "pk_1", "orderId": "order 1"})),
            HintedPayment::Malformed
        );
        assert_eq!(
            hint(json!({"paymentKey": "key with space"})),
            HintedPayment::Malformed
        );
        assert_eq!(
            hint(json!({"paymentKey": "k".repeat(201), "secret": 7})),
            HintedPayment::Missing
        );
        let secret = parsed(json!({
            "eventType": "PAYMENT_STATUS_CHANGED",
            "data": {"paymentKey": "pk_1", "secret": 7}
        }))
        .hint
        .unwrap()
        .secret;
        assert_eq!(secret, None);
    }

    #[test]
    fn overlong_deposit_callback_values_are_dropped() {
        let hint = parsed(json!({"orderId": "o".repeat(65), "secret": "s".repeat(65)}))
            .hint
            .unwrap();
        assert_eq!((hint.payment, hint.secret), (HintedPayment::Missing, None));
        let hint = parsed(json!({"orderId": "", "secret": "s"})).hint.unwrap();
        assert_eq!(hint.payment, HintedPayment::Malformed);
    }

    #[test]
    fn a_body_that_is_not_a_webhook_is_an_error() {
        for body in ["", "not json", "{\"eventType\": 1}", "{\"data\": "] {
            let error = parse(body.as_bytes()).unwrap_err();
            assert!(
                error.to_string().starts_with("not a Toss webhook body: "),
                "{body}: {error}"
            );
        }
    }
}

//! The fields of each route's body and query, and values each field expects.

use std::sync::Arc;

use proptest::prelude::*;
use proptest::sample::{Index, select};

use super::json::{J, any_json, stray_key};
use crate::hostile::known::Known;

fn strs(values: Vec<String>) -> BoxedStrategy<J> {
    select(values).prop_map(J::Str).boxed()
}

fn texts(values: &[&str]) -> Vec<String> {
    values.iter().map(|v| (*v).to_owned()).collect()
}

/// Values the field expects, mostly valid, some just past valid, and the real ids, order ids,
/// payment keys and amounts, so that requests get past validation into the payment logic;
/// now and then with a NUL put into it, which must be refused wherever it is.
fn plausible(field: &str, known: &Arc<Known>) -> BoxedStrategy<J> {
    let value = plausible_value(field, known);
    prop_oneof![
        9 => value.clone(),
        1 => (value, any::<Index>()).prop_map(|(mut value, at)| {
            value.put_nul(at);
            value
        }),
    ]
    .boxed()
}

fn plausible_value(field: &str, known: &Arc<Known>) -> BoxedStrategy<J> {
    let k = known.clone();
    let amounts = |raw: fn(String) -> J| {
        let edges: Vec<i64> = vec![0, 1, 1_000, 5_000, 1_000_000_000, 1_000_000_001, -1];
        prop_oneof![
            3 => select(k.amounts.clone()),
            2 => select(edges),
        ]
        .prop_map(move |a| raw(a.to_string()))
        .boxed()
    };
    let numbers = |values: &[&str]| select(texts(values)).prop_map(J::Raw).boxed();
    match field {
        "user_id" => prop_oneof![
            6 => strs(texts(&["u-1", "u-hostile"])),
            1 => strs(vec!["u".repeat(64), "u".repeat(65)]),
        ]
        .boxed(),
        "order_id" | "orderId" => prop_oneof![
            3 => select(k.order_ids.clone()).prop_map(J::Str),
            2 => (0u32..1000).prop_map(|n| J::Str(format!("order_hostile_new_{n}"))),
            1 => strs(vec!["short".into(), "o".repeat(64), "o".repeat(65), "order id!".into(), "order/../1".into()]),
        ]
        .boxed(),
        "order_name" => strs(vec!["Vitamin D x 3".into(), "n".repeat(100), "n".repeat(101)]),
        "subscription_id" => strs(vec!["sub-1".into(), "s".repeat(128), "s".repeat(129)]),
        "payment_type" => prop_oneof![
            3 => strs(texts(&["ONE_TIME", "SUBSCRIPTION"])),
            1 => strs(texts(&["one_time", "BRANDPAY", ""])),
        ]
        .boxed(),
        "amount_krw" | "refund_amount_krw" | "totalAmount" => amounts(J::Raw),
        "amount" => amounts(J::Str),
        "payment_method" => prop_oneof![
            4 => strs(texts(&["card"])),
            1 => strs(vec!["".into(), "카드".into(), "m".repeat(64), "m".repeat(65)]),
        ]
        .boxed(),
        "payment_id" => prop_oneof![
            4 => select(k.ids.clone()).prop_map(J::Str),
            1 => any::<u128>().prop_map(|n| J::Str(uuid::Uuid::from_u128(n).to_string())),
            1 => strs(texts(&["not-a-uuid", "00000000-0000-0000-0000-000000000000"])),
        ]
        .boxed(),
        "payment_key" | "paymentKey" => prop_oneof![
            3 => (0u32..1000).prop_map(|n| J::Str(format!("pk_hostile_new_{n}"))),
            2 => select(k.payment_keys.clone()).prop_map(J::Str),
            1 => strs(vec!["k".repeat(200), "k".repeat(201), "key with space".into(), "키".into()]),
        ]
        .boxed(),
        "pg_transaction_id" => prop_oneof![
            3 => strs(texts(&["tx-1"])),
            1 => strs(vec!["t".repeat(200), "t".repeat(201)]),
        ]
        .boxed(),
        "pg_provider" => strs(vec!["kcp".into(), "toss".into(), "p".repeat(32), "p".repeat(33)]),
        "reason" => prop_oneof![
            4 => strs(texts(&["changed my mind", "결제 취소 <b>!</b>"])),
            1 => strs(vec!["r".repeat(200), "r".repeat(201), " ".into()]),
        ]
        .boxed(),
        "eventType" => strs(texts(&[
            "PAYMENT_STATUS_CHANGED",
            "CANCEL_STATUS_CHANGED",
            "DEPOSIT_CALLBACK",
            "payout.changed",
        ])),
        "status" => strs(texts(&["DONE", "CANCELED", "PARTIAL_CANCELED", "ABORTED", "WAITING_FOR_DEPOSIT"])),
        "secret" => strs(texts(&["ps_fakesecret0001", "ps_wrong"])),
        "createdAt" => strs(texts(&["2026-11-23T12:18:15.000000", "not a date"])),
        "transactionKey" => strs(texts(&["tx_1"])),
        "data" => object(WEBHOOK_DATA_FIELDS, known),
        // Query parameters.
        "paymentType" => prop_oneof![
            3 => strs(texts(&["NORMAL"])),
            1 => strs(texts(&["KEYIN", "BRANDPAY", ""])),
        ]
        .boxed(),
        "code" => strs(texts(&["PAY_PROCESS_CANCELED", "USER_CANCEL", "REJECT_CARD_COMPANY", "", "not-a-code!"])),
        "message" => strs(vec!["결제를 취소했습니다".into(), "<script>alert(1)</script>".into(), "m\u{0}\u{7}".into(), "m".repeat(600)]),
        "limit" => numbers(&["1", "20", "100", "101", "1000", "1001", "0", "-1"]),
        "offset" | "after" => numbers(&["0", "1", "3", "100", "-1"]),
        _ => any_json(known),
    }
}

/// A JSON object of the route's fields: mostly a near-valid one (each field present with its
/// own probability, plausible, then maybe one field made hostile), else a wild one (fields
/// plausible or hostile, stray keys, a repeated key).
pub(super) fn object(
    fields: &'static [(&'static str, f64)],
    known: &Arc<Known>,
) -> BoxedStrategy<J> {
    prop_oneof![
        3 => near_valid(fields, known).prop_map(J::Obj),
        2 => wild_object(fields, known),
    ]
    .boxed()
}

/// Entries of the fields, each present with its probability and plausible, then maybe one
/// value replaced by a hostile one.
pub(super) fn near_valid(
    fields: &'static [(&'static str, f64)],
    known: &Arc<Known>,
) -> BoxedStrategy<Vec<(String, J)>> {
    let per_field: Vec<BoxedStrategy<Option<(String, J)>>> = fields
        .iter()
        .map(|(field, presence)| {
            let name = (*field).to_owned();
            prop::option::weighted(*presence, plausible(field, known))
                .prop_map(move |value| value.map(|v| (name.clone(), v)))
                .boxed()
        })
        .collect();
    let mutation = prop::option::weighted(0.35, (any::<Index>(), any_json(known)));
    let nul = prop::option::weighted(0.15, (any::<Index>(), any::<Index>()));
    (per_field, mutation, nul)
        .prop_map(|(fields, mutation, nul)| {
            let mut entries: Vec<(String, J)> = fields.into_iter().flatten().collect();
            if let Some((index, value)) = mutation
                && !entries.is_empty()
            {
                let at = index.index(entries.len());
                entries[at].1 = value;
            }
            if let Some((index, position)) = nul
                && !entries.is_empty()
            {
                let at = index.index(entries.len());
                entries[at].1.put_nul(position);
            }
            entries
        })
        .boxed()
}

fn wild_object(fields: &'static [(&'static str, f64)], known: &Arc<Known>) -> BoxedStrategy<J> {
    let per_field: Vec<BoxedStrategy<Option<(String, J)>>> = fields
        .iter()
        .map(|(field, _)| {
            let name = (*field).to_owned();
            prop::option::weighted(
                0.75,
                prop_oneof![3 => plausible(field, known), 2 => any_json(known)],
            )
            .prop_map(move |value| value.map(|v| (name.clone(), v)))
            .boxed()
        })
        .collect();
    let strays = prop_oneof![
        5 => Just(Vec::new()),
        1 => prop::collection::vec((stray_key(), any_json(known)), 1..3),
    ];
    let repeated = prop::option::weighted(0.3, (any::<Index>(), any_json(known)));
    (per_field, strays, repeated)
        .prop_map(|(fields, strays, repeated)| {
            let mut entries: Vec<(String, J)> = fields.into_iter().flatten().collect();
            entries.extend(strays);
            if let Some((index, value)) = repeated
                && !entries.is_empty()
            {
                let key = entries[index.index(entries.len())].0.clone();
                entries.push((key, value));
            }
            J::Obj(entries)
        })
        .boxed()
}

/// (field, how often a near-valid body has it)
pub(super) const CREATE_FIELDS: &[(&str, f64)] = &[
    ("user_id", 0.95),
    ("order_id", 0.95),
    ("order_name", 0.3),
    ("subscription_id", 0.2),
    ("payment_type", 0.3),
    ("amount_krw", 0.95),
    ("payment_method", 0.95),
];
pub(super) const CONFIRM_FIELDS: &[(&str, f64)] = &[
    ("payment_id", 0.3),
    ("order_id", 0.7),
    ("payment_key", 0.8),
    ("amount_krw", 0.5),
    ("pg_transaction_id", 0.3),
    ("pg_provider", 0.3),
];
pub(super) const REFUND_FIELDS: &[(&str, f64)] = &[("reason", 0.95), ("refund_amount_krw", 0.6)];
pub(super) const WEBHOOK_FIELDS: &[(&str, f64)] = &[
    ("eventType", 0.9),
    ("createdAt", 0.5),
    ("data", 0.8),
    ("secret", 0.3),
    ("status", 0.3),
    ("orderId", 0.3),
    ("transactionKey", 0.2),
];
const WEBHOOK_DATA_FIELDS: &[(&str, f64)] = &[
    ("paymentKey", 0.8),
    ("orderId", 0.8),
    ("status", 0.8),
    ("secret", 0.4),
    ("totalAmount", 0.4),
];
pub(super) const LIST_PARAMS: &[(&str, f64)] = &[("user_id", 0.4), ("limit", 0.5), ("offset", 0.4)];
pub(super) const EVENT_PARAMS: &[(&str, f64)] = &[("after", 0.5), ("limit", 0.5)];
pub(super) const SUCCESS_PARAMS: &[(&str, f64)] = &[
    ("paymentKey", 0.95),
    ("orderId", 0.95),
    ("amount", 0.95),
    ("paymentType", 0.5),
];
pub(super) const FAIL_PARAMS: &[(&str, f64)] =
    &[("code", 0.9), ("message", 0.9), ("orderId", 0.95)];
pub(super) const JUNK_PARAMS: &[(&str, f64)] = &[("x", 0.5), ("limit", 0.5)];

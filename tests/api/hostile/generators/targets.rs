//! Methods, paths and queries.

use std::sync::Arc;

use proptest::prelude::*;
use proptest::sample::{Index, select};

use super::fields::near_valid;
use super::json::{J, hostile_number, hostile_string, stray_key};
use crate::hostile::known::Known;

pub(super) const METHODS: &[&str] = &[
    "GET", "POST", "PUT", "PATCH", "DELETE", "HEAD", "OPTIONS", "TRACE", "PURGE", "get",
];

pub(super) fn method(usual: &'static str) -> BoxedStrategy<String> {
    prop_oneof![
        8 => Just(usual.to_owned()),
        2 => select(METHODS).prop_map(str::to_owned),
    ]
    .boxed()
}

/// Every byte percent-encoded.
pub(super) fn percent_encoded(text: &str) -> String {
    text.bytes().map(|b| format!("%{b:02X}")).collect()
}

const PATH_GARBAGE: &[&str] = &[
    "not-a-uuid",
    "0",
    "-1",
    "null",
    "undefined",
    "%00",
    "%ff%fe",
    "%",
    "%zz",
    "%2e%2e",
    "..",
    ".",
    "%2F",
    "a%2Fb",
    "00000000-0000-0000-0000-000000000000",
    "ffffffff-ffff-ffff-ffff-ffffffffffff",
    "' OR '1'='1",
    "%3Cscript%3Ealert(1)%3C%2Fscript%3E",
    "😀",
    "%E2%80%AE",
    "toss",
    "confirm",
    "..%2F..%2Fetc%2Fpasswd",
];

pub(super) fn path_id(known: &Arc<Known>) -> BoxedStrategy<String> {
    let ids = known.ids.clone();
    prop_oneof![
        8 => select(ids.clone()),
        2 => any::<u128>().prop_map(|n| uuid::Uuid::from_u128(n).to_string()),
        1 => select(ids.clone()).prop_map(|id| id.to_uppercase()),
        1 => select(ids.clone()).prop_map(|id| id.replace('-', "")),
        1 => select(ids.clone()).prop_map(|id| format!("{{{id}}}")),
        1 => select(ids.clone()).prop_map(|id| format!("urn:uuid:{id}")),
        3 => select(PATH_GARBAGE).prop_map(str::to_owned),
        1 => (select(ids.clone()), any::<Index>()).prop_map(|(id, at)| {
            let at = at.index(id.len() + 1);
            format!("{}%00{}", &id[..at], &id[at..])
        }),
        1 => (1usize..8_000).prop_map(|n| "a".repeat(n)),
        2 => hostile_string().prop_map(|s| percent_encoded(&s)),
    ]
    .boxed()
}

/// A query value as text: strings as they are, anything else as its JSON text.
fn query_text(value: J) -> String {
    match value {
        J::Str(s) | J::Raw(s) => s,
        other => other.text(),
    }
}

/// A query string (with its `?`): near-valid parameters, or hostile pairs, or raw garbage.
pub(super) fn query(
    params: &'static [(&'static str, f64)],
    known: &Arc<Known>,
) -> BoxedStrategy<String> {
    let encode = |s: &str| url::form_urlencoded::byte_serialize(s.as_bytes()).collect::<String>();
    let near_valid = near_valid(params, known).prop_map(move |entries| {
        let pairs: Vec<String> = entries
            .into_iter()
            .map(|(name, value)| format!("{}={}", encode(&name), encode(&query_text(value))))
            .collect();
        format!("?{}", pairs.join("&"))
    });
    let k = known.clone();
    let value = prop_oneof![
        3 => hostile_number(),
        3 => hostile_string(),
        2 => select(k.order_ids.iter().chain(&k.payment_keys).cloned().collect::<Vec<_>>()),
        2 => select(k.amounts.iter().map(i64::to_string).collect::<Vec<_>>()),
    ];
    let name = prop_oneof![
        5 => select(params.iter().map(|(name, _)| (*name).to_owned()).collect::<Vec<_>>()),
        1 => stray_key(),
    ];
    let pair = (name, value, any::<bool>()).prop_map(move |(name, value, encoded)| {
        let one = |s: &str| {
            if encoded {
                encode(s)
            } else {
                s.replace('#', "%23")
            }
        };
        format!("{}={}", one(&name), one(&value))
    });
    let raw: &[&str] = &[
        "?",
        "?&&",
        "?=",
        "?a",
        "?%",
        "?%zz=1",
        "?limit",
        "?limit=",
        "?limit=1&limit=2",
        "?after=1&after=2",
        "?user_id[]=x",
        "?user_id[a]=b",
        "?orderId=order_hostile_pending_1&orderId=order_hostile_pending_2",
        "?%00=%00",
        "?limit=%00",
        "?offset=9223372036854775808",
        "?offset=9223372036854775807&limit=100",
        "?after=-9223372036854775808",
        "?after=9223372036854775807",
    ];
    prop_oneof![
        5 => near_valid,
        3 => prop::collection::vec(pair, 1..5).prop_map(|pairs| format!("?{}", pairs.join("&"))),
        1 => select(raw).prop_map(str::to_owned),
        1 => Just(String::new()),
    ]
    .boxed()
}

pub(super) const UNKNOWN_PATHS: &[&str] = &[
    "/",
    "/payments/",
    "/payments/toss",
    "/payments/toss/",
    "/payments/confirm/",
    "/admin",
    "/.env",
    "//payments",
    "/payments//refund",
    "/swagger-ui",
    "/metrics",
    "/webhooks/toss/extra",
    "/webhooks",
    "/events/1",
    "/PAYMENTS",
    "/%2e%2e/etc/passwd",
    "/payments/%00/refund",
    "/payments%00",
    "/payments/confirm%00",
    "/payments/toss/success%00",
    "/webhooks/toss%00",
    "/events%00",
    "/health/",
    "/ready?x=1",
];

//! JSON built as text, so that keys can repeat and numbers can be anything; hostile strings,
//! numbers and keys.

use std::sync::Arc;

use proptest::prelude::*;
use proptest::sample::{Index, select};

use crate::hostile::known::Known;

#[derive(Debug, Clone)]
pub(super) enum J {
    /// Written as is: numbers of any size, `null`, `true`, invalid escapes.
    Raw(String),
    Str(String),
    Arr(Vec<J>),
    /// Keys may repeat.
    Obj(Vec<(String, J)>),
}

impl J {
    /// Puts a NUL (U+0000, which PostgreSQL's text refuses) into a string of this value: into
    /// it at `at` if it is one, else into one of its members. Numbers and literals stay.
    pub(super) fn put_nul(&mut self, at: Index) {
        match self {
            J::Raw(_) => {}
            J::Str(s) => {
                let boundaries: Vec<usize> =
                    s.char_indices().map(|(i, _)| i).chain([s.len()]).collect();
                s.insert(boundaries[at.index(boundaries.len())], '\0');
            }
            J::Arr(items) if !items.is_empty() => {
                let n = at.index(items.len());
                items[n].put_nul(at);
            }
            J::Obj(entries) if !entries.is_empty() => {
                let n = at.index(entries.len());
                entries[n].1.put_nul(at);
            }
            J::Arr(_) | J::Obj(_) => {}
        }
    }

    pub(super) fn text(&self) -> String {
        let mut out = String::new();
        self.write(&mut out);
        out
    }

    fn write(&self, out: &mut String) {
        match self {
            J::Raw(raw) => out.push_str(raw),
            J::Str(s) => out.push_str(&serde_json::to_string(s).expect("string")),
            J::Arr(items) => {
                out.push('[');
                for (n, item) in items.iter().enumerate() {
                    if n > 0 {
                        out.push(',');
                    }
                    item.write(out);
                }
                out.push(']');
            }
            J::Obj(entries) => {
                out.push('{');
                for (n, (key, value)) in entries.iter().enumerate() {
                    if n > 0 {
                        out.push(',');
                    }
                    out.push_str(&serde_json::to_string(key).expect("key"));
                    out.push(':');
                    value.write(out);
                }
                out.push('}');
            }
        }
    }
}

const HOSTILE_TEXTS: &[&str] = &[
    "",
    " ",
    "\t",
    "\n",
    "\r\n",
    "\u{0}",
    "order\u{0}_hostile_pending_1",
    "\u{7f}",
    "\u{85}",
    "\u{1b}[31mred",
    "\u{202e}kcatta\u{202c}",
    "\u{2066}isolate\u{2069}",
    "\u{200b}",
    "\u{feff}",
    "\u{fffd}",
    "\u{10ffff}",
    "💳🔥",
    "👨‍👩‍👧‍👦",
    "결제 취소",
    "ｏｒｄｅｒ＿ｈｏｓｔｉｌｅ",
    "'; DROP TABLE payments;--",
    "\" OR \"1\"=\"1",
    "' OR 1=1 --",
    "1; DELETE FROM events",
    "Robert'); DROP TABLE refunds;--",
    "order_hostile_pending_1' OR '1'='1",
    "%' OR payment_id LIKE '%",
    "<script>alert(1)</script>",
    "<img src=x onerror=alert(1)>",
    "</script><svg/onload=alert(1)>",
    "&lt;&amp;&#x27;",
    "${jndi:ldap://127.0.0.1/x}",
    "{{7*7}}",
    "%s%s%s%n",
    "../../../../etc/passwd",
    "%00",
    "%2e%2e%2f",
    "\\",
    "\\u0000",
    "null",
    "true",
    "NaN",
    "-Infinity",
    "0x7fffffffffffffff",
    "1e308",
    "15000",
    "-0",
    "u-1",
    "card",
    "toss",
    "ONE_TIME",
    "SUBSCRIPTION",
    "PAYMENT_STATUS_CHANGED",
    "DONE",
];

/// Numbers as JSON text, some of them not valid JSON at all.
const NUMBER_TEXTS: &[&str] = &[
    "0",
    "-0",
    "1",
    "-1",
    "0.0",
    "-0.0",
    "1.0",
    "1.5",
    "0.5",
    "1e3",
    "1E3",
    "1e308",
    "-1e308",
    "1e309",
    "5e-324",
    "9223372036854775807",
    "-9223372036854775808",
    "9223372036854775808",
    "-9223372036854775809",
    "18446744073709551615",
    "18446744073709551616",
    "1000000000",
    "1000000001",
    "999999999",
    "4294967296",
    "2147483648",
    "-2147483649",
    "00",
    "01",
    "+1",
    ".5",
    "1.",
    "0x10",
    "1_000",
    "NaN",
    "Infinity",
];

const RAW_LEAVES: &[&str] = &[
    "null",
    "true",
    "false",
    "\"\\ud800\"",
    "\"\\udfff\\ud800\"",
    "\"\\u0000\"",
    "\"\\u202e\"",
    "\"\\x41\"",
    "'single'",
];

pub(super) fn hostile_string() -> BoxedStrategy<String> {
    let controls = proptest::string::string_regex(
        "[\\x00-\\x1f\\x7f\\u{80}-\\u{9f}\\u{200b}-\\u{200f}\\u{202a}-\\u{202e}\\u{2066}-\\u{2069}a-z]{1,12}",
    )
    .expect("regex");
    prop_oneof![
        6 => select(HOSTILE_TEXTS).prop_map(str::to_owned),
        1 => (0usize..12_000).prop_map(|n| "a".repeat(n)),
        1 => (0usize..3_000).prop_map(|n| "💳".repeat(n)),
        1 => (0usize..400).prop_map(|n| "'; DROP TABLE payments;--<script>".repeat(n)),
        2 => any::<String>(),
        2 => controls,
    ]
    .boxed()
}

pub(super) fn hostile_number() -> BoxedStrategy<String> {
    prop_oneof![
        4 => select(NUMBER_TEXTS).prop_map(str::to_owned),
        2 => any::<i64>().prop_map(|n| n.to_string()),
        1 => any::<f64>().prop_map(|f| if f.is_finite() { format!("{f:e}") } else { "1e999".to_owned() }),
        1 => (1usize..500).prop_map(|n| format!("1{}", "0".repeat(n))),
        1 => (1usize..500).prop_map(|n| format!("-{}", "9".repeat(n))),
    ]
    .boxed()
}

/// A key that is not one of the route's fields (or is one, slightly wrong).
pub(super) fn stray_key() -> BoxedStrategy<String> {
    prop_oneof![
        3 => select(&[
            "", "__proto__", "constructor", "user_id ", "USER_ID", "amountKrw", "amount",
            "status", "refunded_amount_krw", "payment_id", "needs_review", "currency",
            "pg_secret", "id",
        ][..]).prop_map(str::to_owned),
        1 => hostile_string(),
    ]
    .boxed()
}

fn leaf(known: &Arc<Known>) -> BoxedStrategy<J> {
    let k = known.clone();
    prop_oneof![
        3 => hostile_number().prop_map(J::Raw),
        4 => hostile_string().prop_map(J::Str),
        2 => select(k.order_ids.iter().chain(&k.ids).chain(&k.payment_keys).cloned().collect::<Vec<_>>()).prop_map(J::Str),
        1 => select(k.amounts.clone()).prop_map(|a| J::Raw(a.to_string())),
        1 => select(RAW_LEAVES).prop_map(|raw| J::Raw(raw.to_owned())),
    ]
    .boxed()
}

pub(super) fn any_json(known: &Arc<Known>) -> BoxedStrategy<J> {
    leaf(known)
        .prop_recursive(3, 16, 4, |inner| {
            prop_oneof![
                prop::collection::vec(inner.clone(), 0..4).prop_map(J::Arr),
                prop::collection::vec((stray_key(), inner), 0..4).prop_map(J::Obj),
            ]
        })
        .boxed()
}

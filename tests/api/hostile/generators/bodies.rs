//! Bodies: objects of the route's fields, other JSON, and raw bytes that are not JSON at all.

use std::sync::Arc;

use proptest::prelude::*;
use proptest::sample::{Index, select};

use super::fields::object;
use super::json::{J, any_json};
use crate::hostile::known::Known;

const RAW_BODIES: &[&[u8]] = &[
    b"",
    b" ",
    b"null",
    b"{}",
    b"[]",
    b"{",
    b"}",
    b"\"string\"",
    b"{\"user_id\":}",
    b"{'user_id':'u-1'}",
    b"{\"reason\":\"x\",}",
    b"user_id=u-1&amount_krw=1000",
    b"<?xml version=\"1.0\"?><payment/>",
    b"\x00",
    b"{\"reason\":\"\xff\xfe\"}",
    b"{\"amount_krw\":1,\"amount_krw\":2}",
    b"{\"reason\":\"a\",\"reason\":\"b\"}",
    b"\xef\xbb\xbf{}",
    b"{\"a\":1}\x00",
];

pub(super) fn body(
    fields: &'static [(&'static str, f64)],
    known: &Arc<Known>,
) -> BoxedStrategy<Option<Vec<u8>>> {
    let object = object(fields, known);
    let text = |j: J| Some(j.text().into_bytes());
    prop_oneof![
        12 => object.clone().prop_map(text),
        2 => any_json(known).prop_map(text),
        1 => object.clone().prop_map(|j| Some(format!("[{}]", j.text()).into_bytes())),
        1 => (object.clone(), any::<Index>()).prop_map(|(j, cut)| {
            let bytes = j.text().into_bytes();
            Some(bytes[..cut.index(bytes.len() + 1)].to_vec())
        }),
        1 => object.clone().prop_map(|j| Some(format!("{} trailing", j.text()).into_bytes())),
        1 => object.prop_map(|j| Some(format!("\u{feff}{}", j.text()).into_bytes())),
        1 => prop::collection::vec(any::<u8>(), 0..256).prop_map(Some),
        2 => select(RAW_BODIES).prop_map(|b| Some(b.to_vec())),
        1 => Just(None),
        1 => (1usize..400).prop_map(|depth| Some(format!("{}{}", "[".repeat(depth), "]".repeat(depth)).into_bytes())),
        1 => (60_000usize..70_000).prop_map(|n| Some(format!("{{\"reason\":\"{}\"}}", "x".repeat(n)).into_bytes())),
    ]
    .boxed()
}

/// A body on a route that takes none: mostly nothing.
pub(super) fn stray_body(known: &Arc<Known>) -> BoxedStrategy<Option<Vec<u8>>> {
    prop_oneof![
        6 => Just(None),
        1 => any_json(known).prop_map(|j| Some(j.text().into_bytes())),
        1 => prop::collection::vec(any::<u8>(), 0..64).prop_map(Some),
    ]
    .boxed()
}

//! Headers: API keys right and wrong, content types, `Idempotency-Key`s valid and not.

use proptest::prelude::*;
use proptest::sample::select;

use crate::helpers::API_KEY;

/// Valid header value bytes: tab, visible ASCII, space, and obs-text (0x80..=0xff).
fn header_bytes(max: usize) -> BoxedStrategy<Vec<u8>> {
    prop::collection::vec(
        prop_oneof![
            8 => 0x21u8..0x7f,
            1 => Just(b' '),
            1 => Just(b'\t'),
            2 => 0x80u8..=0xff,
        ],
        0..max,
    )
    .boxed()
}

fn authorization() -> BoxedStrategy<Option<Vec<u8>>> {
    let right = [
        format!("Bearer {API_KEY}"),
        format!("bearer {API_KEY}"),
        format!("BEARER  {API_KEY} "),
    ];
    let wrong = [
        "Bearer wrong-key".to_owned(),
        format!("Bearer {API_KEY}x"),
        format!("Bearer {}", &API_KEY[1..]),
        format!("Basic {API_KEY}"),
        format!("Token {API_KEY}"),
        API_KEY.to_owned(),
        "Bearer".to_owned(),
        "Bearer ".to_owned(),
        "Bearer '; DROP TABLE payments;--".to_owned(),
        format!("Bearer {}", "k".repeat(4000)),
    ];
    prop_oneof![
        3 => Just(None),
        6 => select(right.to_vec()).prop_map(|v| Some(v.into_bytes())),
        2 => select(wrong.to_vec()).prop_map(|v| Some(v.into_bytes())),
        1 => header_bytes(80).prop_map(Some),
    ]
    .boxed()
}

fn content_type(json_body: bool) -> BoxedStrategy<Option<Vec<u8>>> {
    let odd: &[&[u8]] = &[
        b"application/json; charset=utf-8",
        b"application/problem+json",
        b"application/vnd.api+json",
        b"APPLICATION/JSON",
        b"text/plain",
        b"text/json",
        b"application/x-www-form-urlencoded",
        b"multipart/form-data; boundary=x",
        b"application/jsonx",
        b"application/json\xff",
        b"",
        b"*/*",
        b"application/",
        b"json",
    ];
    let usual = if json_body { 14 } else { 1 };
    prop_oneof![
        usual => Just(Some(b"application/json".to_vec())),
        2 => Just(None),
        3 => select(odd).prop_map(|v| Some(v.to_vec())),
        1 => header_bytes(40).prop_map(Some),
    ]
    .boxed()
}

fn idempotency_key() -> BoxedStrategy<Option<Vec<u8>>> {
    prop_oneof![
        14 => Just(None),
        2 => select(&["hostile-key-1", "hostile-key-2", "k"][..]).prop_map(|k| Some(k.as_bytes().to_vec())),
        1 => "[ -~]{1,40}".prop_map(|k| Some(k.into_bytes())),
        1 => select(vec![Vec::new(), vec![b'k'; 255], vec![b'k'; 256], b"tab\there".to_vec(), "키".as_bytes().to_vec()]).prop_map(Some),
        1 => header_bytes(40).prop_map(Some),
    ]
    .boxed()
}

pub(super) fn headers(json_body: bool) -> BoxedStrategy<Vec<(&'static str, Vec<u8>)>> {
    let extra = prop_oneof![
        6 => Just(None),
        1 => header_bytes(60).prop_map(|v| Some(("x-request-id", v))),
        1 => header_bytes(60).prop_map(|v| Some(("tosspayments-webhook-transmission-id", v))),
        1 => header_bytes(60).prop_map(|v| Some(("accept", v))),
        1 => header_bytes(60).prop_map(|v| Some(("x-forwarded-for", v))),
    ];
    (
        authorization(),
        content_type(json_body),
        idempotency_key(),
        extra,
    )
        .prop_map(|(auth, content_type, key, extra)| {
            let mut headers = Vec::new();
            if let Some(v) = auth {
                headers.push(("authorization", v));
            }
            if let Some(v) = content_type {
                headers.push(("content-type", v));
            }
            if let Some(v) = key {
                headers.push(("idempotency-key", v));
            }
            if let Some((name, v)) = extra {
                headers.push((name, v));
            }
            headers
        })
        .boxed()
}

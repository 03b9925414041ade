//! Strategies: every route with its usual method, path, query, headers and body, each of them
//! often hostile.

mod bodies;
mod fields;
mod headers;
mod json;
mod targets;

use std::sync::Arc;

use proptest::prelude::*;
use proptest::sample::select;

use bodies::{body, stray_body};
use fields::{
    CONFIRM_FIELDS, CREATE_FIELDS, EVENT_PARAMS, FAIL_PARAMS, JUNK_PARAMS, LIST_PARAMS,
    REFUND_FIELDS, SUCCESS_PARAMS, WEBHOOK_FIELDS,
};
use headers::headers;
use json::hostile_string;
use targets::{METHODS, UNKNOWN_PATHS, method, path_id, percent_encoded, query};

use super::known::Known;
use super::request::Hostile;

fn request(
    method: BoxedStrategy<String>,
    path: BoxedStrategy<String>,
    query: BoxedStrategy<String>,
    json_body: bool,
    body: BoxedStrategy<Option<Vec<u8>>>,
) -> BoxedStrategy<Hostile> {
    (method, path, query, headers(json_body), body)
        .prop_map(|(method, path, query, headers, body)| {
            Hostile::new(method, path, query, headers, body)
        })
        // The `http` crate cannot even build a longer URI (hyper would refuse it anyway).
        .prop_filter("URI under 60 KB", |request| request.target.len() < 60_000)
        .boxed()
}

fn fixed(path: &'static str) -> BoxedStrategy<String> {
    Just(path.to_owned()).boxed()
}

fn no_query() -> BoxedStrategy<String> {
    Just(String::new()).boxed()
}

pub(super) fn any_request(known: &Arc<Known>) -> BoxedStrategy<Hostile> {
    let k = known;
    let with_id = |suffix: &'static str| {
        path_id(k)
            .prop_map(move |id| format!("/payments/{id}{suffix}"))
            .boxed()
    };
    let junk_query = || prop_oneof![3 => no_query(), 1 => query(JUNK_PARAMS, k)].boxed();
    prop_oneof![
        3 => request(method("POST"), fixed("/payments"), junk_query(), true, body(CREATE_FIELDS, k)),
        2 => request(method("GET"), fixed("/payments"), query(LIST_PARAMS, k), false, stray_body(k)),
        2 => request(method("GET"), with_id(""), junk_query(), false, stray_body(k)),
        3 => request(method("POST"), fixed("/payments/confirm"), junk_query(), true, body(CONFIRM_FIELDS, k)),
        3 => request(method("POST"), with_id("/refund"), junk_query(), true, body(REFUND_FIELDS, k)),
        1 => request(method("GET"), with_id("/refunds"), junk_query(), false, stray_body(k)),
        2 => request(method("GET"), fixed("/payments/toss/success"), query(SUCCESS_PARAMS, k), false, stray_body(k)),
        2 => request(method("GET"), fixed("/payments/toss/fail"), query(FAIL_PARAMS, k), false, stray_body(k)),
        2 => request(method("POST"), fixed("/webhooks/toss"), junk_query(), true, body(WEBHOOK_FIELDS, k)),
        1 => request(method("GET"), fixed("/events"), query(EVENT_PARAMS, k), false, stray_body(k)),
        1 => request(method("GET"), select(&["/health", "/ready"][..]).prop_map(str::to_owned).boxed(), junk_query(), false, stray_body(k)),
        2 => request(
            select(METHODS).prop_map(str::to_owned).boxed(),
            prop_oneof![
                3 => select(UNKNOWN_PATHS).prop_map(str::to_owned),
                1 => prop::collection::vec(hostile_string(), 1..4)
                    .prop_map(|segments| format!("/{}", segments.iter().map(|s| percent_encoded(s)).collect::<Vec<_>>().join("/"))),
            ]
            .boxed(),
            junk_query(),
            false,
            stray_body(k),
        ),
    ]
    .boxed()
}

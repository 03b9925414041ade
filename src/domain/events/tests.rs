//! The event types checked against the contract (`api-contract.md`, beside the repository, and
//! the old service's payloads in `reference/original-service.md`).

use std::collections::BTreeSet;

use chrono::Utc;

use super::*;

fn shared(name: &str) -> String {
    let path = format!("{}/../shared/{name}", env!("CARGO_MANIFEST_DIR"));
    std::fs::read_to_string(&path).unwrap_or_else(|error| panic!("{path}: {error}"))
}

/// Every `` `payment.x` `` / `` `refund.x` `` the text names, with the field names of the first
/// `{…}` that follows it in the same sentence, if any (nested braces name their field only).
fn events_in(text: &str) -> Vec<(String, Option<BTreeSet<String>>)> {
    let mut found = Vec::new();
    for (start, _) in text.match_indices('`') {
        let rest = &text[start + 1..];
        let Some(end) = rest.find('`') else { break };
        // `payment.x {a, b}` names the event and its fields in one span.
        let (name, inline) = match rest[..end].split_once(" {") {
            Some((name, fields)) => (name, Some(fields_of(fields))),
            None => (&rest[..end], None),
        };
        let is_event = ["payment.", "refund."]
            .iter()
            .any(|prefix| name.strip_prefix(prefix).is_some_and(is_word))
            && !name.contains('/');
        if !is_event {
            continue;
        }
        let after = &rest[end + 1..];
        let sentence = &after[..after.find(". ").unwrap_or(after.len())];
        let fields = sentence
            .find('{')
            .filter(|open| !sentence[..*open].contains('`') || sentence[..*open].trim() == "`")
            .map(|open| fields_of(&sentence[open + 1..]));
        found.push((name.to_owned(), inline.or(fields)));
    }
    found
}

fn is_word(text: &str) -> bool {
    !text.is_empty() && text.bytes().all(|b| b.is_ascii_lowercase() || b == b'_')
}

/// `a, b: {c, d}, e}` → {a, b, e}.
fn fields_of(text: &str) -> BTreeSet<String> {
    let (mut depth, mut current, mut fields) = (0, String::new(), BTreeSet::new());
    for c in text.chars() {
        match c {
            '{' => depth += 1,
            '}' if depth == 0 => break,
            '}' => depth -= 1,
            ',' if depth == 0 => {
                fields.insert(std::mem::take(&mut current));
            }
            _ if depth == 0 => current.push(c),
            _ => {}
        }
    }
    fields.insert(current);
    fields
        .into_iter()
        .map(|field| {
            field
                .split(':')
                .next()
                .unwrap_or_default()
                .trim()
                .to_owned()
        })
        .filter(|field| !field.is_empty())
        .collect()
}

fn samples() -> Vec<EventPayload> {
    let mut payment = sample_payment();
    payment.refunded_amount_krw = 1000;
    let refund = Refund::sample(payment.id, 1000, Utc::now());
    let failure = Failure::new("REJECT_CARD_PAYMENT", "declined");
    vec![
        PaymentCompleted::of(&payment, Some("toss"), Some("pk")),
        PaymentFailed::of(&payment, &failure),
        PaymentRefunded::of(&payment, &refund),
        PaymentWaitingForDeposit::of(&payment),
        PaymentCancelled::of(&payment, "no stock", &Actor::system()),
        RefundFailed::of(&payment, &refund, &failure),
        PaymentRetryScheduled::of(&payment, 1, Utc::now(), &failure),
        PaymentRetriesExhausted::of(&payment, 2, &failure),
    ]
}

#[test]
fn every_event_type_of_the_contract_has_a_payload_type_and_no_other() {
    let contract = shared("api-contract.md");
    let named: BTreeSet<String> = events_in(&contract)
        .into_iter()
        .map(|(name, _)| name)
        .collect();
    let ours: BTreeSet<String> = EventPayload::TYPES
        .iter()
        .map(|name| (*name).to_owned())
        .collect();
    assert_eq!(named, ours, "the contract's event types and ours");
    let built: Vec<&str> = samples().iter().map(EventPayload::event_type).collect();
    assert_eq!(
        built,
        EventPayload::TYPES,
        "one payload type per event type"
    );
}

#[test]
fn every_payload_carries_the_fields_the_contract_lists() {
    let mut listed = events_in(&shared("api-contract.md"));
    // The old service's payloads: `completed {…}; failed {…}; refunded {…}`.
    let original = shared("reference/original-service.md");
    let payloads = &original[original.find("Payloads:").expect("the old payloads")..];
    for name in ["completed", "failed", "refunded"] {
        let open = payloads.find(&format!("{name} {{")).expect(name) + name.len() + 2;
        listed.push((
            format!("payment.{name}"),
            Some(fields_of(&payloads[open..])),
        ));
    }
    let mut checked = BTreeSet::new();
    for payload in samples() {
        let value = serde_json::to_value(&payload).unwrap();
        let keys: BTreeSet<String> = value.as_object().unwrap().keys().cloned().collect();
        for (name, fields) in &listed {
            if let (true, Some(fields)) = (name == payload.event_type(), fields) {
                let missing: Vec<_> = fields.difference(&keys).collect();
                assert!(missing.is_empty(), "{name} lacks {missing:?}: {value}");
                checked.insert(name.clone());
            }
        }
    }
    for (name, fields) in &listed {
        assert!(
            fields.is_none() || checked.contains(name),
            "{name}: the contract lists its fields; no payload type checked them"
        );
    }
    assert!(checked.len() >= 7, "{checked:?}");
}

#[test]
fn requested_by_is_shown_as_the_envelope_shows_an_actor() {
    let payload = PaymentCancelled::of(&sample_payment(), "r", &Actor::api_key("key-1"));
    let value = serde_json::to_value(payload).unwrap();
    assert_eq!(
        value["requested_by"],
        serde_json::json!({"type": "api_key", "name": "key-1"})
    );
}

fn sample_payment() -> Payment {
    Payment::sample("order-1", 1000, Utc::now())
}

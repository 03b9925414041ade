//! What must never appear (each secret, and encodings of it), and the search for it.

use base64::Engine;
use base64::engine::general_purpose::{STANDARD, STANDARD_NO_PAD, URL_SAFE, URL_SAFE_NO_PAD};

use super::{
    API_KEY_ONE, API_KEY_TWO, BILLING_KEY, ENCRYPTION_KEY_BYTES, REFUND_ACCOUNT_NUMBER,
    TOSS_BILLING_SECRET, TOSS_SECRET,
};

/// Everything that must never appear, with a name for the report. Every secret contains
/// `SECRETSCAN`, so a shortened or partly masked one is caught too.
fn forbidden() -> Vec<(String, String)> {
    let mut needles = vec![(
        "the marker of every secret".to_owned(),
        "SECRETSCAN".to_owned(),
    )];
    let encryption_key = STANDARD.encode(ENCRYPTION_KEY_BYTES);
    let encryption_raw = String::from_utf8_lossy(ENCRYPTION_KEY_BYTES).into_owned();
    for (name, secret) in [
        ("the Toss secret key", TOSS_SECRET),
        ("API key one", API_KEY_ONE),
        ("API key two", API_KEY_TWO),
        ("the Toss billing secret key", TOSS_BILLING_SECRET),
        ("the billing key", BILLING_KEY),
        ("BILLING_KEY_ENCRYPTION_KEY", encryption_key.as_str()),
        ("the encryption key's bytes", encryption_raw.as_str()),
    ] {
        needles.push((name.to_owned(), secret.to_owned()));
        needles.push((format!("Bearer <{name}>"), format!("Bearer {secret}")));
        for with_colon in [format!("{secret}:"), secret.to_owned()] {
            for (engine, encoded) in [
                ("base64", STANDARD.encode(&with_colon)),
                (
                    "base64 without padding",
                    STANDARD_NO_PAD.encode(&with_colon),
                ),
                ("URL-safe base64", URL_SAFE.encode(&with_colon)),
                (
                    "URL-safe base64 without padding",
                    URL_SAFE_NO_PAD.encode(&with_colon),
                ),
            ] {
                needles.push((format!("{engine} of {name:?} + {with_colon:?}"), encoded));
            }
        }
    }
    needles.push((
        "the refund account number".to_owned(),
        REFUND_ACCOUNT_NUMBER.to_owned(),
    ));
    needles.push((
        "the refund account number's first digits".to_owned(),
        REFUND_ACCOUNT_NUMBER[..8].to_owned(),
    ));
    needles.push((
        "the refund account number, base64".to_owned(),
        STANDARD.encode(REFUND_ACCOUNT_NUMBER),
    ));
    needles
}

/// The needles found in `text`, with where they were found.
pub(super) fn leaks(text: &str, place: &str) -> Vec<String> {
    forbidden()
        .into_iter()
        .filter(|(_, needle)| text.to_lowercase().contains(&needle.to_lowercase()))
        .map(|(name, needle)| {
            let at = text
                .to_lowercase()
                .find(&needle.to_lowercase())
                .unwrap_or(0);
            let line_start = text[..at].rfind('\n').map_or(0, |n| n + 1);
            let line_end = text[at..].find('\n').map_or(text.len(), |n| at + n);
            let line: String = text[line_start..line_end].chars().take(600).collect();
            format!("{name} ({needle:?}) in {place}:\n    {line}")
        })
        .collect()
}

//! One generated request, shown as an HTTP request when a case fails.

use std::fmt;

#[derive(Clone)]
pub(super) struct Hostile {
    pub(super) method: String,
    /// Path and query, exactly as sent (normalised by the URL parser).
    pub(super) target: String,
    pub(super) headers: Vec<(&'static str, Vec<u8>)>,
    pub(super) body: Option<Vec<u8>>,
}

impl Hostile {
    pub(super) fn new(
        method: String,
        path: String,
        query: String,
        headers: Vec<(&'static str, Vec<u8>)>,
        body: Option<Vec<u8>>,
    ) -> Self {
        let url = url::Url::parse(&format!("http://127.0.0.1{path}{query}"))
            .expect("generated paths and queries parse");
        let target = match url.query() {
            Some(query) => format!("{}?{query}", url.path()),
            None => url.path().to_owned(),
        };
        Self {
            method,
            target,
            headers,
            body,
        }
    }

    fn path(&self) -> &str {
        self.target.split('?').next().unwrap_or_default()
    }

    fn header(&self, name: &str) -> Option<&[u8]> {
        self.headers
            .iter()
            .find(|(n, _)| *n == name)
            .map(|(_, v)| v.as_slice())
    }

    /// What the request is, for the rules about what it may change.
    pub(super) fn route(&self) -> Route {
        let path = self.path();
        let segments: Vec<&str> = path.trim_start_matches('/').split('/').collect();
        // HEAD runs the GET handler (RFC 9110), so a HEAD of the success redirect confirms.
        let method = match self.method.as_str() {
            "HEAD" => "GET",
            other => other,
        };
        match (method, segments.as_slice()) {
            ("POST", ["payments"]) => Route::Create,
            ("POST", ["payments", "confirm"]) => Route::Confirm,
            ("POST", ["payments", _, "refund"]) => Route::Refund,
            ("GET", ["payments", "toss", "success"]) => Route::Success,
            ("GET", ["payments", "toss", "fail"]) => Route::Fail,
            ("POST", ["webhooks", "toss"]) => Route::Webhook,
            _ => Route::ReadOnly,
        }
    }

    /// A POST our idempotency layer may remember (any POST but the webhook, with a key).
    pub(super) fn may_store_idempotency_key(&self) -> bool {
        self.method == "POST"
            && !self.path().starts_with("/webhooks/")
            && self.header("idempotency-key").is_some()
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Route {
    Create,
    Confirm,
    Refund,
    Success,
    Fail,
    Webhook,
    /// Everything else: reads, unknown routes, wrong methods. Must never change anything.
    ReadOnly,
}

impl fmt::Debug for Hostile {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        writeln!(f, "    {} {}", self.method, shown(self.target.as_bytes()))?;
        for (name, value) in &self.headers {
            writeln!(f, "    {name}: {}", shown(value))?;
        }
        match &self.body {
            None => writeln!(f, "    (no body)"),
            Some(body) => writeln!(f, "    body ({} bytes): {}", body.len(), shown(body)),
        }
    }
}

/// Bytes as a readable, exact literal: Rust string escapes for UTF-8, `\xNN` otherwise; long
/// values keep their start and end.
pub(super) fn shown(bytes: &[u8]) -> String {
    const HEAD: usize = 1500;
    const TAIL: usize = 200;
    let literal = |bytes: &[u8]| match std::str::from_utf8(bytes) {
        Ok(text) => format!("{text:?}"),
        Err(_) => format!("b\"{}\"", bytes.escape_ascii()),
    };
    if bytes.len() <= HEAD + TAIL + 100 {
        return literal(bytes);
    }
    let head = floor_char_boundary(bytes, HEAD);
    let tail = floor_char_boundary(bytes, bytes.len() - TAIL);
    format!(
        "{} ... [{} bytes left out] ... {}",
        literal(&bytes[..head]),
        tail - head,
        literal(&bytes[tail..])
    )
}

fn floor_char_boundary(bytes: &[u8], mut at: usize) -> usize {
    // Step back over UTF-8 continuation bytes so each half stays valid text.
    while at > 0 && at < bytes.len() && (bytes[at] & 0b1100_0000) == 0b1000_0000 {
        at -= 1;
    }
    at
}

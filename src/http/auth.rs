//! API keys: `Authorization: Bearer <key>`, compared in constant time by digest, never logged.
//! Each key has a name (never the key) and scopes; each privileged route needs one scope.

use std::collections::BTreeSet;
use std::sync::Arc;

use axum::extract::{OptionalFromRequestParts, Request, State};
use axum::http::request::Parts;
use axum::http::{HeaderMap, header};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use secrecy::{ExposeSecret, SecretString};
use serde::Deserialize;
use sha2::{Digest, Sha256};
use strum::{EnumIter, EnumString, IntoEnumIterator, IntoStaticStr};
use subtle::ConstantTimeEq;

use super::AppState;
use crate::domain::{Actor, Caller};
use crate::error::AppError;

/// What an API key may do, named as in `API_KEYS_FILE` and in the OpenAPI document. Every
/// privileged route needs exactly one scope, declared where the route is registered
/// (`http::all_routes`).
#[derive(
    Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, EnumIter, EnumString, IntoStaticStr,
)]
pub enum ApiScope {
    /// Read payments, their refunds and reviews.
    #[strum(serialize = "payments:read")]
    PaymentsRead,
    /// Create payments, confirm without a `payment_key`, cancel.
    #[strum(serialize = "payments:write")]
    PaymentsWrite,
    #[strum(serialize = "refunds:write")]
    RefundsWrite,
    /// Customers, billing keys, charges, schedules, consents.
    #[strum(serialize = "billing:write")]
    BillingWrite,
    #[strum(serialize = "events:read")]
    EventsRead,
    #[strum(serialize = "reconciliation")]
    Reconciliation,
    /// Resolve payments set aside for review.
    #[strum(serialize = "review")]
    Review,
    #[strum(serialize = "metrics:read")]
    MetricsRead,
}

impl ApiScope {
    pub fn as_str(self) -> &'static str {
        self.into()
    }
}

/// A set of scopes.
pub type Scopes = BTreeSet<ApiScope>;

/// Who holds the key a request carries: its configured name (never the key) and its scopes.
/// The API-key layer puts it in the request's extensions.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct KeyHolder {
    pub name: Arc<str>,
    pub scopes: Scopes,
}

impl KeyHolder {
    /// The holder as the actor of a change: `api_key` by name.
    pub fn actor(&self) -> Actor {
        Actor::api_key(&*self.name)
    }
}

/// A configured key: kept only as its SHA-256 digest.
#[derive(Clone)]
struct NamedKey {
    holder: KeyHolder,
    digest: [u8; 32],
}

/// The configured keys, kept only as SHA-256 digests so that comparing takes the same time
/// whatever the length or content of the key presented.
#[derive(Clone, Default)]
pub struct ApiKeys {
    keys: Vec<NamedKey>,
}

impl std::fmt::Debug for ApiKeys {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "ApiKeys({} keys)", self.keys.len())
    }
}

/// `API_KEYS_FILE`: `[[api_keys]]` entries.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct KeysFile {
    #[serde(default)]
    api_keys: Vec<KeyEntry>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct KeyEntry {
    name: String,
    sha256: String,
    scopes: Vec<String>,
}

impl ApiKeys {
    /// The keys of `API_KEYS`: each has every scope and is named `key-1`, `key-2`, … in order.
    pub fn new(keys: &[SecretString]) -> Self {
        Self {
            keys: keys
                .iter()
                .enumerate()
                .map(|(index, key)| NamedKey {
                    holder: KeyHolder {
                        name: format!("key-{}", index + 1).into(),
                        scopes: ApiScope::iter().collect(),
                    },
                    digest: Sha256::digest(key.expose_secret().as_bytes()).into(),
                })
                .collect(),
        }
    }

    /// `API_KEYS` and, when set, the keys of the TOML file at `file` (`API_KEYS_FILE`). A file
    /// that cannot be read, is not TOML of `[[api_keys]]` entries `{name, sha256, scopes}`,
    /// names an unknown scope, repeats a name or carries a digest that is not 64 hex
    /// characters is refused with one line that says where and why (never a key: the file
    /// holds only digests).
    pub fn load(keys: &[SecretString], file: Option<&str>) -> Result<Self, String> {
        let mut all = Self::new(keys);
        if let Some(path) = file {
            let text = std::fs::read_to_string(path)
                .map_err(|error| format!("API_KEYS_FILE {path}: cannot be read: {error}"))?;
            let named =
                Self::parse_file(&text).map_err(|why| format!("API_KEYS_FILE {path}: {why}"))?;
            all.keys.extend(named.keys);
        }
        match (all.repeated_name(), file) {
            (None, _) => Ok(all),
            (Some(name), Some(path)) => Err(format!(
                "API_KEYS_FILE {path}: the name {name:?} is used twice (API_KEYS are named key-1, key-2, …)"
            )),
            (Some(name), None) => Err(format!("the API key name {name:?} is used twice")),
        }
    }

    /// The keys of an `API_KEYS_FILE` text.
    fn parse_file(text: &str) -> Result<Self, String> {
        let file: KeysFile = toml::from_str(text).map_err(|error| {
            let line = error
                .span()
                .map(|span| text[..span.start.min(text.len())].lines().count().max(1));
            let message = error.message().trim().replace(['\n', '\r'], " ");
            match line {
                Some(line) => format!("not a valid [[api_keys]] file (line {line}): {message}"),
                None => format!("not a valid [[api_keys]] file: {message}"),
            }
        })?;
        let keys = file
            .api_keys
            .into_iter()
            .enumerate()
            .map(|(index, entry)| {
                let which = format!("entry {} ({:?})", index + 1, entry.name);
                let name = entry.name.trim();
                if name.is_empty() || name.len() > 64 || name.chars().any(char::is_control) {
                    return Err(format!(
                        "{which}: name must be 1 to 64 characters without control characters"
                    ));
                }
                let digest = parse_digest(&entry.sha256).ok_or_else(|| {
                    format!(
                        "{which}: sha256 must be the 64 hex characters of the key's SHA-256 digest \
                         (printf %s \"$KEY\" | sha256sum)"
                    )
                })?;
                let scopes = entry
                    .scopes
                    .iter()
                    .map(|scope| {
                        scope.parse().map_err(|_| {
                            let known: Vec<_> = ApiScope::iter().map(ApiScope::as_str).collect();
                            format!(
                                "{which}: unknown scope {scope:?} (known: {})",
                                known.join(", ")
                            )
                        })
                    })
                    .collect::<Result<Scopes, String>>()?;
                Ok(NamedKey {
                    holder: KeyHolder {
                        name: name.into(),
                        scopes,
                    },
                    digest,
                })
            })
            .collect::<Result<Vec<_>, String>>()?;
        let keys = Self { keys };
        match keys.repeated_name() {
            Some(name) => Err(format!("the name {name:?} is used by two entries")),
            None => Ok(keys),
        }
    }

    /// A name two keys share, if any.
    fn repeated_name(&self) -> Option<&str> {
        let mut seen = std::collections::HashSet::new();
        let mut names = self.keys.iter().map(|key| &*key.holder.name);
        names.find(|name| !seen.insert(*name))
    }

    pub fn is_empty(&self) -> bool {
        self.keys.is_empty()
    }

    /// The keys' names, in order (for the start-up log; never a key or digest).
    pub fn names(&self) -> Vec<&str> {
        self.keys.iter().map(|key| &*key.holder.name).collect()
    }

    /// The holder of the key the request carries, if it carries one of ours. Every key is
    /// compared, whichever matches, so the time does not tell which one did.
    pub fn holder(&self, headers: &HeaderMap) -> Option<KeyHolder> {
        let token = bearer_token(headers).filter(|token| !token.is_empty())?;
        let digest: [u8; 32] = Sha256::digest(token.as_bytes()).into();
        let mut found = None;
        for key in &self.keys {
            if bool::from(key.digest.ct_eq(&digest)) {
                found = Some(&key.holder);
            }
        }
        found.cloned()
    }

    /// The merchant when the request carries one of the keys (whichever, however spelled);
    /// anyone else is anonymous.
    pub fn caller(&self, headers: &HeaderMap) -> Caller {
        self.holder(headers)
            .map_or(Caller::Anonymous, |_| Caller::Merchant)
    }
}

/// A SHA-256 digest written in 64 hex characters (either case).
fn parse_digest(text: &str) -> Option<[u8; 32]> {
    let mut digest = [0u8; 32];
    hex::decode_to_slice(text.trim(), &mut digest).ok()?;
    Some(digest)
}

/// The token of `Authorization: Bearer <token>` (the scheme in any case).
fn bearer_token(headers: &HeaderMap) -> Option<&str> {
    headers
        .get(header::AUTHORIZATION)
        .and_then(|value| value.to_str().ok())
        .and_then(|value| {
            let (scheme, token) = value.split_once(' ')?;
            scheme.eq_ignore_ascii_case("bearer").then(|| token.trim())
        })
}

/// The layer of each group of privileged routes, in front of everything else on them (the
/// `Idempotency-Key` included): without a valid API key the answer is 401, with a key that
/// lacks the group's scope 403 `FORBIDDEN`, and the request learns nothing about its key or
/// body. It records the caller and the key's holder for the layers and extractors behind it.
pub async fn require_scope(
    State((keys, scope)): State<(Arc<ApiKeys>, ApiScope)>,
    mut request: Request,
    next: Next,
) -> Response {
    match keys.holder(request.headers()) {
        None => AppError::Unauthorized.into_response(),
        Some(holder) if !holder.scopes.contains(&scope) => {
            AppError::Forbidden(scope.as_str()).into_response()
        }
        Some(holder) => {
            request.extensions_mut().insert(Caller::Merchant);
            request.extensions_mut().insert(holder);
            next.run(request).await
        }
    }
}

/// The holder of the request's key, when it carries one of ours: recorded by the API-key
/// layer on the privileged routes, looked up on the others.
impl OptionalFromRequestParts<AppState> for KeyHolder {
    type Rejection = std::convert::Infallible;

    async fn from_request_parts(
        parts: &mut Parts,
        state: &AppState,
    ) -> Result<Option<Self>, Self::Rejection> {
        Ok(match parts.extensions.get::<KeyHolder>() {
            Some(holder) => Some(holder.clone()),
            None => state.api_keys.holder(&parts.headers),
        })
    }
}

/// `Ok` when `holder` may act with `scope`: 401 without a key, 403 without the scope.
pub fn require(holder: Option<&KeyHolder>, scope: ApiScope) -> Result<(), AppError> {
    match holder {
        None => Err(AppError::Unauthorized),
        Some(holder) if holder.scopes.contains(&scope) => Ok(()),
        Some(_) => Err(AppError::Forbidden(scope.as_str())),
    }
}

#[cfg(test)]
mod tests {
    use axum::http::HeaderValue;

    use super::*;

    fn headers(value: &str) -> HeaderMap {
        let mut headers = HeaderMap::new();
        headers.insert(header::AUTHORIZATION, HeaderValue::from_str(value).unwrap());
        headers
    }

    #[test]
    fn accepts_only_configured_keys() {
        let keys = ApiKeys::new(&["key-one".into(), "key-two".into()]);
        for (header, ok) in [
            ("Bearer key-one", true),
            ("bearer key-two", true),
            ("BEARER   key-two  ", true),
            ("Bearer key-three", false),
            ("Bearer ", false),
            ("Basic key-one", false),
            ("key-one", false),
        ] {
            let caller = [Caller::Anonymous, Caller::Merchant][usize::from(ok)];
            assert_eq!(keys.caller(&headers(header)), caller, "{header}");
        }
        assert_eq!(keys.caller(&HeaderMap::new()), Caller::Anonymous);
        assert!(!format!("{keys:?}").contains("key-one"));
    }

    fn file_keys() -> ApiKeys {
        let digest = |key: &str| hex::encode(Sha256::digest(key.as_bytes()));
        ApiKeys::parse_file(&format!(
            r#"
[[api_keys]]
name = "checkout"
sha256 = "{}"
scopes = ["payments:read", "payments:write"]

[[api_keys]]
name = "auditor"
sha256 = "{}"
scopes = []
"#,
            digest("checkout-key"),
            digest("auditor-key").to_ascii_uppercase(),
        ))
        .unwrap()
    }

    #[test]
    fn api_keys_are_named_by_position_never_by_the_key_and_have_every_scope() {
        let keys = ApiKeys::new(&["secret-one".into(), "secret-two".into()]);
        let holder = keys.holder(&headers("Bearer secret-two")).unwrap();
        assert_eq!(holder.scopes, ApiScope::iter().collect());
        let actor = |headers| keys.holder(&headers).map(|holder| holder.actor());
        assert_eq!(
            actor(headers("Bearer secret-two")),
            Some(Actor::api_key("key-2"))
        );
        assert_eq!(
            actor(headers("Bearer secret-one")),
            Some(Actor::api_key("key-1"))
        );
        assert_eq!(actor(headers("Bearer secret-three")), None);
    }

    #[test]
    fn file_keys_have_their_names_and_scopes() {
        let keys = file_keys();
        let checkout = keys.holder(&headers("Bearer checkout-key")).unwrap();
        assert_eq!(&*checkout.name, "checkout");
        assert!(checkout.scopes.contains(&ApiScope::PaymentsRead));
        assert!(checkout.scopes.contains(&ApiScope::PaymentsWrite));
        assert!(!checkout.scopes.contains(&ApiScope::RefundsWrite));
        let auditor = keys.holder(&headers("Bearer auditor-key")).unwrap();
        assert_eq!(auditor.scopes, Scopes::default());
        assert_eq!(
            keys.caller(&headers("Bearer auditor-key")),
            Caller::Merchant
        );
        assert!(keys.holder(&headers("Bearer other")).is_none());
        assert!(require(Some(&auditor), ApiScope::EventsRead).is_err());
        assert!(require(Some(&checkout), ApiScope::PaymentsWrite).is_ok());
        assert!(matches!(
            require(None, ApiScope::PaymentsWrite),
            Err(AppError::Unauthorized)
        ));
        assert!(matches!(
            require(Some(&checkout), ApiScope::Review),
            Err(AppError::Forbidden("review"))
        ));
    }

    #[test]
    fn bad_files_are_refused_with_one_line_that_says_why() {
        let entry = |name: &str, sha256: &str, rest: &str| {
            format!("[[api_keys]]\nname = \"{name}\"\nsha256 = \"{sha256}\"\n{rest}")
        };
        let (good, no_scopes) = ("0".repeat(64), "scopes = []\n");
        for (text, expected) in [
            (
                entry("a", &good, "scopes = [\"payments:wrte\"]\n"),
                "unknown scope \"payments:wrte\"",
            ),
            (
                entry("a", &good, no_scopes).repeat(2),
                "the name \"a\" is used by two entries",
            ),
            (
                entry("a", "abc", no_scopes),
                "entry 1 (\"a\"): sha256 must be the 64 hex characters",
            ),
            (entry("a", &"g".repeat(64), no_scopes), "sha256 must be"),
            (entry("a", &good, ""), "missing field `scopes`"),
            (
                entry("a", &good, "scope = []\nscopes = []\n"),
                "unknown field `scope`",
            ),
            (entry("  ", &good, no_scopes), "name must be"),
            (
                "[[api_keys]\n".to_owned(),
                "not a valid [[api_keys]] file (line 1)",
            ),
        ] {
            let why = ApiKeys::parse_file(&text).expect_err(&text);
            assert!(why.contains(expected), "{text}\n=> {why}");
            assert!(!why.contains('\n'), "{why}");
        }
        let both = ApiKeys::load(&["k".into()], None).unwrap();
        assert_eq!(both.keys.len(), 1);
    }

    #[test]
    fn no_keys_accepts_nothing() {
        let keys = ApiKeys::new(&[]);
        assert_eq!(keys.caller(&headers("Bearer ")), Caller::Anonymous);
        assert_eq!(keys.caller(&headers("Bearer anything")), Caller::Anonymous);
    }
}

//! Who made a change: shown on every event (`actor`) and on refunds, cancels and reviews
//! (`requested_by`). An API key is named, never shown.

use std::fmt;

use super::DomainError;

text_enum! {
    pub enum ActorType in "actor", "actor type" shown as "ActorTypeDto",
        "`api_key`: a caller with an API key; `buyer`: the public confirm and Toss's success/fail\n\
         redirects; `toss`: Toss's webhooks, its records read back and adopted, cancels made at Toss;\n\
         `operator`: a person in the operator console; `system`: the service's own rules (a window\n\
         passing, scheduled runs, housekeeping)." {
        /// A caller holding an API key, by the key's name (`key-1`, … for `API_KEYS`).
        ApiKey = "api_key",
        /// The buyer's browser or frontend: the public confirm, Toss's success and fail redirects.
        Buyer = "buyer",
        /// Toss: its webhooks, its records read back and adopted, cancels made at Toss.
        Toss = "toss",
        /// A person signed in to the operator console.
        Operator = "operator",
        /// The service's own rules: the reconciler when a window passes, scheduled runs,
        /// housekeeping.
        System = "system",
    }
}

/// Who made a change: on every event (`actor`) and on refunds, cancels and reviews
/// (`requested_by`). An API key is named (`key-1`, … for `API_KEYS`), never shown.
// `{"type", "name"}` in the events' envelope (`actor`), their payloads and the API alike.
#[derive(Debug, Clone, PartialEq, Eq, Hash, serde::Serialize, utoipa::ToSchema)]
#[schema(as = ActorDto, example = json!({"type": "api_key", "name": "key-1"}))]
pub struct Actor {
    #[serde(rename = "type")]
    pub kind: ActorType,
    /// The API key's or the operator's name; `null` for the others.
    #[schema(required = true)]
    pub name: Option<String>,
}

impl Actor {
    /// An API key by its name (never the key itself).
    pub fn api_key(name: impl Into<String>) -> Self {
        Self {
            kind: ActorType::ApiKey,
            name: Some(name.into()),
        }
    }

    pub fn buyer() -> Self {
        Self::unnamed(ActorType::Buyer)
    }

    pub fn toss() -> Self {
        Self::unnamed(ActorType::Toss)
    }

    pub fn system() -> Self {
        Self::unnamed(ActorType::System)
    }

    pub fn operator(name: impl Into<String>) -> Self {
        Self {
            kind: ActorType::Operator,
            name: Some(name.into()),
        }
    }

    pub fn unnamed(kind: ActorType) -> Self {
        Self { kind, name: None }
    }

    /// Read back from a row's type and name columns.
    pub fn from_parts(kind: &str, name: Option<String>) -> Result<Self, DomainError> {
        Ok(Self {
            kind: kind.parse()?,
            name,
        })
    }

    /// Who acts when Toss's record drives a change made on this actor's behalf: the caller of
    /// a request (its reply is adopted for it), Toss itself when the service only read Toss's
    /// record on its own schedule.
    pub fn adopting(&self) -> Self {
        match self.kind {
            ActorType::System => Self::toss(),
            ActorType::ApiKey | ActorType::Buyer | ActorType::Toss | ActorType::Operator => {
                self.clone()
            }
        }
    }
}

impl fmt::Display for Actor {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match &self.name {
            Some(name) => write!(f, "{}:{name}", self.kind.as_str()),
            None => f.write_str(self.kind.as_str()),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_schedule_adopts_as_toss_a_request_as_its_caller() {
        assert_eq!(Actor::system().adopting(), Actor::toss());
        assert_eq!(Actor::buyer().adopting(), Actor::buyer());
        assert_eq!(Actor::api_key("key-1").adopting(), Actor::api_key("key-1"));
        assert_eq!(Actor::api_key("key-2").to_string(), "api_key:key-2");
    }
}

//! Types with meaning. Nothing here knows about HTTP, SQL or Toss's JSON.

/// An enum stored and shown as text: each variant's text (`as_str`, `Display`), `FromStr` (an
/// unknown text is a [`DomainError`] naming the field), and `ALL` variants in order. With
/// `shown as "Name"` it is also on the wire as its text (`Serialize`), documented in the OpenAPI
/// document as the schema `Name` (a string of the texts, described by the optional text after).
macro_rules! text_enum {
    (
        $(#[$meta:meta])*
        pub enum $name:ident in $field:literal, $what:literal
            $(shown as $schema:literal $(, $description:literal)?)? {
            $($(#[$variant_meta:meta])* $variant:ident = $text:literal,)+
        }
    ) => {
        $(#[$meta])*
        #[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
        pub enum $name {
            $($(#[$variant_meta])* $variant,)+
        }

        impl $name {
            pub const ALL: [$name; [$($name::$variant),+].len()] = [$($name::$variant),+];

            pub fn as_str(self) -> &'static str {
                match self {
                    $($name::$variant => $text,)+
                }
            }
        }

        impl std::fmt::Display for $name {
            fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
                f.write_str(self.as_str())
            }
        }

        impl std::str::FromStr for $name {
            type Err = $crate::domain::DomainError;
            fn from_str(s: &str) -> Result<Self, Self::Err> {
                match s {
                    $($text => Ok($name::$variant),)+
                    other => Err($crate::domain::DomainError::new(
                        $field,
                        format!(concat!("unknown ", $what, " {:?}"), other),
                    )),
                }
            }
        }

        $(
            impl serde::Serialize for $name {
                fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
                    serializer.serialize_str(self.as_str())
                }
            }

            impl utoipa::PartialSchema for $name {
                fn schema() -> utoipa::openapi::RefOr<utoipa::openapi::schema::Schema> {
                    utoipa::openapi::schema::ObjectBuilder::new()
                        .schema_type(utoipa::openapi::schema::Type::String)
                        .description(None::<&str>$(.or(Some($description)))?)
                        .enum_values(Some($name::ALL.map($name::as_str)))
                        .into()
                }
            }

            impl utoipa::ToSchema for $name {
                fn name() -> std::borrow::Cow<'static, str> {
                    std::borrow::Cow::Borrowed($schema)
                }
            }
        )?
    };
}

/// `as_str`, `Display` and `Serialize` (as the text) of newtypes over a `String` that was
/// checked when it was made.
macro_rules! text_newtype {
    ($($name:ident),+) => {
        $(
            impl $name {
                pub fn as_str(&self) -> &str {
                    &self.0
                }
            }

            impl std::fmt::Display for $name {
                fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
                    f.write_str(&self.0)
                }
            }

            impl serde::Serialize for $name {
                fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
                    serializer.serialize_str(&self.0)
                }
            }
        )+
    };
}

mod actor;
mod attempts;
mod billing;
mod changes;
mod events;
mod ids;
mod methods;
mod pg;
mod pg_ref;
pub mod reconciliation;
mod records;
mod schedule;
mod status;

pub use actor::{Actor, ActorType};
pub use attempts::{Attempt, AttemptKind, AttemptStatus, AttemptWrite, EXPIRED_CODES, Settled};
pub use billing::{
    AuthKey, BillingCustomer, BillingKey, BillingKeySecret, BillingKeyStatus, CardInfo, CustomerKey,
};
pub use changes::{Patch, PaymentUpdate, status_after_refunds};
pub use events::{
    EventPayload, PaymentCancelled, PaymentCompleted, PaymentFailed, PaymentRefunded,
    PaymentRetriesExhausted, PaymentRetryScheduled, PaymentWaitingForDeposit, RefundFailed,
};
pub use ids::{
    Amount, AttemptId, BillingKeyId, Caller, DomainError, OrderId, PassId, PaymentId, PaymentKey,
    PaymentRef, RefundId, RunId, ScopedKey, UserId,
};
pub use methods::{
    CardSummary, PgDetails, RefundAccount, SealedAccount, VIRTUAL_ACCOUNT_METHOD, VirtualAccount,
    mask,
};
pub use pg::{PgSettlement, PgStatus, PgTransaction, TransactionKind};
pub use pg_ref::PgRef;
pub use records::{Payment, Refund, Review, Settlement, StoredEvent};
pub use schedule::{ChargeEnd, Consent, Next, Schedule, ScheduleStatus, retry_delays};
pub use status::{PaymentStatus, PaymentType, RefundOrigin, RefundStatus};

/// Times on the wire: RFC 3339 in UTC, to the millisecond, e.g. `2026-11-23T09:30:00.123Z`.
pub mod timestamps {
    use chrono::{DateTime, SecondsFormat, Utc};
    use serde::Serialize as _;

    pub fn text(at: DateTime<Utc>) -> String {
        at.to_rfc3339_opts(SecondsFormat::Millis, true)
    }

    /// `serialize_with` of a time: its [`text`].
    pub fn required<S: serde::Serializer>(
        at: &DateTime<Utc>,
        serializer: S,
    ) -> Result<S::Ok, S::Error> {
        serializer.serialize_str(&text(*at))
    }

    /// `serialize_with` of an optional time: its [`text`], or `null`.
    pub fn optional<S: serde::Serializer>(
        at: &Option<DateTime<Utc>>,
        serializer: S,
    ) -> Result<S::Ok, S::Error> {
        at.map(text).serialize(serializer)
    }
}

/// Why the last attempt to pay failed, as the PG (or the buyer's browser) reported it; shown
/// as an attempt's `AttemptFailureDto`.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, utoipa::ToSchema)]
#[schema(
    as = AttemptFailureDto,
    description = "Why an attempt failed, as Toss (or the service, for an attempt Toss never answered) said."
)]
pub struct Failure {
    pub code: String,
    pub message: String,
    /// Charges only: whether charging the same card again later may pass; `null` where nobody
    /// can say.
    // A declined charge's card may pass later (limit, balance, card company error) or never will
    // (lost, stopped, expired card); nobody can say for a one-time confirm or a redirect.
    #[schema(required = true)]
    pub retryable: Option<bool>,
}

impl Failure {
    /// A failure with nothing to say about retrying.
    pub fn new(code: impl Into<String>, message: impl Into<String>) -> Self {
        Self {
            code: code.into(),
            message: message.into(),
            retryable: None,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::reconciliation::{DiscrepancyKind, RunStatus, RunTrigger};
    use super::*;

    /// Every value of a `text_enum!` reads back from its text; an unknown text does not read.
    fn reads_back<T: Copy + PartialEq + std::fmt::Debug + std::str::FromStr>(
        all: &[T],
        text: fn(T) -> &'static str,
    ) {
        for &value in all {
            assert_eq!(text(value).parse::<T>().ok(), Some(value));
        }
        assert!("DONE_OR_ADMIN".parse::<T>().is_err());
    }

    #[test]
    fn text_enums_read_back_as_written() {
        reads_back(&PaymentStatus::ALL, PaymentStatus::as_str);
        reads_back(&RefundStatus::ALL, RefundStatus::as_str);
        reads_back(&RefundOrigin::ALL, RefundOrigin::as_str);
        reads_back(&PaymentType::ALL, PaymentType::as_str);
        reads_back(&ActorType::ALL, ActorType::as_str);
        reads_back(&AttemptKind::ALL, AttemptKind::as_str);
        reads_back(&AttemptStatus::ALL, AttemptStatus::as_str);
        reads_back(&ScheduleStatus::ALL, ScheduleStatus::as_str);
        reads_back(&BillingKeyStatus::ALL, BillingKeyStatus::as_str);
        reads_back(&TransactionKind::ALL, TransactionKind::as_str);
        reads_back(&RunStatus::ALL, RunStatus::as_str);
        reads_back(&RunTrigger::ALL, RunTrigger::as_str);
        reads_back(&DiscrepancyKind::ALL, DiscrepancyKind::as_str);
        // Toss's status is not ours; the schedule's texts are on the wire.
        assert!("DONE".parse::<PaymentStatus>().is_err());
        assert_eq!(
            ScheduleStatus::ALL.map(ScheduleStatus::as_str),
            ["SCHEDULED", "CHARGING", "DONE", "EXHAUSTED", "CANCELLED"]
        );
    }
}

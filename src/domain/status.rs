use std::fmt;
use std::str::FromStr;

use super::DomainError;

/// The life of a payment. See README "State machine" for who triggers each transition.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum PaymentStatus {
    /// Created; waiting for the buyer to pay (again, after a failed attempt).
    Pending,
    /// A confirm was sent to the PG and its outcome is not known yet.
    InProgress,
    /// The PG issued a virtual account; the buyer has not deposited yet.
    WaitingForDeposit,
    Completed,
    /// Terminal failure. Reserved: a declined attempt returns the payment to `Pending`
    /// so the buyer can try again with the same order.
    Failed,
    Cancelled,
    Refunded,
    PartialRefund,
}

impl PaymentStatus {
    pub const ALL: [PaymentStatus; 8] = [
        Self::Pending,
        Self::InProgress,
        Self::WaitingForDeposit,
        Self::Completed,
        Self::Failed,
        Self::Cancelled,
        Self::Refunded,
        Self::PartialRefund,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            Self::Pending => "PENDING",
            Self::InProgress => "IN_PROGRESS",
            Self::WaitingForDeposit => "WAITING_FOR_DEPOSIT",
            Self::Completed => "COMPLETED",
            Self::Failed => "FAILED",
            Self::Cancelled => "CANCELLED",
            Self::Refunded => "REFUNDED",
            Self::PartialRefund => "PARTIAL_REFUND",
        }
    }

    /// Whether the state machine allows `self -> to`. Every state change the service makes
    /// is checked against this table (and enforced in SQL by a conditional update).
    pub fn can_become(self, to: PaymentStatus) -> bool {
        use PaymentStatus::*;
        match self {
            Pending => matches!(
                to,
                InProgress | Completed | Pending | Cancelled | WaitingForDeposit
            ),
            InProgress => matches!(to, Completed | Pending | Failed | WaitingForDeposit),
            WaitingForDeposit => matches!(to, Completed | Pending | Cancelled),
            Completed => matches!(to, PartialRefund | Refunded),
            PartialRefund => matches!(to, PartialRefund | Refunded),
            Failed => false,
            Cancelled => false,
            Refunded => false,
        }
    }

    /// Money was taken and some of it may still be returned.
    pub fn is_refundable(self) -> bool {
        use PaymentStatus::*;
        match self {
            Completed | PartialRefund => true,
            Pending | InProgress | WaitingForDeposit | Failed | Cancelled | Refunded => false,
        }
    }
}

impl fmt::Display for PaymentStatus {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl FromStr for PaymentStatus {
    type Err = DomainError;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Self::ALL
            .into_iter()
            .find(|status| status.as_str() == s)
            .ok_or_else(|| DomainError::new("status", format!("unknown payment status {s:?}")))
    }
}

/// Who made a refund: this service (through the PG, or recorded without one), or someone at the
/// PG directly (Toss's dashboard), found in the PG's record.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum RefundOrigin {
    Service,
    Pg,
}

impl RefundOrigin {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Service => "SERVICE",
            Self::Pg => "PG",
        }
    }
}

impl FromStr for RefundOrigin {
    type Err = DomainError;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s {
            "SERVICE" => Ok(Self::Service),
            "PG" => Ok(Self::Pg),
            other => Err(DomainError::new(
                "origin",
                format!("unknown refund origin {other:?}"),
            )),
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum RefundStatus {
    /// Sent to the PG; outcome not known yet.
    Pending,
    Completed,
    /// The PG's record shows the refund did not happen.
    Failed,
}

impl RefundStatus {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Pending => "PENDING",
            Self::Completed => "COMPLETED",
            Self::Failed => "FAILED",
        }
    }
}

impl FromStr for RefundStatus {
    type Err = DomainError;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s {
            "PENDING" => Ok(Self::Pending),
            "COMPLETED" => Ok(Self::Completed),
            "FAILED" => Ok(Self::Failed),
            other => Err(DomainError::new(
                "status",
                format!("unknown refund status {other:?}"),
            )),
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
pub enum PaymentType {
    #[default]
    OneTime,
    Subscription,
}

impl PaymentType {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::OneTime => "ONE_TIME",
            Self::Subscription => "SUBSCRIPTION",
        }
    }
}

impl FromStr for PaymentType {
    type Err = DomainError;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s {
            "ONE_TIME" => Ok(Self::OneTime),
            "SUBSCRIPTION" => Ok(Self::Subscription),
            other => Err(DomainError::new(
                "payment_type",
                format!("unknown payment type {other:?}"),
            )),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::PaymentStatus::{self, *};

    #[test]
    fn status_round_trips_through_text() {
        for status in PaymentStatus::ALL {
            assert_eq!(status.as_str().parse::<PaymentStatus>().unwrap(), status);
        }
        assert!("DONE".parse::<PaymentStatus>().is_err());
    }

    #[test]
    fn confirm_paths() {
        assert!(Pending.can_become(InProgress));
        assert!(
            Pending.can_become(Completed),
            "no-op gateway confirms directly"
        );
        assert!(InProgress.can_become(Completed));
        assert!(
            InProgress.can_become(Pending),
            "a declined or expired attempt"
        );
        assert!(!Completed.can_become(Pending));
        assert!(!Completed.can_become(InProgress));
        assert!(!InProgress.can_become(Refunded));
    }

    #[test]
    fn refund_paths() {
        assert!(Completed.can_become(PartialRefund));
        assert!(Completed.can_become(Refunded));
        assert!(PartialRefund.can_become(PartialRefund));
        assert!(PartialRefund.can_become(Refunded));
        assert!(!Refunded.can_become(PartialRefund));
        assert!(!Pending.can_become(Refunded));
        assert!(Completed.is_refundable() && PartialRefund.is_refundable());
        assert!(!Refunded.is_refundable() && !Pending.is_refundable());
    }

    #[test]
    fn terminal_states_go_nowhere() {
        for from in [Failed, Cancelled, Refunded] {
            for to in PaymentStatus::ALL {
                assert!(!from.can_become(to), "{from} -> {to}");
            }
        }
    }
}

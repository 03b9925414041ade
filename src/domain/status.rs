text_enum! {
    /// The life of a payment. See README "State machine" for who triggers each transition.
    pub enum PaymentStatus in "status", "payment status" shown as "PaymentStatusDto" {
        /// Created; waiting for the buyer to pay (again, after a failed attempt).
        Pending = "PENDING",
        /// A confirm was sent to the PG and its outcome is not known yet.
        InProgress = "IN_PROGRESS",
        /// The PG issued a virtual account; the buyer has not deposited yet.
        WaitingForDeposit = "WAITING_FOR_DEPOSIT",
        Completed = "COMPLETED",
        /// Terminal failure. Reserved: a declined attempt returns the payment to `Pending`
        /// so the buyer can try again with the same order.
        Failed = "FAILED",
        Cancelled = "CANCELLED",
        Refunded = "REFUNDED",
        PartialRefund = "PARTIAL_REFUND",
    }
}

impl PaymentStatus {
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

    /// The buyer paid: completed, whatever was refunded since.
    pub fn is_paid(self) -> bool {
        self.is_refundable() || self == PaymentStatus::Refunded
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

text_enum! {
    /// Who made a refund: this service (through the PG, or recorded without one), or someone at the
    /// PG directly (Toss's dashboard), found in the PG's record.
    pub enum RefundOrigin in "origin", "refund origin" {
        Service = "SERVICE",
        Pg = "PG",
    }
}

text_enum! {
    pub enum RefundStatus in "status", "refund status" shown as "RefundStatusDto" {
        /// Sent to the PG; outcome not known yet.
        Pending = "PENDING",
        Completed = "COMPLETED",
        /// The PG's record shows the refund did not happen.
        Failed = "FAILED",
    }
}

text_enum! {
    #[derive(Default, serde::Deserialize)]
    #[serde(rename_all = "SCREAMING_SNAKE_CASE")]
    pub enum PaymentType in "payment_type", "payment type" shown as "PaymentTypeDto" {
        #[default]
        OneTime = "ONE_TIME",
        Subscription = "SUBSCRIPTION",
    }
}

#[cfg(test)]
mod tests {
    use super::PaymentStatus::{self, *};

    #[test]
    fn confirm_and_refund_paths() {
        for (from, to, allowed) in [
            (Pending, InProgress, true),
            // The no-op gateway confirms directly.
            (Pending, Completed, true),
            (InProgress, Completed, true),
            // A declined or expired attempt.
            (InProgress, Pending, true),
            (Completed, Pending, false),
            (Completed, InProgress, false),
            (InProgress, Refunded, false),
            (Completed, PartialRefund, true),
            (Completed, Refunded, true),
            (PartialRefund, PartialRefund, true),
            (PartialRefund, Refunded, true),
            (Refunded, PartialRefund, false),
            (Pending, Refunded, false),
        ] {
            assert_eq!(from.can_become(to), allowed, "{from} -> {to}");
        }
        assert!(Completed.is_refundable() && PartialRefund.is_refundable());
        assert!(!Refunded.is_refundable() && !Pending.is_refundable());
        assert!(Refunded.is_paid() && PartialRefund.is_paid() && !WaitingForDeposit.is_paid());
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

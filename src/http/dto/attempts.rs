//! A payment's attempts at Toss: each confirm of a `paymentKey` and each billing charge.

use serde::Serialize;
use utoipa::ToSchema;

use super::timestamp;
use crate::domain::{Attempt, AttemptKind, AttemptStatus, Failure, VirtualAccount};

/// An attempt's status as listed. An attempt let go with nothing to tell (`Released`: a key Toss
/// has no record of, our credentials refused, another key approved) is kept for the operators'
/// timeline but is not listed: the contract's "a key Toss has no record of makes no attempt".
#[derive(Debug, Clone, Copy, Serialize, ToSchema)]
#[serde(rename_all = "SCREAMING_SNAKE_CASE")]
pub enum AttemptStatusDto {
    InProgress,
    Approved,
    WaitingForDeposit,
    Failed,
    Expired,
    Cancelled,
}

impl AttemptStatusDto {
    fn listed(status: AttemptStatus) -> Option<Self> {
        Some(match status {
            AttemptStatus::InProgress => Self::InProgress,
            AttemptStatus::Approved => Self::Approved,
            AttemptStatus::WaitingForDeposit => Self::WaitingForDeposit,
            AttemptStatus::Failed => Self::Failed,
            AttemptStatus::Expired => Self::Expired,
            AttemptStatus::Cancelled => Self::Cancelled,
            AttemptStatus::Released => return None,
        })
    }
}

/// One try at Toss of a payment: the confirm of one `paymentKey`, or one billing charge.
#[derive(Debug, Serialize, ToSchema)]
#[schema(example = json!({
    "attempt_id": "019ab5b2-9a1b-7c2d-8e3f-4a5b6c7d8e9f",
    "kind": "confirm",
    "payment_key": "5EnNZRJGvaBX7zk2yd8ydw26XvwXkLrx9POLqKQjmAw4b0e1",
    "status": "FAILED",
    "method": null,
    "virtual_account": null,
    "failure": {"code": "REJECT_CARD_PAYMENT", "message": "한도초과 혹은 잔액부족으로 결제에 실패했습니다.", "retryable": null},
    "toss_sends": 1,
    "started_at": "2026-11-23T09:30:00.123Z",
    "finished_at": "2026-11-23T09:30:01.002Z"
}))]
pub struct AttemptDto {
    #[schema(format = Uuid)]
    pub attempt_id: String,
    pub kind: AttemptKind,
    /// Toss's key of the attempt: the buyer's for a confirm; for a charge, Toss's answer
    /// (`null` until then).
    #[schema(required = true)]
    pub payment_key: Option<String>,
    pub status: AttemptStatusDto,
    /// The method Toss reports (`카드`, `가상계좌`, ...), once Toss named it.
    #[schema(required = true)]
    pub method: Option<String>,
    /// The virtual account Toss issued for this attempt; kept after its deposit, expiry or
    /// cancel.
    #[schema(required = true)]
    pub virtual_account: Option<VirtualAccount>,
    /// Why it failed (`FAILED`, `EXPIRED`).
    #[schema(required = true)]
    pub failure: Option<Failure>,
    /// How often it was sent to Toss.
    pub toss_sends: i32,
    #[schema(format = DateTime)]
    pub started_at: String,
    /// When it was approved, failed, expired or cancelled; `null` while open.
    #[schema(format = DateTime, required = true)]
    pub finished_at: Option<String>,
}

impl AttemptDto {
    /// The attempt as listed; `None` for one released (see [`AttemptStatusDto`]).
    pub fn listed(a: &Attempt) -> Option<Self> {
        Some(Self {
            attempt_id: a.id.to_string(),
            kind: a.kind,
            payment_key: a.payment_key.as_ref().map(ToString::to_string),
            status: AttemptStatusDto::listed(a.status)?,
            method: a.method.clone(),
            virtual_account: a.virtual_account.clone(),
            failure: a.failure.clone(),
            toss_sends: a.toss_sends,
            started_at: timestamp(a.started_at),
            finished_at: a.finished_at.map(timestamp),
        })
    }
}

#[derive(Debug, Serialize, ToSchema)]
pub struct AttemptListDto {
    /// Oldest first.
    pub attempts: Vec<AttemptDto>,
}

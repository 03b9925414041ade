//! Reviews of payments set aside because Toss's record contradicted ours.

use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

use crate::domain::{Actor, Review};
use crate::service::ReviewAction;

/// Body of `POST /payments/{payment_id}/review`.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
#[schema(example = json!({"action": "resync", "note": "Toss dashboard shows the partial cancel; adopting it"}))]
pub struct ReviewRequest {
    pub action: ReviewAction,
    /// 1..500 characters: why. Not blank; no control characters but line feeds.
    #[schema(min_length = 1, max_length = 500, pattern = "visible lines")]
    pub note: String,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct ReviewDto {
    pub review_id: String,
    pub payment_id: String,
    pub action: ReviewAction,
    pub note: String,
    /// Kept for version 2 clients (read `requested_by`): the name of the API key that made it
    /// (`key-1`, `key-2`, … for `API_KEYS`; its `name` in `API_KEYS_FILE`), never the key;
    /// `system` for a flag the service cleared itself. Reviews made before version 3 show
    /// `api-key-<n>`.
    pub reviewer: String,
    /// Who made the review: an API key by name (never the key), `system` for a flag the
    /// service cleared itself, `operator` from the console.
    pub requested_by: Actor,
    /// What the review did.
    pub outcome: String,
    pub created_at: chrono::DateTime<chrono::Utc>,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct ReviewListDto {
    pub reviews: Vec<ReviewDto>,
}

impl From<&Review> for ReviewDto {
    fn from(review: &Review) -> Self {
        Self {
            review_id: review.id.clone(),
            payment_id: review.payment_id.to_string(),
            action: if review.action == ReviewAction::Resync.as_str() {
                ReviewAction::Resync
            } else {
                ReviewAction::Dismiss
            },
            note: review.note.clone(),
            reviewer: review.reviewer.clone(),
            requested_by: review.requested_by.clone(),
            outcome: review.outcome.clone(),
            created_at: review.created_at,
        }
    }
}

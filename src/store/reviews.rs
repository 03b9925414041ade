//! Reviews of payments set aside: the flag is cleared and the review kept in one transaction.

use chrono::Utc;
use sea_orm::sea_query::Expr;
use sea_orm::{
    ActiveModelTrait, ActiveValue::Set, ColumnTrait, EntityTrait, QueryFilter, QueryOrder,
    QueryTrait, TransactionTrait,
};

use super::entities::{payment, refund, review};
use super::{Store, StoreResult, corrupt};
use crate::domain::{Actor, Payment, PaymentId, RefundStatus, Review};

impl Store {
    /// Clears `payment_id`'s review flag and keeps `review`, if the payment is still flagged
    /// (with `reason`, for exactly that reason: a flag set since for something else stays);
    /// refunds left waiting for a person are looked at again. `None` if it was not flagged.
    pub async fn clear_review(
        &self,
        payment_id: PaymentId,
        reason: Option<&str>,
        review: &Review,
    ) -> StoreResult<Option<Payment>> {
        let txn = self.db.begin().await?;
        let now = Utc::now();
        let cleared = payment::Entity::update_many()
            .col_expr(payment::Column::NeedsReview, Expr::value(false))
            .col_expr(payment::Column::ReviewReason, Expr::value(None::<String>))
            .col_expr(payment::Column::UpdatedAt, Expr::value(now))
            .filter(payment::Column::Id.eq(payment_id.to_string()))
            .filter(payment::Column::NeedsReview.eq(true))
            .apply_if(reason, |q, reason| {
                q.filter(payment::Column::ReviewReason.eq(reason))
            })
            .exec_with_returning(&txn)
            .await?
            .pop();
        let Some(row) = cleared else {
            txn.rollback().await?;
            return Ok(None);
        };
        refund::Entity::update_many()
            .col_expr(refund::Column::NextReconcileAt, Expr::value(now))
            .filter(refund::Column::PaymentId.eq(payment_id.to_string()))
            .filter(refund::Column::Status.eq(RefundStatus::Pending.as_str()))
            .filter(refund::Column::NextReconcileAt.is_null())
            .exec(&txn)
            .await?;
        review_row(review).insert(&txn).await?;
        txn.commit().await?;
        Payment::try_from(row).map(Some)
    }

    /// Keeps a review that changed nothing (the payment still contradicts Toss's record).
    pub async fn record_review(&self, review: &Review) -> StoreResult<()> {
        review_row(review).insert(&self.db).await?;
        Ok(())
    }

    /// A payment's reviews, oldest first.
    pub async fn reviews_of(&self, payment_id: PaymentId) -> StoreResult<Vec<Review>> {
        review::Entity::find()
            .filter(review::Column::PaymentId.eq(payment_id.to_string()))
            .order_by_asc(review::Column::CreatedAt)
            .order_by_asc(review::Column::Id)
            .all(&self.db)
            .await?
            .into_iter()
            .map(|row| {
                Ok(copied!(row => Review {
                    id, action, note, reviewer, outcome, created_at,
                    ;
                    payment_id,
                    requested_by: Actor::from_parts(&row.requested_by_type, row.requested_by_name)
                        .map_err(|e| corrupt("review's actor", e))?,
                }))
            })
            .collect()
    }
}

fn review_row(review: &Review) -> review::ActiveModel {
    set!(review => review::ActiveModel {
        id, action, note, reviewer, outcome, created_at,
        ;
        payment_id: Set(review.payment_id.to_string()),
        requested_by_type: Set(review.requested_by.kind.as_str().to_owned()),
        requested_by_name: Set(review.requested_by.name.clone()),
    })
}

//! The sealed columns, for `payment-service reseal`: read in batches in id order, each value
//! replaced only if it is still the one read (a conditional update: safe while the service
//! runs, and a row changed meanwhile is left to whoever changed it).

use sea_orm::sea_query::Expr;
use sea_orm::{ColumnTrait, EntityTrait, QueryFilter, QueryOrder, QuerySelect};

use super::entities::{billing_key, refund};
use super::{Store, StoreResult};

/// A column that holds sealed values.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SealedColumn {
    /// `billing_keys.key_ciphertext`.
    BillingKey,
    /// `refunds.refund_account`.
    RefundAccount,
}

impl SealedColumn {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::BillingKey => "billing_keys.key_ciphertext",
            Self::RefundAccount => "refunds.refund_account",
        }
    }
}

impl Store {
    /// Up to `limit` (id, sealed value) of `column` with an id after `after`, in id order.
    pub async fn sealed_values(
        &self,
        column: SealedColumn,
        after: Option<&str>,
        limit: u64,
    ) -> StoreResult<Vec<(String, String)>> {
        match column {
            SealedColumn::BillingKey => {
                let mut query = billing_key::Entity::find()
                    .select_only()
                    .column(billing_key::Column::Id)
                    .column(billing_key::Column::KeyCiphertext)
                    .filter(billing_key::Column::KeyCiphertext.is_not_null());
                if let Some(after) = after {
                    query = query.filter(billing_key::Column::Id.gt(after));
                }
                let rows: Vec<(String, Option<String>)> = query
                    .order_by_asc(billing_key::Column::Id)
                    .limit(limit)
                    .into_tuple()
                    .all(&self.db)
                    .await?;
                Ok(rows
                    .into_iter()
                    .filter_map(|(id, sealed)| Some((id, sealed?)))
                    .collect())
            }
            SealedColumn::RefundAccount => {
                let mut query = refund::Entity::find()
                    .select_only()
                    .column(refund::Column::Id)
                    .column(refund::Column::RefundAccount)
                    .filter(refund::Column::RefundAccount.is_not_null());
                if let Some(after) = after {
                    query = query.filter(refund::Column::Id.gt(after));
                }
                let rows: Vec<(String, Option<String>)> = query
                    .order_by_asc(refund::Column::Id)
                    .limit(limit)
                    .into_tuple()
                    .all(&self.db)
                    .await?;
                Ok(rows
                    .into_iter()
                    .filter_map(|(id, sealed)| Some((id, sealed?)))
                    .collect())
            }
        }
    }

    /// Replaces `old` with `new` in `column` of row `id`; `false` when the row no longer holds
    /// `old`.
    pub async fn replace_sealed(
        &self,
        column: SealedColumn,
        id: &str,
        old: &str,
        new: &str,
    ) -> StoreResult<bool> {
        let result = match column {
            SealedColumn::BillingKey => {
                billing_key::Entity::update_many()
                    .col_expr(billing_key::Column::KeyCiphertext, Expr::value(new))
                    .filter(billing_key::Column::Id.eq(id))
                    .filter(billing_key::Column::KeyCiphertext.eq(old))
                    .exec(&self.db)
                    .await?
            }
            SealedColumn::RefundAccount => {
                refund::Entity::update_many()
                    .col_expr(refund::Column::RefundAccount, Expr::value(new))
                    .filter(refund::Column::Id.eq(id))
                    .filter(refund::Column::RefundAccount.eq(old))
                    .exec(&self.db)
                    .await?
            }
        };
        Ok(result.rows_affected == 1)
    }
}

//! The sealed columns, for `payment-service reseal`: read in batches in id order, each value
//! replaced only if it is still the one read (a conditional update: safe while the service
//! runs, and a row changed meanwhile is left to whoever changed it).

use sea_orm::sea_query::Expr;
use sea_orm::{
    ColumnTrait, DatabaseConnection, EntityTrait, QueryFilter, QueryOrder, QuerySelect, QueryTrait,
};

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
            SealedColumn::BillingKey => page::<billing_key::Entity>(&self.db, after, limit).await,
            SealedColumn::RefundAccount => page::<refund::Entity>(&self.db, after, limit).await,
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
        match column {
            SealedColumn::BillingKey => {
                replace::<billing_key::Entity>(&self.db, id, old, new).await
            }
            SealedColumn::RefundAccount => replace::<refund::Entity>(&self.db, id, old, new).await,
        }
    }
}

/// A table with a sealed column: its key and that column.
trait SealedTable: EntityTrait {
    const ID: Self::Column;
    const SEALED: Self::Column;
}

impl SealedTable for billing_key::Entity {
    const ID: Self::Column = billing_key::Column::Id;
    const SEALED: Self::Column = billing_key::Column::KeyCiphertext;
}

impl SealedTable for refund::Entity {
    const ID: Self::Column = refund::Column::Id;
    const SEALED: Self::Column = refund::Column::RefundAccount;
}

/// [`Store::sealed_values`] of the table `T`.
async fn page<T: SealedTable>(
    db: &DatabaseConnection,
    after: Option<&str>,
    limit: u64,
) -> StoreResult<Vec<(String, String)>> {
    let rows: Vec<(String, Option<String>)> = T::find()
        .select_only()
        .column(T::ID)
        .column(T::SEALED)
        .filter(T::SEALED.is_not_null())
        .apply_if(after, |q, after| q.filter(T::ID.gt(after)))
        .order_by_asc(T::ID)
        .limit(limit)
        .into_tuple()
        .all(db)
        .await?;
    Ok(rows
        .into_iter()
        .filter_map(|(id, sealed)| Some((id, sealed?)))
        .collect())
}

/// [`Store::replace_sealed`] in the table `T`.
async fn replace<T: SealedTable>(
    db: &DatabaseConnection,
    id: &str,
    old: &str,
    new: &str,
) -> StoreResult<bool> {
    let result = T::update_many()
        .col_expr(T::SEALED, Expr::value(new))
        .filter(T::ID.eq(id))
        .filter(T::SEALED.eq(old))
        .exec(db)
        .await?;
    Ok(result.rows_affected == 1)
}

//! `payment-service reseal`: every sealed value (billing keys and refund accounts) moved under
//! the newest key, in batches, with conditional updates (safe while the service runs).

use super::{AccountSealer, BillingKeyCipher, Resealed};
use crate::store::{SealedColumn, Store, StoreResult};

/// What `reseal` did to one column.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ResealCounts {
    /// Sealed values looked at.
    pub examined: u64,
    /// Sealed anew under the newest key.
    pub resealed: u64,
    /// Already under the newest key, bound to their row.
    pub current: u64,
    /// Opened by no configured key: left as they are (their ids in `unreadable_ids`).
    pub unreadable: u64,
    /// Changed by someone else between the read and the write: left to them.
    pub changed: u64,
    pub unreadable_ids: Vec<String>,
}

/// What `reseal` did: billing keys and refund accounts.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ResealReport {
    pub billing_keys: ResealCounts,
    pub refund_accounts: ResealCounts,
}

/// Re-seals every sealed billing key and refund account that is not yet under the newest key
/// (or not bound to its row) under the newest key, `batch` rows at a time. Each row is
/// replaced only if it still holds the value read (a conditional update), so it is safe while
/// the service runs, and running it again changes nothing.
pub async fn reseal(
    store: &Store,
    billing: &BillingKeyCipher,
    accounts: &AccountSealer,
    batch: u64,
) -> StoreResult<ResealReport> {
    Ok(ResealReport {
        billing_keys: reseal_column(store, SealedColumn::BillingKey, batch, |id, stored| {
            billing.reseal(id, stored)
        })
        .await?,
        refund_accounts: reseal_column(store, SealedColumn::RefundAccount, batch, |id, stored| {
            accounts.reseal(id, stored)
        })
        .await?,
    })
}

async fn reseal_column(
    store: &Store,
    column: SealedColumn,
    batch: u64,
    reseal: impl Fn(&str, &str) -> Resealed,
) -> StoreResult<ResealCounts> {
    let mut counts = ResealCounts::default();
    let mut after: Option<String> = None;
    loop {
        let rows = store.sealed_values(column, after.as_deref(), batch).await?;
        let Some(last) = rows.last() else {
            return Ok(counts);
        };
        after = Some(last.0.clone());
        for (id, stored) in rows {
            counts.examined += 1;
            match reseal(&id, &stored) {
                Resealed::Current => counts.current += 1,
                Resealed::Unreadable => {
                    tracing::warn!(alert = "sealed_value_unreadable", column = column.as_str(), id = %id, "a sealed value opens under no configured key; left as it is");
                    counts.unreadable += 1;
                    counts.unreadable_ids.push(id);
                }
                Resealed::Sealed(new) => {
                    if store.replace_sealed(column, &id, &stored, &new).await? {
                        counts.resealed += 1;
                    } else {
                        counts.changed += 1;
                    }
                }
            }
        }
    }
}

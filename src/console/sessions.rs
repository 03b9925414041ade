//! The console's sessions and sign-in lockouts, in the database (tables `console_sessions` and
//! `console_lockouts`), so that every instance sees the same ones. A session is found by the
//! SHA-256 of its token; the token itself is only in the operator's cookie. Reached through the
//! store's connection; no other module touches these tables.

use chrono::{DateTime, Duration, Utc};
use rand::RngCore;
use sea_orm::ActiveValue::Set;
use sea_orm::sea_query::{Expr, ExprTrait, OnConflict};
use sea_orm::{ColumnTrait, EntityTrait, QueryFilter};
use sha2::{Digest, Sha256};

use crate::store::{Store, StoreResult};

/// A session unused this long is over.
pub const IDLE_EXPIRY: Duration = Duration::hours(8);
/// Wrong passwords in a row that lock a name ...
pub const MAX_FAILURES: i32 = 5;
/// ... for this long (the right password is refused too meanwhile).
pub const LOCKOUT: Duration = Duration::minutes(15);
/// Wrong passwords of a name untried this long are forgotten.
const FORGET_AFTER: Duration = Duration::days(1);
/// A session's last use is written at most this often (a page view need not write).
const TOUCH_EVERY: Duration = Duration::minutes(1);

mod session {
    use sea_orm::entity::prelude::*;

    #[derive(Clone, Debug, PartialEq, Eq, DeriveEntityModel)]
    #[sea_orm(table_name = "console_sessions")]
    pub struct Model {
        #[sea_orm(primary_key, auto_increment = false)]
        pub token_hash: String,
        pub operator: String,
        pub csrf_token: String,
        pub created_at: DateTimeUtc,
        pub last_seen_at: DateTimeUtc,
    }

    crate::store::without_relations!();
}

mod lockout {
    use sea_orm::entity::prelude::*;

    #[derive(Clone, Debug, PartialEq, Eq, DeriveEntityModel)]
    #[sea_orm(table_name = "console_lockouts")]
    pub struct Model {
        #[sea_orm(primary_key, auto_increment = false)]
        pub operator: String,
        pub failures: i32,
        pub locked_until: Option<DateTimeUtc>,
        pub updated_at: DateTimeUtc,
    }

    crate::store::without_relations!();
}

/// A signed-in operator's session.
#[derive(Debug, Clone)]
pub struct Session {
    pub operator: String,
    /// What every form of this session posts as `csrf_token`.
    pub csrf_token: String,
}

/// 32 random bytes, hex: session tokens and CSRF tokens.
pub fn random_token() -> String {
    let mut bytes = [0u8; 32];
    rand::rng().fill_bytes(&mut bytes);
    hex::encode(bytes)
}

fn token_hash(token: &str) -> String {
    hex::encode(Sha256::digest(token.as_bytes()))
}

#[derive(Clone)]
pub struct Sessions {
    store: Store,
}

impl Sessions {
    pub fn new(store: Store) -> Self {
        Self { store }
    }

    /// A new session for `operator`; returns the token for the cookie. Sessions idle past
    /// their expiry are deleted on the way.
    pub async fn create(&self, operator: &str) -> StoreResult<String> {
        let db = self.store.connection();
        let now = Utc::now();
        session::Entity::delete_many()
            .filter(session::Column::LastSeenAt.lt(now - IDLE_EXPIRY))
            .exec(db)
            .await?;
        let token = random_token();
        session::Entity::insert(session::ActiveModel {
            token_hash: Set(token_hash(&token)),
            operator: Set(operator.to_owned()),
            csrf_token: Set(random_token()),
            created_at: Set(now),
            last_seen_at: Set(now),
        })
        .exec_without_returning(db)
        .await?;
        Ok(token)
    }

    /// The live session of `token` (used within the idle expiry), its use recorded.
    pub async fn find(&self, token: &str) -> StoreResult<Option<Session>> {
        let db = self.store.connection();
        let now = Utc::now();
        let hash = token_hash(token);
        let Some(row) = session::Entity::find_by_id(hash.clone())
            .filter(session::Column::LastSeenAt.gt(now - IDLE_EXPIRY))
            .one(db)
            .await?
        else {
            return Ok(None);
        };
        if row.last_seen_at < now - TOUCH_EVERY {
            session::Entity::update_many()
                .col_expr(session::Column::LastSeenAt, Expr::value(now))
                .filter(session::Column::TokenHash.eq(hash))
                .exec(db)
                .await?;
        }
        Ok(Some(Session {
            operator: row.operator,
            csrf_token: row.csrf_token,
        }))
    }

    /// Ends the session of `token` (on every instance: the row is gone).
    pub async fn revoke(&self, token: &str) -> StoreResult<()> {
        session::Entity::delete_by_id(token_hash(token))
            .exec(self.store.connection())
            .await?;
        Ok(())
    }

    /// Until when `operator` is locked out, if they are now.
    pub async fn locked_until(&self, operator: &str) -> StoreResult<Option<DateTime<Utc>>> {
        let now = Utc::now();
        Ok(lockout::Entity::find_by_id(operator.to_owned())
            .one(self.store.connection())
            .await?
            .and_then(|row| row.locked_until)
            .filter(|until| *until > now))
    }

    /// Counts a wrong password for `operator`: the `MAX_FAILURES`th in a row locks the name
    /// for `LOCKOUT` and starts the count again. One statement, so attempts on several
    /// instances at once are all counted.
    pub async fn record_failure(&self, operator: &str) -> StoreResult<()> {
        use lockout::Column;
        let now = Utc::now();
        // Counts of names nobody tried for a day, and not locked, are forgotten: any name is
        // counted (so that the answers tell no names apart), which must not grow the table.
        lockout::Entity::delete_many()
            .filter(Column::UpdatedAt.lt(now - FORGET_AFTER))
            .filter(unlocked(now))
            .exec(self.store.connection())
            .await?;
        let reached = Expr::col((lockout::Entity, Column::Failures))
            .add(1)
            .gte(MAX_FAILURES);
        let update = OnConflict::column(Column::Operator)
            .value(
                Column::Failures,
                Expr::case(reached.clone(), 0)
                    .finally(Expr::col((lockout::Entity, Column::Failures)).add(1)),
            )
            .value(
                Column::LockedUntil,
                Expr::case(reached, Expr::value(now + LOCKOUT))
                    .finally(Expr::col((lockout::Entity, Column::LockedUntil))),
            )
            .value(Column::UpdatedAt, Expr::value(now))
            .to_owned();
        lockout::Entity::insert(lockout::ActiveModel {
            operator: Set(operator.to_owned()),
            failures: Set(1),
            locked_until: Set(None),
            updated_at: Set(now),
        })
        .on_conflict(update)
        .exec_without_returning(self.store.connection())
        .await?;
        Ok(())
    }

    /// A right password: the count of wrong ones starts again.
    pub async fn clear_failures(&self, operator: &str) -> StoreResult<()> {
        lockout::Entity::delete_many()
            .filter(lockout::Column::Operator.eq(operator))
            .filter(unlocked(Utc::now()))
            .exec(self.store.connection())
            .await?;
        Ok(())
    }
}

/// The lockout rows of names not locked at `now`.
fn unlocked(now: DateTime<Utc>) -> Expr {
    let until = lockout::Column::LockedUntil;
    until.is_null().or(until.lte(now))
}

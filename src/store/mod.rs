//! Persistence with SeaORM: entities, conditional updates, and the transactions that keep a state
//! change and its event together. The database is the only lock: every state change is an
//! `UPDATE … WHERE status = …` whose row count says who won.

/// The rest of a SeaORM entity of one table without relations, beside its `Model`.
macro_rules! without_relations {
    () => {
        #[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
        pub enum Relation {}

        impl ActiveModelBehavior for ActiveModel {}
    };
}
pub(crate) use without_relations;

/// `Type { a: row.a, b: row.b, …, rest }`: the fields named before `;` are copied as they are.
macro_rules! copied {
    ($row:ident => $ty:ident { $($field:ident),+ $(,)? ; $($rest:tt)* }) => {
        $ty { $($field: $row.$field,)+ $($rest)* }
    };
}

/// `Model { a: Set(value.a.clone()), …, rest }`: the fields named before `;` are stored as
/// they are.
macro_rules! set {
    ($value:ident => $($model:ident)::+ { $($field:ident),+ $(,)? ; $($rest:tt)* }) => {
        $($model)::+ { $($field: Set(Clone::clone(&$value.$field)),)+ $($rest)* }
    };
}

mod adoption;
mod attempts;
mod billing;
mod consents;
mod entities;
mod events;
mod mapping;
mod payment_sql;
mod payments;
mod reconciliation;
mod refunds;
mod reviews;
mod schedules;
mod sealed;
mod sql;
mod staging;
mod webhooks;

use std::time::Duration;

use migration::{Migrator, MigratorTrait};
use sea_orm::{
    ConnectOptions, ConnectionTrait, Database, DatabaseConnection, DbBackend, DbErr, EntityTrait,
    RuntimeErr, Select, SqlErr, TransactionTrait,
};

pub use adoption::{Plan, RefundWrite, Seen};
pub use billing::{IssueClaim, IssuedKey, KeyRef};
pub use events::{NewEvent, UnpublishedBatch};
pub use payments::Target;
pub use reconciliation::{Claimed, StoredDiscrepancy};
pub use refunds::{Reservation, SendNow, Sending};
pub use schedules::ScheduleWrite;
pub use sealed::SealedColumn;

/// Where the data lives when `DATABASE_URL` is not set: a file beside the working directory.
pub const DEFAULT_SQLITE_URL: &str = "sqlite://payment-service.db?mode=rwc";

#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    #[error("duplicate order_id")]
    DuplicateOrderId,
    /// A row that must be unique exists already (e.g. a PG cancel recorded twice).
    #[error("already recorded: {0}")]
    AlreadyRecorded(String),
    /// The database cannot be reached (or the pool is exhausted); retrying later may work.
    #[error("database unavailable: {0}")]
    Unavailable(String),
    #[error("database error: {0}")]
    Other(String),
}

impl From<DbErr> for StoreError {
    fn from(error: DbErr) -> Self {
        match &error {
            DbErr::ConnectionAcquire(_) | DbErr::Conn(_) => Self::Unavailable(error.to_string()),
            DbErr::Exec(RuntimeErr::SqlxError(e)) | DbErr::Query(RuntimeErr::SqlxError(e))
                if is_connection_error(e) =>
            {
                Self::Unavailable(error.to_string())
            }
            _ => Self::Other(error.to_string()),
        }
    }
}

fn is_connection_error(error: &sea_orm::sqlx::Error) -> bool {
    use sea_orm::sqlx::Error;
    match error {
        Error::Io(_)
        | Error::Tls(_)
        | Error::Protocol(_)
        | Error::PoolTimedOut
        | Error::PoolClosed
        | Error::WorkerCrashed => true,
        // PostgreSQL going away: class 08 (connection exception), 57P01..57P03 (admin
        // shutdown, crash shutdown, cannot connect now).
        Error::Database(db) => db
            .code()
            .is_some_and(|code| code.starts_with("08") || code.starts_with("57P")),
        _ => false,
    }
}

pub type StoreResult<T> = Result<T, StoreError>;

/// A stored value that does not parse: reported, never guessed at.
fn corrupt(what: &str, error: impl std::fmt::Display) -> StoreError {
    StoreError::Other(format!("stored {what} does not parse: {error}"))
}

/// Whether `error` is a unique constraint refusing a row that exists already.
fn is_duplicate(error: &DbErr) -> bool {
    matches!(error.sql_err(), Some(SqlErr::UniqueConstraintViolation(_)))
}

/// A query's rows read into domain values, each through its `TryFrom` (which reports a row that
/// does not parse).
trait ReadAs<E: EntityTrait> {
    async fn one_as<T>(self, conn: &impl ConnectionTrait) -> StoreResult<Option<T>>
    where
        T: TryFrom<E::Model, Error = StoreError>;

    async fn all_as<T>(self, conn: &impl ConnectionTrait) -> StoreResult<Vec<T>>
    where
        T: TryFrom<E::Model, Error = StoreError>;
}

impl<E: EntityTrait> ReadAs<E> for Select<E> {
    async fn one_as<T>(self, conn: &impl ConnectionTrait) -> StoreResult<Option<T>>
    where
        T: TryFrom<E::Model, Error = StoreError>,
    {
        self.one(conn).await?.map(T::try_from).transpose()
    }

    async fn all_as<T>(self, conn: &impl ConnectionTrait) -> StoreResult<Vec<T>>
    where
        T: TryFrom<E::Model, Error = StoreError>,
    {
        self.all(conn).await?.into_iter().map(T::try_from).collect()
    }
}

#[derive(Debug, Clone)]
pub struct DatabaseOptions {
    pub url: String,
    pub max_connections: u32,
    pub acquire_timeout: Duration,
}

#[derive(Clone, Debug)]
pub struct Store {
    db: DatabaseConnection,
}

/// The level of the pool's event per checkout (`crate::telemetry::ACQUIRE_TARGET`).
const ACQUIRE_TIME_LEVEL: log::LevelFilter = log::LevelFilter::Trace;

impl Store {
    /// The pool settings of the service (the load test's database baseline uses them too).
    pub fn pool_options(options: &DatabaseOptions) -> ConnectOptions {
        let mut connect = ConnectOptions::new(options.url.clone());
        connect
            .acquire_timeout(options.acquire_timeout)
            .connect_timeout(options.acquire_timeout)
            // Pinging on every checkout cost 5 round trips per payment flow (benchmark: +7 %
            // throughput without it); a connection idle this long is still checked first.
            .test_before_acquire_if_idle_for(Duration::from_secs(10))
            .sqlx_logging(false)
            // Every checkout reports its wait as a `sqlx::pool::acquire` event, which
            // `telemetry` records as `db_pool_acquire_seconds`.
            .map_sqlx_postgres_pool_opts(|pool| pool.acquire_time_level(ACQUIRE_TIME_LEVEL))
            .map_sqlx_sqlite_pool_opts(|pool| pool.acquire_time_level(ACQUIRE_TIME_LEVEL));
        if DbBackend::Sqlite.is_prefix_of(&options.url) {
            // SQLite has one writer. One connection serialises our short transactions instead
            // of failing them with SQLITE_BUSY; it also keeps `sqlite::memory:` alive.
            connect
                .max_connections(1)
                .min_connections(1)
                .idle_timeout(None)
                .max_lifetime(None)
                .map_sqlx_sqlite_opts(|opts| {
                    opts.foreign_keys(true)
                        .busy_timeout(Duration::from_secs(5))
                        .journal_mode(sea_orm::sqlx::sqlite::SqliteJournalMode::Wal)
                        .synchronous(sea_orm::sqlx::sqlite::SqliteSynchronous::Normal)
                });
        } else {
            connect
                .max_connections(options.max_connections)
                .min_connections(1);
        }
        connect
    }

    /// Connects and brings the schema up to date.
    pub async fn connect(options: &DatabaseOptions) -> Result<Self, DbErr> {
        let db = Database::connect(Self::pool_options(options)).await?;
        let store = Self { db };
        store.migrate().await?;
        Ok(store)
    }

    async fn migrate(&self) -> Result<(), DbErr> {
        if self.db.get_database_backend() == DbBackend::Postgres {
            // Several instances may start at once; the lock makes them migrate one at a time.
            let txn = self.db.begin().await?;
            txn.execute_unprepared("SELECT pg_advisory_xact_lock(727100001)")
                .await?;
            Migrator::up(&txn, None).await?;
            txn.commit().await
        } else {
            Migrator::up(&self.db, None).await
        }
    }

    /// The connection, for a module that owns a table of its own (`crate::idempotency`); the
    /// payment tables are reached only through the store's methods.
    pub(crate) fn connection(&self) -> &DatabaseConnection {
        &self.db
    }

    pub fn backend(&self) -> DbBackend {
        self.db.get_database_backend()
    }

    /// The pool's connections now: open, and idle among them (for `/metrics`).
    pub fn pool_connections(&self) -> (u32, usize) {
        match self.backend() {
            DbBackend::Postgres => {
                let pool = self.db.get_postgres_connection_pool();
                (pool.size(), pool.num_idle())
            }
            DbBackend::Sqlite => {
                let pool = self.db.get_sqlite_connection_pool();
                (pool.size(), pool.num_idle())
            }
            _ => (0, 0),
        }
    }

    /// For `/ready`.
    pub async fn ping(&self) -> StoreResult<()> {
        self.db.ping().await.map_err(StoreError::from)
    }

    pub async fn close(self) {
        let _ = self.db.close().await;
    }
}

/// `payment_transitions_total{from, to}`.
fn count_transition(from: &str, to: &str) {
    metrics::counter!("payment_transitions_total", "from" => from.to_owned(), "to" => to.to_owned())
        .increment(1);
}

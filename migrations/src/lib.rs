//! Schema of payment-service. Runs at start-up (`Application::build`), on SQLite and PostgreSQL.

pub use sea_orm_migration::prelude::*;

mod m20261124_000001_create_tables;
mod m20261124_000002_webhook_deliveries;
mod m20261124_000003_unpublished_events_index;
mod m20261130_000001_money_engine_v2;
mod m20261130_000002_idempotency_on_rows;
mod m20261130_000003_unpublished_events_by_payment;
mod m20261201_000001_korean_methods;
mod m20261201_000002_billing;
mod m20261201_000003_reconciliation;
mod m20261206_000001_payment_attempts;
mod m20261206_000100_webhook_deliveries_by_age;
mod m20261206_000200_actors;
mod m20261207_000001_schedules_consents;
mod m20261208_000001_console_sessions;
mod m20261208_000002_event_trace_context;

pub struct Migrator;

#[async_trait::async_trait]
impl MigratorTrait for Migrator {
    fn migrations() -> Vec<Box<dyn MigrationTrait>> {
        vec![
            Box::new(m20261124_000001_create_tables::Migration),
            Box::new(m20261124_000002_webhook_deliveries::Migration),
            Box::new(m20261124_000003_unpublished_events_index::Migration),
            Box::new(m20261130_000001_money_engine_v2::Migration),
            Box::new(m20261130_000002_idempotency_on_rows::Migration),
            Box::new(m20261130_000003_unpublished_events_by_payment::Migration),
            Box::new(m20261201_000001_korean_methods::Migration),
            Box::new(m20261201_000002_billing::Migration),
            Box::new(m20261201_000003_reconciliation::Migration),
            Box::new(m20261206_000001_payment_attempts::Migration),
            Box::new(m20261206_000100_webhook_deliveries_by_age::Migration),
            Box::new(m20261206_000200_actors::Migration),
            Box::new(m20261207_000001_schedules_consents::Migration),
            Box::new(m20261208_000001_console_sessions::Migration),
            Box::new(m20261208_000002_event_trace_context::Migration),
        ]
    }
}

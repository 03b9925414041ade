use sea_orm::entity::prelude::*;

#[derive(Clone, Debug, PartialEq, Eq, DeriveEntityModel)]
#[sea_orm(table_name = "reconciliation_runs")]
pub struct Model {
    #[sea_orm(primary_key, auto_increment = false)]
    pub id: String,
    #[sea_orm(unique)]
    pub date: String,
    pub status: String,
    pub trigger: String,
    pub pass_id: String,
    pub started_at: DateTimeUtc,
    pub finished_at: Option<DateTimeUtc>,
    pub lease_until: DateTimeUtc,
    /// `RunSummary` as JSON.
    pub summary: Option<String>,
    pub error: Option<String>,
}

without_relations!();

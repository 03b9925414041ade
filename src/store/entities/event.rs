use sea_orm::entity::prelude::*;

#[derive(Clone, Debug, PartialEq, Eq, DeriveEntityModel)]
#[sea_orm(table_name = "events")]
pub struct Model {
    #[sea_orm(primary_key)]
    pub seq: i64,
    pub event_id: String,
    pub event_type: String,
    pub version: String,
    pub occurred_at: DateTimeUtc,
    pub source: String,
    pub user_id: String,
    pub payment_id: String,
    pub payload: String,
    pub published_at: Option<DateTimeUtc>,
    pub actor_type: String,
    pub actor_name: Option<String>,
    /// W3C `traceparent` of the span that wrote the event; null with traces off.
    pub trace_context: Option<String>,
}

without_relations!();

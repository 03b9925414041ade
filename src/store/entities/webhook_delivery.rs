use sea_orm::entity::prelude::*;

#[derive(Clone, Debug, PartialEq, Eq, DeriveEntityModel)]
#[sea_orm(table_name = "webhook_deliveries")]
pub struct Model {
    #[sea_orm(primary_key, auto_increment = false)]
    pub transmission_id: String,
    pub event_type: String,
    pub outcome: String,
    pub received_at: DateTimeUtc,
}

without_relations!();

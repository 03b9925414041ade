use sea_orm::entity::prelude::*;

#[derive(Clone, Debug, PartialEq, Eq, DeriveEntityModel)]
#[sea_orm(table_name = "reviews")]
pub struct Model {
    #[sea_orm(primary_key, auto_increment = false)]
    pub id: String,
    pub payment_id: String,
    pub action: String,
    pub note: String,
    pub reviewer: String,
    pub outcome: String,
    pub created_at: DateTimeUtc,
    pub requested_by_type: String,
    pub requested_by_name: Option<String>,
}

without_relations!();

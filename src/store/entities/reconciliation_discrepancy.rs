use sea_orm::entity::prelude::*;

#[derive(Clone, Debug, PartialEq, Eq, DeriveEntityModel)]
#[sea_orm(table_name = "reconciliation_discrepancies")]
pub struct Model {
    #[sea_orm(primary_key)]
    pub id: i64,
    pub run_id: String,
    pub kind: String,
    pub order_id: Option<String>,
    pub payment_key: Option<String>,
    pub transaction_key: Option<String>,
    pub payment_id: Option<String>,
    pub ours_status: Option<String>,
    pub ours_amount_krw: Option<i64>,
    pub theirs_status: Option<String>,
    pub theirs_amount_krw: Option<i64>,
}

without_relations!();

use sea_orm::entity::prelude::*;

#[derive(Clone, Debug, PartialEq, Eq, DeriveEntityModel)]
#[sea_orm(table_name = "billing_keys")]
pub struct Model {
    #[sea_orm(primary_key, auto_increment = false)]
    pub id: String,
    pub user_id: String,
    pub customer_key: String,
    #[sea_orm(unique)]
    pub auth_key_hash: String,
    pub status: String,
    /// base64(nonce ‖ AES-256-GCM ciphertext) of Toss's billing key.
    pub key_ciphertext: Option<String>,
    pub key_fingerprint: Option<String>,
    pub method: Option<String>,
    pub card_issuer_code: Option<String>,
    pub card_number: Option<String>,
    pub card_type: Option<String>,
    pub card_owner_type: Option<String>,
    pub issue_lease_until: Option<DateTimeUtc>,
    pub created_at: DateTimeUtc,
    pub deleted_at: Option<DateTimeUtc>,
}

without_relations!();

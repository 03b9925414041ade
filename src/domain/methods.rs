//! What the PG reports about how a payment was made (the method, the card, the virtual account,
//! the receipt), and the account a deposited virtual account is refunded to.

use std::fmt;

use chrono::{DateTime, Utc};

use super::DomainError;

/// The virtual account (가상계좌) Toss issued: where the buyer must deposit, and by when.
/// `Debug` shows only the last four characters of the number.
#[derive(Clone, PartialEq, Eq, serde::Serialize, utoipa::ToSchema)]
#[schema(
    as = VirtualAccountDto,
    description = "The virtual account (가상계좌) Toss issued for the buyer's deposit.",
    example = json!({"bank_code": "20", "account_number": "X6516521381011", "customer_name": "박토스", "due_date": "2026-11-30T14:59:59.000Z"})
)]
pub struct VirtualAccount {
    /// Toss's bank code.
    pub bank_code: String,
    pub account_number: String,
    /// The depositor name the buyer gave.
    pub customer_name: Option<String>,
    /// Deposit by then, or the account expires.
    #[serde(serialize_with = "super::timestamps::optional")]
    pub due_date: Option<DateTime<Utc>>,
}

impl fmt::Debug for VirtualAccount {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("VirtualAccount")
            .field("bank_code", &self.bank_code)
            .field("account_number", &mask(&self.account_number))
            .field("customer_name", &self.customer_name)
            .field("due_date", &self.due_date)
            .finish()
    }
}

/// The card a payment was made with, as Toss reports it.
// Never the whole number (Toss masks it). Read from Toss's Payment object as is (camelCase),
// shown as the API's `CardDto` (snake_case).
#[derive(
    Debug, Clone, Default, PartialEq, Eq, serde::Deserialize, serde::Serialize, utoipa::ToSchema,
)]
#[serde(rename_all(deserialize = "camelCase"))]
#[schema(as = CardDto, example = json!({"issuer_code": "71", "number": "12345678****000*", "installment_plan_months": 0, "approve_no": "00000000"}))]
pub struct CardSummary {
    /// Toss's card company code (`issuerCode`).
    pub issuer_code: Option<String>,
    /// Masked by Toss.
    pub number: Option<String>,
    /// 0 = paid at once.
    pub installment_plan_months: Option<i32>,
    /// The card company's approval number.
    pub approve_no: Option<String>,
}

/// What the PG's record says about how the payment was made. Each part that is `Some` replaces
/// what we had; a part the record lacks leaves ours alone (a virtual account stays known after
/// the deposit).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct PgDetails {
    /// Toss's `method`: `카드`, `가상계좌`, `간편결제`, ...
    pub method: Option<String>,
    pub receipt_url: Option<String>,
    pub card: Option<CardSummary>,
    pub virtual_account: Option<VirtualAccount>,
}

/// Toss's `method` of a virtual account.
pub const VIRTUAL_ACCOUNT_METHOD: &str = "가상계좌";

/// Where the money of a deposited virtual account goes back to (Toss's `refundReceiveAccount`).
/// The account number is a secret: `Debug` shows only its last four digits.
#[derive(Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct RefundAccount {
    /// Toss's bank code, e.g. `88` (신한).
    pub bank: String,
    account_number: String,
    pub holder_name: String,
}

impl RefundAccount {
    /// `bank`: 1..20 of `A-Z a-z 0-9`; `account_number`: 1..20 digits; `holder_name`: 1..60
    /// characters, not blank, no control characters.
    pub fn parse(bank: &str, account_number: &str, holder_name: &str) -> Result<Self, DomainError> {
        if bank.is_empty() || bank.len() > 20 || !bank.bytes().all(|b| b.is_ascii_alphanumeric()) {
            return Err(DomainError::new(
                "refund_receive_account.bank",
                "must be 1 to 20 letters or digits (Toss's bank code)",
            ));
        }
        if account_number.is_empty()
            || account_number.len() > 20
            || !account_number.bytes().all(|b| b.is_ascii_digit())
        {
            return Err(DomainError::new(
                "refund_receive_account.account_number",
                "must be 1 to 20 digits",
            ));
        }
        let len = holder_name.chars().count();
        if !(1..=60).contains(&len)
            || holder_name.trim().is_empty()
            || holder_name.chars().any(char::is_control)
        {
            return Err(DomainError::new(
                "refund_receive_account.holder_name",
                "must be 1 to 60 characters, not blank, without control characters",
            ));
        }
        Ok(Self {
            bank: bank.to_owned(),
            account_number: account_number.to_owned(),
            holder_name: holder_name.to_owned(),
        })
    }

    /// The whole number, for the PG request only.
    pub fn expose_account_number(&self) -> &str {
        &self.account_number
    }
}

/// `****1234`: the last four characters (fewer for a short number), the rest hidden.
pub fn mask(number: &str) -> String {
    let chars: Vec<char> = number.chars().collect();
    let shown = chars.len().saturating_sub(4).max(chars.len() / 2);
    let tail: String = chars[shown..].iter().collect();
    format!("{}{tail}", "*".repeat(shown))
}

impl fmt::Debug for RefundAccount {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("RefundAccount")
            .field("bank", &self.bank)
            .field("account_number", &mask(&self.account_number))
            .field("holder_name", &self.holder_name)
            .finish()
    }
}

/// A refund account as stored: encrypted by the service, opaque to everyone else.
#[derive(Clone, PartialEq, Eq)]
pub struct SealedAccount(pub String);

impl fmt::Debug for SealedAccount {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("SealedAccount(..)")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn account_numbers_are_masked_in_debug() {
        let account = RefundAccount::parse("88", "110123456789", "홍길동").unwrap();
        let shown = format!("{account:?}");
        assert!(!shown.contains("110123456789"), "{shown}");
        assert!(shown.contains("********6789"), "{shown}");
        assert_eq!(mask("12"), "*2");
        assert_eq!(mask(""), "");
    }

    #[test]
    fn refund_accounts_are_validated() {
        assert!(RefundAccount::parse("88", "1234", "a").is_ok());
        assert!(RefundAccount::parse("", "1234", "a").is_err());
        assert!(RefundAccount::parse("88", "12-34", "a").is_err());
        assert!(RefundAccount::parse("88", &"1".repeat(21), "a").is_err());
        assert!(RefundAccount::parse("88", "1234", " ").is_err());
        assert!(RefundAccount::parse("88", "1234", &"가".repeat(61)).is_err());
    }
}

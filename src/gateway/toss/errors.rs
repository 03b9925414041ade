//! Toss's error codes, and what each lets the caller conclude. Errors are classified by Toss's
//! `code`, not by HTTP status, because Toss uses 400 and 403 both for final declines and for
//! answers that mean "maybe it happened" (`docs/toss-api.md` §8).

use std::fmt;

use super::Operation;
use crate::gateway::GatewayError;

/// Declines that leave nothing behind on Toss's side, per endpoint (§8.2, §8.3). A code is only
/// final for the endpoint whose table lists it: `Declined` promises that nothing happened.
/// The card's and the bank's refusals, shared by a confirm and a billing charge.
const CARD_DECLINES: &[&str] = &[
    // 403 declines by the card company, bank or Toss's fraud checks.
    "REJECT_ACCOUNT_PAYMENT",
    "REJECT_CARD_PAYMENT",
    "REJECT_CARD_COMPANY",
    "REJECT_TOSSPAY_INVALID_ACCOUNT",
    "EXCEED_MAX_AUTH_COUNT",
    "EXCEED_MAX_ONE_DAY_AMOUNT",
    "INVALID_PASSWORD",
    "FDS_ERROR",
    // 400 card and account validation.
    "EXCEED_MAX_CARD_INSTALLMENT_PLAN",
    "NOT_ALLOWED_POINT_USE",
    "INVALID_REJECT_CARD",
    "BELOW_MINIMUM_AMOUNT",
    "INVALID_CARD_EXPIRATION",
    "INVALID_STOPPED_CARD",
    "EXCEED_MAX_DAILY_PAYMENT_COUNT",
    "NOT_SUPPORTED_INSTALLMENT_PLAN_CARD_OR_MERCHANT",
    "INVALID_CARD_INSTALLMENT_PLAN",
    "NOT_SUPPORTED_MONTHLY_INSTALLMENT_PLAN",
    "EXCEED_MAX_PAYMENT_AMOUNT",
    "INVALID_CARD_LOST_OR_STOLEN",
    "RESTRICTED_TRANSFER_ACCOUNT",
    "INVALID_CARD_NUMBER",
    "EXCEED_MAX_ONE_DAY_WITHDRAW_AMOUNT",
    "EXCEED_MAX_ONE_TIME_WITHDRAW_AMOUNT",
    "EXCEED_MAX_AMOUNT",
    "INVALID_ACCOUNT_INFO_RE_REGISTER",
];

/// Merchant setup, refused by a confirm, a charge and a cancel alike: final until someone talks
/// to Toss.
const MERCHANT_DECLINES: &[&str] = &[
    "NOT_FOUND_TERMINAL_ID",
    "INVALID_AUTHORIZE_AUTH",
    "INVALID_UNREGISTERED_SUBMALL",
    "NOT_REGISTERED_BUSINESS",
];

/// Confirm only: the 10-minute confirm window passed, or the buyer never finished.
const SESSION_DECLINES: &[&str] = &[
    "NOT_FOUND_PAYMENT_SESSION",
    "NOT_FOUND_PAYMENT",
    "PAY_PROCESS_ABORTED",
    "PAY_PROCESS_CANCELED",
];

const CANCEL_DECLINES: &[&str] = &[
    "INVALID_REFUND_ACCOUNT_INFO",
    "EXCEED_CANCEL_AMOUNT_DISCOUNT_AMOUNT",
    "INVALID_REFUND_ACCOUNT_NUMBER",
    "INVALID_BANK",
    "REFUND_REJECTED",
    "FORBIDDEN_BANK_REFUND_REQUEST",
    "NOT_CANCELABLE_AMOUNT",
    "NOT_CANCELABLE_PAYMENT",
    "EXCEED_MAX_REFUND_DUE",
    "NOT_ALLOWED_PARTIAL_REFUND_WAITING_DEPOSIT",
    "NOT_ALLOWED_PARTIAL_REFUND",
    "NOT_CANCELABLE_PAYMENT_FOR_DORMANT_USER",
    "EXCEED_CANCEL_LIMIT",
    "EXCEED_MAX_REFUND_AMOUNT",
    "NOT_FOUND_PAYMENT",
];

/// Billing charge only (`POST /v1/billing/{billingKey}`, §17.2; a charge has no payment
/// window, so the session codes do not apply): the billing key unknown to Toss, deleted (by the
/// buyer) or unfinished, and a `customerKey` that is not the key's. Nothing is charged.
/// `NOT_FOUND_BILLING` is the issue's code for an unknown `authKey` (§17.1), not a charge's;
/// `INVALID_BILLING_KEY`, `NOT_FOUND_BILLING_KEY` and `INVALID_AUTH_KEY` are not Toss codes.
/// `DUPLICATED_ORDER_ID` and `ALREADY_PROCESSING_REQUEST` say an approval of the order exists
/// or is under way: unknown, read the order back.
const BILLING_DECLINES: &[&str] = &["INVALID_BILL_KEY_REQUEST", "NOT_MATCHES_CUSTOMER_KEY"];

/// Declines a subscription service may simply try again later with the same card (§8.2,
/// §17.2): limits and balance, daily counts and amounts, the card company's or a provider's
/// trouble, service hours. Every other decline is hard: the card is lost, stolen, stopped,
/// expired or invalid (`INVALID_CARD_LOST_OR_STOLEN`, `INVALID_STOPPED_CARD`,
/// `INVALID_CARD_EXPIRATION`, `INVALID_CARD_NUMBER`, `INVALID_REJECT_CARD`, ...), or the
/// merchant setup refuses it, and only a new card (or a person) helps.
const SOFT_DECLINES: &[&str] = &[
    // Limit or balance.
    "REJECT_CARD_PAYMENT",
    "REJECT_ACCOUNT_PAYMENT",
    "EXCEED_MAX_PAYMENT_AMOUNT",
    "EXCEED_MAX_AMOUNT",
    "EXCEED_MAX_ONE_TIME_WITHDRAW_AMOUNT",
    // Daily count or amount.
    "EXCEED_MAX_DAILY_PAYMENT_COUNT",
    "EXCEED_MAX_ONE_DAY_AMOUNT",
    "EXCEED_MAX_ONE_DAY_WITHDRAW_AMOUNT",
    "EXCEED_MAX_AUTH_COUNT",
    // The card company's or a provider's error, or its service hours.
    "REJECT_CARD_COMPANY",
    "CARD_PROCESSING_ERROR",
    "PROVIDER_ERROR",
    "NOT_AVAILABLE_PAYMENT",
    "NOT_AVAILABLE_BANK",
    "FAILED_PAYMENT_INTERNAL_SYSTEM_PROCESSING",
    "FAILED_INTERNAL_SYSTEM_PROCESSING",
];

/// Whether a charge declined with `code` may pass later with the same card.
pub fn decline_is_retryable(code: &str) -> bool {
    SOFT_DECLINES.contains(&code)
}

/// Our key or our request is wrong; retrying cannot help, a person must.
const MISCONFIGURATIONS: &[&str] = &[
    "UNAUTHORIZED_KEY",
    "INVALID_API_KEY",
    "INCORRECT_BASIC_AUTH_FORMAT",
    "FORBIDDEN_REQUEST",
    "INVALID_REQUEST",
    "INVALID_IDEMPOTENCY_KEY",
];

/// Classifies a non-2xx Toss error. Everything not known to be final or a configuration error is
/// `Unknown`, including codes Toss adds later: only a read-back can tell what happened.
pub(super) fn classify(
    http_status: u16,
    code: &str,
    message: &str,
    operation: Operation,
) -> GatewayError {
    // A 5xx or 429 says nothing reliable about the payment, whatever the code.
    let in_doubt = http_status == 429 || http_status >= 500;
    let declines: &[&[&str]] = match operation {
        Operation::Confirm => &[CARD_DECLINES, MERCHANT_DECLINES, SESSION_DECLINES],
        Operation::Cancel => &[CANCEL_DECLINES, MERCHANT_DECLINES],
        Operation::Charge => &[CARD_DECLINES, MERCHANT_DECLINES, BILLING_DECLINES],
        // A lookup changes nothing, so nothing about it can be "declined"; an issue is below.
        Operation::Lookup | Operation::Issue => &[],
    };
    // On a confirm the paymentKey is the buyer's browser's, not ours: Toss refusing the request
    // is Toss refusing this attempt, which the buyer can retry, not a reason to page anyone.
    // An issue charges nothing: whatever Toss refuses (a used or wrong authKey, most often) is
    // final, only a 5xx or a timeout leaves it open (§17.1).
    let refused =
        matches!(operation, Operation::Confirm | Operation::Issue) && code == "INVALID_REQUEST";
    let (code, message) = (code.to_owned(), message.to_owned());
    if !in_doubt && !refused && MISCONFIGURATIONS.contains(&code.as_str()) {
        GatewayError::Misconfigured { code, message }
    } else if !in_doubt
        && (refused
            || operation == Operation::Issue
            || declines.iter().any(|list| list.contains(&code.as_str())))
    {
        GatewayError::Declined { code, message }
    } else {
        GatewayError::Unknown {
            reason: format!("Toss answered HTTP {http_status} {code}"),
            code: Some(code),
            message: Some(message),
        }
    }
}

/// An outcome nobody can tell, without a code from Toss.
pub(super) fn unknown(reason: impl Into<String>) -> GatewayError {
    GatewayError::Unknown {
        reason: reason.into(),
        code: None,
        message: None,
    }
}

/// A configuration or request problem found before anything was sent. The codes are ours, not
/// Toss's; the message says so.
pub(super) fn local_misconfiguration(code: &str, detail: impl fmt::Display) -> GatewayError {
    GatewayError::Misconfigured {
        code: code.to_owned(),
        message: format!("{detail} (checked locally; nothing was sent to Toss)"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use Operation::{Cancel, Charge, Confirm, Issue, Lookup};

    #[test]
    fn charge_declines_say_whether_a_retry_may_pass() {
        for soft in [
            "REJECT_CARD_PAYMENT",
            "EXCEED_MAX_DAILY_PAYMENT_COUNT",
            "EXCEED_MAX_ONE_DAY_AMOUNT",
            "REJECT_CARD_COMPANY",
        ] {
            assert!(decline_is_retryable(soft), "{soft}");
        }
        for hard in [
            "INVALID_CARD_LOST_OR_STOLEN",
            "INVALID_STOPPED_CARD",
            "INVALID_CARD_EXPIRATION",
            "INVALID_CARD_NUMBER",
            "INVALID_REJECT_CARD",
            "SOMETHING_NEW",
            "INVALID_BILL_KEY_REQUEST",
            "NOT_MATCHES_CUSTOMER_KEY",
        ] {
            assert!(!decline_is_retryable(hard), "{hard}");
        }
    }

    /// What each operation concludes from Toss's answer: `D`eclined, `M`isconfigured, `U`nknown.
    const CASES: &[(Operation, u16, &str, char)] = &[
        (Confirm, 403, "REJECT_CARD_PAYMENT", 'D'),
        (Confirm, 403, "REJECT_CARD_COMPANY", 'D'),
        (Confirm, 403, "FDS_ERROR", 'D'),
        (Confirm, 400, "INVALID_CARD_EXPIRATION", 'D'),
        (Confirm, 400, "BELOW_MINIMUM_AMOUNT", 'D'),
        (Confirm, 404, "NOT_FOUND_PAYMENT_SESSION", 'D'),
        (Confirm, 404, "NOT_FOUND_PAYMENT", 'D'),
        (Confirm, 400, "PAY_PROCESS_ABORTED", 'D'),
        (Confirm, 400, "NOT_FOUND_TERMINAL_ID", 'D'),
        // The buyer's paymentKey does not fit the order: Toss refused this attempt.
        (Confirm, 400, "INVALID_REQUEST", 'D'),
        (Confirm, 401, "UNAUTHORIZED_KEY", 'M'),
        (Confirm, 400, "INVALID_API_KEY", 'M'),
        (Confirm, 403, "INCORRECT_BASIC_AUTH_FORMAT", 'M'),
        (Confirm, 403, "FORBIDDEN_REQUEST", 'M'),
        (Confirm, 400, "INVALID_IDEMPOTENCY_KEY", 'M'),
        (Confirm, 400, "ALREADY_PROCESSED_PAYMENT", 'U'),
        (Confirm, 400, "ALREADY_PROCESSING_REQUEST", 'U'),
        (Confirm, 400, "PROVIDER_ERROR", 'U'),
        (Confirm, 400, "CARD_PROCESSING_ERROR", 'U'),
        (Confirm, 400, "UNAPPROVED_ORDER_ID", 'U'),
        (Confirm, 400, "NOT_AVAILABLE_PAYMENT", 'U'),
        (Confirm, 403, "NOT_AVAILABLE_BANK", 'U'),
        (Confirm, 409, "IDEMPOTENT_REQUEST_PROCESSING", 'U'),
        (
            Confirm,
            500,
            "FAILED_PAYMENT_INTERNAL_SYSTEM_PROCESSING",
            'U',
        ),
        (Confirm, 500, "UNKNOWN_PAYMENT_ERROR", 'U'),
        (Confirm, 400, "BRAND_NEW_CODE", 'U'),
        (Confirm, 429, "TOO_MANY_REQUESTS", 'U'),
        // Cancel-only codes mean nothing final for a confirm.
        (Confirm, 403, "NOT_CANCELABLE_PAYMENT", 'U'),
        // A 5xx or 429 wins over an otherwise final code.
        (Confirm, 500, "REJECT_CARD_PAYMENT", 'U'),
        (Confirm, 429, "UNAUTHORIZED_KEY", 'U'),
        (Cancel, 403, "NOT_CANCELABLE_PAYMENT", 'D'),
        (Cancel, 403, "NOT_CANCELABLE_AMOUNT", 'D'),
        (Cancel, 403, "EXCEED_MAX_REFUND_DUE", 'D'),
        (Cancel, 400, "INVALID_REFUND_ACCOUNT_INFO", 'D'),
        (Cancel, 400, "REFUND_REJECTED", 'D'),
        (Cancel, 403, "NOT_ALLOWED_PARTIAL_REFUND", 'D'),
        (Cancel, 404, "NOT_FOUND_PAYMENT", 'D'),
        (Cancel, 401, "UNAUTHORIZED_KEY", 'M'),
        (Cancel, 403, "FORBIDDEN_REQUEST", 'M'),
        (Cancel, 400, "ALREADY_CANCELED_PAYMENT", 'U'),
        (Cancel, 400, "ALREADY_REFUND_PAYMENT", 'U'),
        (Cancel, 400, "NOT_MATCHES_REFUNDABLE_AMOUNT", 'U'),
        (Cancel, 400, "PROVIDER_ERROR", 'U'),
        (Cancel, 403, "FORBIDDEN_CONSECUTIVE_REQUEST", 'U'),
        (Cancel, 500, "FAILED_REFUND_PROCESS", 'U'),
        (Cancel, 500, "FAILED_PARTIAL_REFUND", 'U'),
        (Cancel, 500, "COMMON_ERROR", 'U'),
        (Cancel, 400, "BRAND_NEW_CODE", 'U'),
        // Confirm-only declines do not prove a refund did not happen.
        (Cancel, 403, "REJECT_CARD_PAYMENT", 'U'),
        // §17.2: nothing was charged.
        (Charge, 400, "INVALID_BILL_KEY_REQUEST", 'D'),
        (Charge, 400, "NOT_MATCHES_CUSTOMER_KEY", 'D'),
        (Charge, 403, "REJECT_CARD_PAYMENT", 'D'),
        (Charge, 400, "INVALID_STOPPED_CARD", 'D'),
        // An approval of the order exists or is under way; the issue's code and names that
        // are not Toss's prove nothing about a charge: read the order back.
        (Charge, 400, "DUPLICATED_ORDER_ID", 'U'),
        (Charge, 400, "ALREADY_PROCESSING_REQUEST", 'U'),
        (Charge, 404, "NOT_FOUND_BILLING", 'U'),
        (Charge, 400, "INVALID_BILLING_KEY", 'U'),
        (Charge, 404, "NOT_FOUND_BILLING_KEY", 'U'),
        (Charge, 400, "INVALID_BILL_KEY_REQUEST_NEW", 'U'),
        (Charge, 500, "INVALID_BILL_KEY_REQUEST", 'U'),
        (Issue, 404, "NOT_FOUND_BILLING", 'D'),
        (Issue, 400, "INVALID_BILLING_AUTH", 'D'),
        (Issue, 400, "NOT_MATCHES_CUSTOMER_KEY", 'D'),
        (Issue, 400, "INVALID_CARD_NUMBER", 'D'),
        (Issue, 403, "REJECT_CARD_COMPANY", 'D'),
        (Issue, 400, "INVALID_REQUEST", 'D'),
        (Issue, 401, "UNAUTHORIZED_KEY", 'M'),
        (Issue, 500, "FAILED_INTERNAL_SYSTEM_PROCESSING", 'U'),
        (Lookup, 403, "REJECT_CARD_PAYMENT", 'U'),
        (Lookup, 403, "INCORRECT_BASIC_AUTH_FORMAT", 'M'),
    ];

    #[test]
    fn classify_by_operation_status_and_code() {
        for &(operation, status, text, expected) in CASES {
            let (code, m) = (text.to_owned(), "m".to_owned());
            let wanted = match expected {
                'D' => GatewayError::Declined { code, message: m },
                'M' => GatewayError::Misconfigured { code, message: m },
                _ => GatewayError::Unknown {
                    reason: format!("Toss answered HTTP {status} {code}"),
                    code: Some(code),
                    message: Some(m),
                },
            };
            let got = classify(status, text, "m", operation);
            assert_eq!(got, wanted, "{} {status} {text}", operation.as_str());
        }
    }
}

//! Toss's error codes, and what each lets the caller conclude. Errors are classified by Toss's
//! `code`, not by HTTP status, because Toss uses 400 and 403 both for final declines and for
//! answers that mean "maybe it happened" (`docs/toss-api.md` §8).

use std::fmt;

use super::Operation;
use crate::gateway::GatewayError;

/// Declines that leave nothing behind on Toss's side, per endpoint (§8.2, §8.3). A code is only
/// final for the endpoint whose table lists it: `Declined` promises that nothing happened.
/// The card's, the bank's and the merchant setup's refusals, shared by a confirm and a billing
/// charge.
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
    // Merchant setup: final until someone talks to Toss.
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
    "NOT_FOUND_TERMINAL_ID",
    "INVALID_AUTHORIZE_AUTH",
    "INVALID_UNREGISTERED_SUBMALL",
    "NOT_REGISTERED_BUSINESS",
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
        Operation::Confirm => &[CARD_DECLINES, SESSION_DECLINES],
        Operation::Cancel => &[CANCEL_DECLINES],
        Operation::Charge => &[CARD_DECLINES, BILLING_DECLINES],
        // A lookup changes nothing, so nothing about it can be "declined".
        Operation::Lookup => &[],
        // An issue charges nothing: whatever Toss refuses (a used or wrong authKey, most
        // often) is final, only a 5xx or a timeout leaves it open (§17.1).
        Operation::Issue => {
            return if in_doubt {
                GatewayError::Unknown {
                    reason: format!("Toss answered HTTP {http_status} {code}"),
                    code: Some(code.to_owned()),
                    message: Some(message.to_owned()),
                }
            } else if MISCONFIGURATIONS.contains(&code) && code != "INVALID_REQUEST" {
                GatewayError::Misconfigured {
                    code: code.to_owned(),
                    message: message.to_owned(),
                }
            } else {
                GatewayError::Declined {
                    code: code.to_owned(),
                    message: message.to_owned(),
                }
            };
        }
    };
    // On a confirm the paymentKey is the buyer's browser's, not ours: Toss refusing the request
    // is Toss refusing this attempt, which the buyer can retry, not a reason to page anyone.
    let refused_attempt = operation == Operation::Confirm && code == "INVALID_REQUEST";
    if !in_doubt && refused_attempt {
        GatewayError::Declined {
            code: code.to_owned(),
            message: message.to_owned(),
        }
    } else if !in_doubt && MISCONFIGURATIONS.contains(&code) {
        GatewayError::Misconfigured {
            code: code.to_owned(),
            message: message.to_owned(),
        }
    } else if !in_doubt && declines.iter().any(|list| list.contains(&code)) {
        GatewayError::Declined {
            code: code.to_owned(),
            message: message.to_owned(),
        }
    } else {
        GatewayError::Unknown {
            reason: format!("Toss answered HTTP {http_status} {code}"),
            code: Some(code.to_owned()),
            message: Some(message.to_owned()),
        }
    }
}

pub(super) fn unknown(reason: String) -> GatewayError {
    GatewayError::Unknown {
        reason,
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
        ] {
            assert!(!decline_is_retryable(hard), "{hard}");
        }
        let charge = |status, code| classify(status, code, "m", Operation::Charge);
        assert!(matches!(
            charge(403, "REJECT_CARD_PAYMENT"),
            GatewayError::Declined { .. }
        ));
        assert!(matches!(
            charge(400, "DUPLICATED_ORDER_ID"),
            GatewayError::Unknown { .. }
        ));
        let issue = |status, code| classify(status, code, "m", Operation::Issue);
        for (status, code) in [
            (404, "NOT_FOUND_BILLING"),
            (400, "INVALID_BILLING_AUTH"),
            (400, "NOT_MATCHES_CUSTOMER_KEY"),
            (400, "INVALID_CARD_NUMBER"),
            (403, "REJECT_CARD_COMPANY"),
        ] {
            assert_eq!(issue(status, code), declined(code), "issue {code}");
        }
        assert!(matches!(
            issue(500, "FAILED_INTERNAL_SYSTEM_PROCESSING"),
            GatewayError::Unknown { .. }
        ));
    }

    #[test]
    fn classify_charge_with_tosss_billing_codes() {
        let charge = |status, code| classify(status, code, "m", Operation::Charge);
        // §17.2: nothing was charged.
        for (status, code) in [
            (400, "INVALID_BILL_KEY_REQUEST"),
            (400, "NOT_MATCHES_CUSTOMER_KEY"),
            (403, "REJECT_CARD_PAYMENT"),
            (400, "INVALID_STOPPED_CARD"),
        ] {
            assert_eq!(charge(status, code), declined(code), "charge {code}");
        }
        assert!(!decline_is_retryable("INVALID_BILL_KEY_REQUEST"));
        assert!(!decline_is_retryable("NOT_MATCHES_CUSTOMER_KEY"));
        // An approval of the order exists or is under way; the issue's code and names that
        // are not Toss's prove nothing about a charge: read the order back.
        for (status, code) in [
            (400, "DUPLICATED_ORDER_ID"),
            (400, "ALREADY_PROCESSING_REQUEST"),
            (404, "NOT_FOUND_BILLING"),
            (400, "INVALID_BILLING_KEY"),
            (404, "NOT_FOUND_BILLING_KEY"),
            (400, "INVALID_BILL_KEY_REQUEST_NEW"),
            (500, "INVALID_BILL_KEY_REQUEST"),
        ] {
            assert!(is_unknown(&charge(status, code)), "charge {status} {code}");
        }
    }

    fn declined(code: &str) -> GatewayError {
        GatewayError::Declined {
            code: code.to_owned(),
            message: "m".to_owned(),
        }
    }

    fn misconfigured(code: &str) -> GatewayError {
        GatewayError::Misconfigured {
            code: code.to_owned(),
            message: "m".to_owned(),
        }
    }

    fn is_unknown(error: &GatewayError) -> bool {
        matches!(error, GatewayError::Unknown { .. })
    }

    #[test]
    fn classify_confirm() {
        let confirm = |status, code| classify(status, code, "m", Operation::Confirm);
        for (status, code) in [
            (403, "REJECT_CARD_PAYMENT"),
            (403, "REJECT_CARD_COMPANY"),
            (403, "FDS_ERROR"),
            (400, "INVALID_CARD_EXPIRATION"),
            (400, "BELOW_MINIMUM_AMOUNT"),
            (404, "NOT_FOUND_PAYMENT_SESSION"),
            (404, "NOT_FOUND_PAYMENT"),
            (400, "PAY_PROCESS_ABORTED"),
            (400, "NOT_FOUND_TERMINAL_ID"),
            // The buyer's paymentKey does not fit the order: Toss refused this attempt.
            (400, "INVALID_REQUEST"),
        ] {
            assert_eq!(confirm(status, code), declined(code));
        }
        for (status, code) in [
            (401, "UNAUTHORIZED_KEY"),
            (400, "INVALID_API_KEY"),
            (403, "INCORRECT_BASIC_AUTH_FORMAT"),
            (403, "FORBIDDEN_REQUEST"),
            (400, "INVALID_IDEMPOTENCY_KEY"),
        ] {
            assert_eq!(confirm(status, code), misconfigured(code));
        }
        for (status, code) in [
            (400, "ALREADY_PROCESSED_PAYMENT"),
            (400, "ALREADY_PROCESSING_REQUEST"),
            (400, "PROVIDER_ERROR"),
            (400, "CARD_PROCESSING_ERROR"),
            (400, "UNAPPROVED_ORDER_ID"),
            (400, "NOT_AVAILABLE_PAYMENT"),
            (403, "NOT_AVAILABLE_BANK"),
            (409, "IDEMPOTENT_REQUEST_PROCESSING"),
            (500, "FAILED_PAYMENT_INTERNAL_SYSTEM_PROCESSING"),
            (500, "UNKNOWN_PAYMENT_ERROR"),
            (400, "BRAND_NEW_CODE"),
            (429, "TOO_MANY_REQUESTS"),
            // Cancel-only codes mean nothing final for a confirm.
            (403, "NOT_CANCELABLE_PAYMENT"),
            // A 5xx or 429 wins over an otherwise final code.
            (500, "REJECT_CARD_PAYMENT"),
            (429, "UNAUTHORIZED_KEY"),
        ] {
            let error = confirm(status, code);
            assert!(is_unknown(&error), "{status} {code}: {error:?}");
            assert!(
                matches!(&error, GatewayError::Unknown { code: Some(c), message: Some(m), .. } if c == code && m == "m")
            );
        }
    }

    #[test]
    fn classify_cancel() {
        let cancel = |status, code| classify(status, code, "m", Operation::Cancel);
        for (status, code) in [
            (403, "NOT_CANCELABLE_PAYMENT"),
            (403, "NOT_CANCELABLE_AMOUNT"),
            (403, "EXCEED_MAX_REFUND_DUE"),
            (400, "INVALID_REFUND_ACCOUNT_INFO"),
            (400, "REFUND_REJECTED"),
            (403, "NOT_ALLOWED_PARTIAL_REFUND"),
            (404, "NOT_FOUND_PAYMENT"),
        ] {
            assert_eq!(cancel(status, code), declined(code));
        }
        for (status, code) in [(401, "UNAUTHORIZED_KEY"), (403, "FORBIDDEN_REQUEST")] {
            assert_eq!(cancel(status, code), misconfigured(code));
        }
        for (status, code) in [
            (400, "ALREADY_CANCELED_PAYMENT"),
            (400, "ALREADY_REFUND_PAYMENT"),
            (400, "NOT_MATCHES_REFUNDABLE_AMOUNT"),
            (400, "PROVIDER_ERROR"),
            (403, "FORBIDDEN_CONSECUTIVE_REQUEST"),
            (500, "FAILED_REFUND_PROCESS"),
            (500, "FAILED_PARTIAL_REFUND"),
            (500, "COMMON_ERROR"),
            (400, "BRAND_NEW_CODE"),
            // Confirm-only declines do not prove a refund did not happen.
            (403, "REJECT_CARD_PAYMENT"),
        ] {
            let error = cancel(status, code);
            assert!(is_unknown(&error), "{status} {code}: {error:?}");
        }
    }

    #[test]
    fn classify_lookup_never_declines() {
        assert!(is_unknown(&classify(
            403,
            "REJECT_CARD_PAYMENT",
            "m",
            Operation::Lookup
        )));
        assert_eq!(
            classify(403, "INCORRECT_BASIC_AUTH_FORMAT", "m", Operation::Lookup),
            misconfigured("INCORRECT_BASIC_AUTH_FORMAT")
        );
    }
}

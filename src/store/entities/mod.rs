pub mod event;
pub mod payment;
pub mod reconciliation_discrepancy;
pub mod reconciliation_run;
pub mod refund;
pub mod review;
pub mod webhook_delivery;

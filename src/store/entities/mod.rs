pub mod event;
pub mod payment;
pub mod refund;
pub mod review;
pub mod webhook_delivery;
pub mod reconciliation_discrepancy;
pub mod reconciliation_run;

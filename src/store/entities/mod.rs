pub mod billing_customer;
pub mod billing_key;
pub mod event;
pub mod payment;
pub mod refund;
pub mod review;
pub mod webhook_delivery;

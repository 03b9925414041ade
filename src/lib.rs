pub mod config;
pub mod domain;
pub mod error;
pub mod gateway;
pub mod service;
pub mod store;

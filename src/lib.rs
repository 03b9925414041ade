//! payment-service: a REST/JSON API for payments through Toss Payments.
//!
//! Layers (data flows one way): `http` -> `service` -> (`store`, `gateway`) -> `service` -> `http`.
//! `domain` holds the types with meaning; `idempotency` keeps `Idempotency-Key`s (key,
//! rows, layer) beside `service`; `relay` publishes the committed events to NATS;
//! `config`, `startup` and `telemetry` wire it all once.

pub mod config;
pub mod console;
pub mod crypto;
pub mod domain;
pub mod error;
pub mod gateway;
pub mod http;
pub mod idempotency;
pub mod relay;
pub mod service;
pub mod startup;
pub mod store;
pub mod telemetry;

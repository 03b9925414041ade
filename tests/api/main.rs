//! Integration tests: the real application over HTTP, a real database (SQLite and PostgreSQL),
//! and a fake Toss on loopback.

mod fake_toss;
mod helpers;

mod actors;
mod attempts;
mod billing;
mod confirm;
mod consents;
mod console;
mod console_pages;
mod crash;
mod edge;
mod engine;
mod hostile;
mod idempotency;
mod inputs;
mod invariant;
mod korean_methods;
mod listing;
mod openapi;
mod operations;
mod public_answers;
mod races;
mod reconciliation;
mod redirects;
mod refunds;
mod relay;
mod reviews;
mod round_trips;
mod schedules;
mod scopes;
mod secrets;
mod security_headers;
mod startup_errors;
mod webhooks;

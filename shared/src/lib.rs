//! The Orange Logic ⇄ WhatsApp connector's library.
//!
//! `domain` is pure (no AWS, no network) and holds the rules; `whatsapp` holds the webhook edge's pure
//! functions, the typed webhook payloads and the Cloud API client (the only module here that calls
//! Graph); `flows` orchestrate the `ports`; `adapters` implement the ports on AWS; `lambda` is the glue
//! shared by every function.

pub mod adapters;
pub mod aws;
pub mod config;
pub mod connector_config;
pub mod crypto;
pub mod domain;
pub mod error;
pub mod flows;
pub mod lambda;
pub mod metrics;
pub mod ports;
pub mod pseudonym;
pub mod secrets;
pub mod telemetry;
pub mod templates;
pub mod testing;
pub mod whatsapp;

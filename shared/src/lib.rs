//! The Orange Logic ⇄ WhatsApp connector's library.
//!
//! `domain` and `whatsapp` are pure (no AWS, no network) and hold the rules; `flows` orchestrate the
//! `ports`; `adapters` implement the ports on AWS; `lambda` is the glue shared by every function.

pub mod adapters;
pub mod aws;
pub mod config;
pub mod connector_config;
pub mod crypto;
pub mod domain;
pub mod error;
pub mod flows;
pub mod lambda;
pub mod ports;
pub mod pseudonym;
pub mod secrets;
pub mod telemetry;
pub mod testing;
pub mod whatsapp;

//! The WhatsApp Cloud API: the webhook edge (pure functions), the typed webhook payloads, and the
//! client that sends messages and downloads media.

pub mod client;
pub mod envelope;
pub mod errors;
pub mod handshake;
pub mod media;
pub mod messages;
pub mod signature;
pub mod webhook_types;

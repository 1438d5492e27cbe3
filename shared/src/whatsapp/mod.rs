//! The WhatsApp Cloud API: the webhook edge (pure functions), the typed webhook payloads and
//! messages. The Graph client and media streaming, the only code that calls Graph, live in
//! `adapters::whatsapp` behind the `MessageSender` port; they are re-exported here.

pub use crate::adapters::whatsapp::{client, media};
pub mod envelope;
pub mod errors;
pub mod handshake;
pub mod messages;
pub mod signature;
pub mod webhook_types;

//! What the connector knows of the WhatsApp Cloud API's webhooks, as pure functions.

pub mod envelope;
pub mod handshake;
pub mod signature;

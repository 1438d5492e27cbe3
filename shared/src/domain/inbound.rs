//! What the webhook edge puts on the `inbound` queue: one item of a Meta notification, with just
//! enough typed envelope to order, deduplicate and route it.

use crate::pseudonym::UserPseudonym;
use serde::{Deserialize, Serialize};
use serde_json::value::RawValue;

/// Largest queue body the edge produces; SQS allows 256 KiB on every queue configuration.
pub const MAX_ITEM_BYTES: usize = 256 * 1024;

/// Which list of a `messages` change the item came from.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum InboundKind {
    /// `value.messages[]`: something a user sent.
    Message,
    /// `value.statuses[]`: sent / delivered / read / failed for a message we sent.
    Status,
    /// `value.errors[]`: a system-level error for the business number.
    Error,
}

/// One item of a webhook notification, as queued. `Debug` leaves out the content, which holds
/// phone numbers and message text.
#[derive(Serialize, Deserialize)]
pub struct InboundItem {
    /// Envelope version, so consumers can refuse what they do not understand.
    pub v: u8,
    /// Where in the notification it came from.
    pub kind: InboundKind,
    /// Identity for idempotency: the wamid, `wamid:status`, or a digest of an error item.
    pub key: String,
    /// The user's pseudonym, when the item names a user.
    pub user: Option<UserPseudonym>,
    /// The business phone number the item concerns (`metadata.phone_number_id`).
    pub phone_number_id: Option<String>,
    /// The WhatsApp Business Account (`entry[].id`).
    pub waba_id: Option<String>,
    /// When the edge received the POST, Unix milliseconds.
    pub received_at_ms: i64,
    /// The item exactly as Meta sent it.
    pub item: Box<RawValue>,
    /// The matching `contacts[]` entry (profile name, ids), when there is one.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub contact: Option<Box<RawValue>>,
}

/// Current envelope version.
pub const ENVELOPE_VERSION: u8 = 1;

impl InboundItem {
    /// The FIFO message group: one per user so a conversation stays in order, else one per number.
    pub fn group_id(&self) -> String {
        match (&self.user, &self.phone_number_id) {
            (Some(user), _) => user.as_str().to_owned(),
            (None, Some(number)) => format!("business-{number}"),
            (None, None) => "business-unknown".to_owned(),
        }
    }

    /// A stand-in for an item too large to queue: same identity, content replaced by its size.
    pub fn too_large_marker(&self, bytes: usize) -> InboundItem {
        let marker = format!(r#"{{"connector_error":"item_too_large","bytes":{bytes}}}"#);
        InboundItem {
            v: self.v,
            kind: self.kind,
            key: self.key.clone(),
            user: self.user.clone(),
            phone_number_id: self.phone_number_id.clone(),
            waba_id: self.waba_id.clone(),
            received_at_ms: self.received_at_ms,
            // A fixed, valid JSON object: conversion cannot fail.
            item: RawValue::from_string(marker).unwrap_or_else(|_| self.item.clone()),
            contact: None,
        }
    }

    /// The FIFO deduplication id: a digest of `key`, always within SQS's 128-character charset.
    pub fn deduplication_id(&self) -> String {
        crate::crypto::sha256_hex(&[self.key.as_bytes()])
    }
}

impl std::fmt::Debug for InboundItem {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("InboundItem")
            .field("kind", &self.kind)
            .field("key", &self.key)
            .field("user", &self.user)
            .field("phone_number_id", &self.phone_number_id)
            .field("received_at_ms", &self.received_at_ms)
            .finish_non_exhaustive()
    }
}

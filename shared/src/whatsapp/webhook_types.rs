//! Typed webhook payloads (NOTES §2): every inbound message type, statuses, system errors and the
//! username-era ids. Anything unknown (a new message type, another webhook field, a body that does
//! not fit its type) is kept as raw JSON, never an error, so no item is ever dropped.

use super::errors::{ErrorClass, ErrorData};
use serde::Deserialize;
use serde_json::{Map, Value};

/// A whole POST body.
#[derive(Debug, Clone, PartialEq, Deserialize)]
pub struct Notification {
    /// `whatsapp_business_account` for the Cloud API.
    #[serde(default)]
    pub object: String,
    /// One per WABA.
    #[serde(default)]
    pub entry: Vec<Entry>,
}

impl Notification {
    /// Parses a body; only non-JSON or a non-object fails.
    pub fn parse(body: &[u8]) -> Result<Self, serde_json::Error> {
        serde_json::from_slice(body)
    }

    /// Every `messages` change value, in order.
    pub fn messages_values(&self) -> impl Iterator<Item = &MessagesValue> {
        self.entry
            .iter()
            .flat_map(|e| e.changes.iter())
            .filter_map(|c| match &c.value {
                ChangeValue::Messages(value) => Some(value.as_ref()),
                ChangeValue::Other(_) => None,
            })
    }

    /// Every inbound message with the contact that sent it (matched by id, not position).
    pub fn messages(&self) -> impl Iterator<Item = (&InboundMessage, Option<&Contact>)> {
        self.messages_values().flat_map(|value| {
            value
                .messages
                .iter()
                .map(move |message| (message, value.contact_of(message)))
        })
    }

    /// Every status.
    pub fn statuses(&self) -> impl Iterator<Item = &Status> {
        self.messages_values().flat_map(|v| v.statuses.iter())
    }
}

/// `entry[]`.
#[derive(Debug, Clone, PartialEq, Deserialize)]
pub struct Entry {
    /// The WABA id.
    #[serde(default)]
    pub id: Option<String>,
    /// Present on non-`messages` fields.
    #[serde(default)]
    pub time: Option<i64>,
    /// The changes.
    #[serde(default)]
    pub changes: Vec<Change>,
}

/// `entry[].changes[]`.
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(from = "RawChange")]
pub struct Change {
    /// `messages`, `message_template_status_update`, `group_lifecycle_update`, ...
    pub field: String,
    /// Typed for `messages`; raw for every other field.
    pub value: ChangeValue,
}

/// The value of a change.
#[derive(Debug, Clone, PartialEq)]
pub enum ChangeValue {
    /// `field == "messages"`.
    Messages(Box<MessagesValue>),
    /// Any other field, or a `messages` value of an unexpected shape.
    Other(Value),
}

#[derive(Deserialize)]
struct RawChange {
    #[serde(default)]
    field: String,
    #[serde(default)]
    value: Value,
}

impl From<RawChange> for Change {
    fn from(raw: RawChange) -> Self {
        let value = if raw.field == "messages" {
            match serde_json::from_value::<MessagesValue>(raw.value.clone()) {
                Ok(value) => ChangeValue::Messages(Box::new(value)),
                Err(_) => ChangeValue::Other(raw.value),
            }
        } else {
            ChangeValue::Other(raw.value)
        };
        Self {
            field: raw.field,
            value,
        }
    }
}

/// `value` of a `messages` change.
#[derive(Debug, Clone, PartialEq, Deserialize)]
pub struct MessagesValue {
    /// `whatsapp`.
    #[serde(default)]
    pub messaging_product: Option<String>,
    /// The business number the change is about.
    #[serde(default)]
    pub metadata: Option<Metadata>,
    /// Senders of `messages` (and recipients of statuses, in the username era).
    #[serde(default)]
    pub contacts: Vec<Contact>,
    /// Inbound messages.
    #[serde(default)]
    pub messages: Vec<InboundMessage>,
    /// Statuses of messages we sent.
    #[serde(default)]
    pub statuses: Vec<Status>,
    /// System-level errors.
    #[serde(default)]
    pub errors: Vec<WebhookError>,
}

impl MessagesValue {
    /// The contact whose `wa_id` or `user_id` is the message's sender.
    pub fn contact_of(&self, message: &InboundMessage) -> Option<&Contact> {
        self.contacts.iter().find(|c| {
            matches!((&message.from, &c.wa_id), (Some(a), Some(b)) if a == b)
                || matches!((&message.from_user_id, &c.user_id), (Some(a), Some(b)) if a == b)
        })
    }
}

/// `value.metadata`.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
pub struct Metadata {
    /// Digits, no `+`.
    #[serde(default)]
    pub display_phone_number: Option<String>,
    /// Route by this when there are several numbers.
    #[serde(default)]
    pub phone_number_id: Option<String>,
}

/// `value.contacts[]`.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
pub struct Contact {
    /// Phone-based id; absent for username users we have no phone for.
    #[serde(default)]
    pub wa_id: Option<String>,
    /// Business-scoped user id.
    #[serde(default)]
    pub user_id: Option<String>,
    /// Parent business-scoped user id.
    #[serde(default)]
    pub parent_user_id: Option<String>,
    /// Profile.
    #[serde(default)]
    pub profile: Option<Profile>,
    /// Only when the identity-change check is on.
    #[serde(default)]
    pub identity_key_hash: Option<String>,
}

impl Contact {
    /// The key a conversation is tracked by: parent BSUID, BSUID, then phone.
    pub fn user_key(&self) -> Option<&str> {
        self.parent_user_id
            .as_deref()
            .or(self.user_id.as_deref())
            .or(self.wa_id.as_deref())
    }
}

/// `contacts[].profile`.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
pub struct Profile {
    /// Display name.
    #[serde(default)]
    pub name: Option<String>,
    /// WhatsApp username, when the user adopted one.
    #[serde(default)]
    pub username: Option<String>,
}

/// `messages[]`: the common fields and the typed content.
#[derive(Debug, Clone, PartialEq)]
pub struct InboundMessage {
    /// The wamid; the deduplication key.
    pub id: String,
    /// Sender phone (digits); may be absent for username users.
    pub from: Option<String>,
    /// Sender business-scoped user id.
    pub from_user_id: Option<String>,
    /// Sender parent business-scoped user id.
    pub from_parent_user_id: Option<String>,
    /// Unix seconds, as Meta's string.
    pub timestamp: Option<String>,
    /// Reply, forward or product context.
    pub context: Option<MessageContext>,
    /// Click-to-WhatsApp ad referral.
    pub referral: Option<Referral>,
    /// Errors attached to the message (e.g. unsupported types).
    pub errors: Vec<WebhookError>,
    /// What was sent.
    pub content: MessageContent,
}

impl InboundMessage {
    /// The sender key: parent BSUID, BSUID, then phone.
    pub fn sender_key(&self) -> Option<&str> {
        self.from_parent_user_id
            .as_deref()
            .or(self.from_user_id.as_deref())
            .or(self.from.as_deref())
    }
}

impl<'de> Deserialize<'de> for InboundMessage {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let raw = RawMessage::deserialize(d)?;
        Ok(raw.into())
    }
}

#[derive(Deserialize)]
struct RawMessage {
    #[serde(default)]
    id: String,
    #[serde(default)]
    from: Option<String>,
    #[serde(default)]
    from_user_id: Option<String>,
    #[serde(default)]
    from_parent_user_id: Option<String>,
    #[serde(default)]
    timestamp: Option<String>,
    #[serde(default)]
    context: Option<Value>,
    #[serde(default)]
    referral: Option<Value>,
    #[serde(default)]
    errors: Option<Value>,
    #[serde(default, rename = "type")]
    kind: Option<String>,
    #[serde(flatten)]
    rest: Map<String, Value>,
}

impl From<RawMessage> for InboundMessage {
    fn from(mut raw: RawMessage) -> Self {
        // Text is the default type (as for sends); a message without `type` is kept as text if it
        // has a text body, else as unknown.
        let kind = raw.kind.clone().unwrap_or_else(|| {
            if raw.rest.contains_key("text") {
                "text".into()
            } else {
                String::new()
            }
        });
        let content = MessageContent::from_parts(&kind, &mut raw.rest);
        Self {
            id: raw.id,
            from: raw.from,
            from_user_id: raw.from_user_id,
            from_parent_user_id: raw.from_parent_user_id,
            timestamp: raw.timestamp,
            context: raw.context.and_then(|v| serde_json::from_value(v).ok()),
            referral: raw.referral.and_then(|v| serde_json::from_value(v).ok()),
            errors: raw
                .errors
                .and_then(|v| serde_json::from_value(v).ok())
                .unwrap_or_default(),
            content,
        }
    }
}

/// What an inbound message carries.
#[derive(Debug, Clone, PartialEq)]
pub enum MessageContent {
    /// `text.body`.
    Text(TextBody),
    /// A photo.
    Image(InboundMedia),
    /// A video.
    Video(InboundMedia),
    /// Audio or a voice note (`voice`).
    Audio(InboundMedia),
    /// A document.
    Document(InboundMedia),
    /// A sticker.
    Sticker(InboundMedia),
    /// A location pin.
    Location(Location),
    /// Shared contact cards.
    Contacts(Vec<SharedContact>),
    /// A tap on reply buttons or a list, or a flow reply.
    Interactive(InteractiveReply),
    /// A tap on a template quick-reply button.
    Button(ButtonReply),
    /// A reaction; `emoji` absent when removed.
    Reaction(Reaction),
    /// A catalog order (kept raw: no flow handles orders).
    Order(Value),
    /// A number or user-id change.
    System(SystemEvent),
    /// A type the Cloud API does not support (errors say which).
    Unsupported(Option<Value>),
    /// The user opened the chat for the first time.
    RequestWelcome,
    /// A type this code does not know, or a known type whose body did not fit: kept raw.
    Unknown {
        /// The `type` value.
        kind: String,
        /// Every field of the message except the common ones.
        raw: Value,
    },
}

impl MessageContent {
    fn from_parts(kind: &str, rest: &mut Map<String, Value>) -> Self {
        fn typed<T: serde::de::DeserializeOwned>(
            rest: &Map<String, Value>,
            key: &str,
        ) -> Option<T> {
            rest.get(key).and_then(|v| T::deserialize(v).ok())
        }
        let parsed = match kind {
            "text" => typed(rest, "text").map(Self::Text),
            "image" => typed(rest, "image").map(Self::Image),
            "video" => typed(rest, "video").map(Self::Video),
            "audio" => typed(rest, "audio").map(Self::Audio),
            "document" => typed(rest, "document").map(Self::Document),
            "sticker" => typed(rest, "sticker").map(Self::Sticker),
            "location" => typed(rest, "location").map(Self::Location),
            "contacts" => typed(rest, "contacts").map(Self::Contacts),
            "interactive" => typed(rest, "interactive").map(Self::Interactive),
            "button" => typed(rest, "button").map(Self::Button),
            "reaction" => typed(rest, "reaction").map(Self::Reaction),
            "order" => rest.get("order").cloned().map(Self::Order),
            "system" => typed(rest, "system").map(Self::System),
            "unsupported" | "unknown" => Some(Self::Unsupported(rest.get("unsupported").cloned())),
            "request_welcome" => Some(Self::RequestWelcome),
            _ => None,
        };
        parsed.unwrap_or_else(|| Self::Unknown {
            kind: kind.to_owned(),
            raw: Value::Object(std::mem::take(rest)),
        })
    }

    /// The media of image, video, audio, document and sticker messages.
    pub fn media(&self) -> Option<(super::messages::MediaKind, &InboundMedia)> {
        use super::messages::MediaKind;
        match self {
            Self::Image(m) => Some((MediaKind::Image, m)),
            Self::Video(m) => Some((MediaKind::Video, m)),
            Self::Audio(m) => Some((MediaKind::Audio, m)),
            Self::Document(m) => Some((MediaKind::Document, m)),
            Self::Sticker(m) => Some((MediaKind::Sticker, m)),
            _ => None,
        }
    }
}

/// `text`.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
pub struct TextBody {
    /// The text.
    pub body: String,
}

/// The media object of an inbound media message.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
pub struct InboundMedia {
    /// Media id for `GET /{media-id}` (valid 7 days).
    pub id: String,
    /// MIME type.
    #[serde(default)]
    pub mime_type: Option<String>,
    /// SHA-256, **base64**.
    #[serde(default)]
    pub sha256: Option<String>,
    /// Caption (image, video, document).
    #[serde(default)]
    pub caption: Option<String>,
    /// File name (document).
    #[serde(default)]
    pub filename: Option<String>,
    /// Download URL (v24+; 5-minute life, needs the token).
    #[serde(default)]
    pub url: Option<String>,
    /// A recorded voice note (audio).
    #[serde(default)]
    pub voice: Option<bool>,
    /// Animated (sticker).
    #[serde(default)]
    pub animated: Option<bool>,
}

/// `location`.
#[derive(Debug, Clone, PartialEq, Deserialize)]
pub struct Location {
    /// Degrees.
    pub latitude: f64,
    /// Degrees.
    pub longitude: f64,
    /// Place name (absent for "current location").
    #[serde(default)]
    pub name: Option<String>,
    /// Address.
    #[serde(default)]
    pub address: Option<String>,
    /// Place URL.
    #[serde(default)]
    pub url: Option<String>,
}

/// One shared contact card; fields beyond name and phones are kept raw.
#[derive(Debug, Clone, PartialEq, Deserialize)]
pub struct SharedContact {
    /// Name parts.
    #[serde(default)]
    pub name: Option<Value>,
    /// Phones.
    #[serde(default)]
    pub phones: Vec<SharedPhone>,
    /// Emails, addresses, org, urls, birthday, vcard...
    #[serde(flatten)]
    pub other: Map<String, Value>,
}

/// A phone of a shared contact.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
pub struct SharedPhone {
    /// As typed by the user.
    #[serde(default)]
    pub phone: Option<String>,
    /// WhatsApp id, when the number is on WhatsApp.
    #[serde(default)]
    pub wa_id: Option<String>,
    /// `CELL`, `MOBILE`, `WORK`...
    #[serde(default, rename = "type")]
    pub kind: Option<String>,
}

/// `interactive` of an inbound message.
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum InteractiveReply {
    /// A reply button was tapped.
    ButtonReply {
        /// The button.
        button_reply: ReplyChoice,
    },
    /// A list row was chosen.
    ListReply {
        /// The row.
        list_reply: ReplyChoice,
    },
    /// A flow was completed.
    NfmReply {
        /// Flow name, body and `response_json`.
        nfm_reply: Value,
    },
    /// Any other interactive reply.
    #[serde(other)]
    Other,
}

/// The id and title of a chosen button or row.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
pub struct ReplyChoice {
    /// The id we set when sending.
    pub id: String,
    /// Its label.
    #[serde(default)]
    pub title: Option<String>,
    /// Row description.
    #[serde(default)]
    pub description: Option<String>,
}

/// `button`: a template quick-reply tap.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
pub struct ButtonReply {
    /// The payload we set when sending.
    #[serde(default)]
    pub payload: Option<String>,
    /// The button label.
    #[serde(default)]
    pub text: Option<String>,
}

/// `reaction`.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
pub struct Reaction {
    /// The wamid reacted to.
    pub message_id: String,
    /// Absent (or empty) when the reaction was removed.
    #[serde(default)]
    pub emoji: Option<String>,
}

impl Reaction {
    /// `true` when the user removed their reaction.
    pub fn is_removal(&self) -> bool {
        self.emoji.as_deref().is_none_or(str::is_empty)
    }
}

/// `system`.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
pub struct SystemEvent {
    /// Human-readable description.
    #[serde(default)]
    pub body: Option<String>,
    /// `user_changed_number`, `user_changed_user_id` (older: `customer_changed_number`, ...).
    #[serde(default, rename = "type")]
    pub kind: Option<String>,
    /// The new phone id.
    #[serde(default)]
    pub wa_id: Option<String>,
    /// The new business-scoped user id.
    #[serde(default)]
    pub user_id: Option<String>,
    /// The previous business-scoped user id.
    #[serde(default)]
    pub previous_user_id: Option<String>,
}

/// `context`.
#[derive(Debug, Clone, PartialEq, Deserialize)]
pub struct MessageContext {
    /// The business number, for replies.
    #[serde(default)]
    pub from: Option<String>,
    /// The wamid replied to (ours, for button and list replies).
    #[serde(default)]
    pub id: Option<String>,
    /// Forwarded up to 5 times.
    #[serde(default)]
    pub forwarded: Option<bool>,
    /// Forwarded more than 5 times.
    #[serde(default)]
    pub frequently_forwarded: Option<bool>,
    /// Catalog product asked about.
    #[serde(default)]
    pub referred_product: Option<Value>,
}

/// `referral` (Click-to-WhatsApp).
#[derive(Debug, Clone, PartialEq, Deserialize)]
pub struct Referral {
    /// Ad or post URL.
    #[serde(default)]
    pub source_url: Option<String>,
    /// Ad or post id.
    #[serde(default)]
    pub source_id: Option<String>,
    /// `ad` or `post`.
    #[serde(default)]
    pub source_type: Option<String>,
    /// Click id.
    #[serde(default)]
    pub ctwa_clid: Option<String>,
    /// Everything else (headline, body, media urls, welcome message).
    #[serde(flatten)]
    pub other: Map<String, Value>,
}

/// Delivery states, in the only order they may advance.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum StatusKind {
    /// Left Meta's servers.
    Sent,
    /// On the phone.
    Delivered,
    /// Opened.
    Read,
    /// A voice message was played.
    Played,
    /// Failed; `errors` says why.
    Failed,
    /// A state this code does not know.
    Unknown,
}

impl StatusKind {
    /// Parses Meta's lowercase value.
    pub fn parse(value: &str) -> Self {
        match value {
            "sent" => Self::Sent,
            "delivered" => Self::Delivered,
            "read" => Self::Read,
            "played" => Self::Played,
            "failed" => Self::Failed,
            _ => Self::Unknown,
        }
    }
}

/// `statuses[]`.
#[derive(Debug, Clone, PartialEq, Deserialize)]
pub struct Status {
    /// Our wamid.
    pub id: String,
    /// As sent by Meta; see [`Status::kind`].
    pub status: String,
    /// Unix seconds, as Meta's string.
    #[serde(default)]
    pub timestamp: Option<String>,
    /// Recipient phone (may be absent for BSUID sends).
    #[serde(default)]
    pub recipient_id: Option<String>,
    /// Recipient business-scoped user id.
    #[serde(default)]
    pub recipient_user_id: Option<String>,
    /// Recipient parent business-scoped user id.
    #[serde(default)]
    pub parent_recipient_user_id: Option<String>,
    /// `group` for group sends.
    #[serde(default)]
    pub recipient_type: Option<String>,
    /// What we sent as `biz_opaque_callback_data`.
    #[serde(default)]
    pub biz_opaque_callback_data: Option<String>,
    /// v23 and lower; omitted on v24+.
    #[serde(default)]
    pub conversation: Option<Value>,
    /// Billing.
    #[serde(default)]
    pub pricing: Option<Pricing>,
    /// Why it failed.
    #[serde(default)]
    pub errors: Vec<WebhookError>,
}

impl Status {
    /// The state.
    pub fn kind(&self) -> StatusKind {
        StatusKind::parse(&self.status)
    }
}

/// `statuses[].pricing`.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
pub struct Pricing {
    /// Deprecated; use `kind` and `category`.
    #[serde(default)]
    pub billable: Option<bool>,
    /// `PMP` or `CBP`.
    #[serde(default)]
    pub pricing_model: Option<String>,
    /// `regular`, `free_customer_service`, `free_entry_point`.
    #[serde(default, rename = "type")]
    pub kind: Option<String>,
    /// `marketing`, `utility`, `service`, ...
    #[serde(default)]
    pub category: Option<String>,
}

/// An error in a webhook (`value.errors[]`, `messages[].errors[]`, `statuses[].errors[]`).
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
pub struct WebhookError {
    /// The code decisions are made on.
    pub code: i64,
    /// Title (same as message).
    #[serde(default)]
    pub title: Option<String>,
    /// Message.
    #[serde(default)]
    pub message: Option<String>,
    /// Details.
    #[serde(default)]
    pub error_data: Option<ErrorData>,
    /// Link to Meta's error table.
    #[serde(default)]
    pub href: Option<String>,
}

impl WebhookError {
    /// What to do about it (131047 means: resend as a template).
    pub fn class(&self) -> ErrorClass {
        ErrorClass::of_code(self.code)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    use std::path::{Path, PathBuf};

    /// The repository's own WhatsApp fixtures.
    fn fixtures_dir() -> PathBuf {
        Path::new(env!("CARGO_MANIFEST_DIR")).join("../fixtures/whatsapp")
    }

    fn read_fixture(name: &str) -> String {
        let path = fixtures_dir().join(name);
        std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()))
    }

    fn webhook_fixture(name: &str) -> Notification {
        let raw = read_fixture(&format!("webhooks/{name}"));
        Notification::parse(raw.as_bytes()).unwrap_or_else(|e| panic!("{name}: {e}"))
    }

    /// Meta's published OpenAPI spec: `WHATSAPP_SPEC_PATH`, else beside the repository
    /// (`../shared/reference/whatsapp/`). Not part of the repository, so it may be absent.
    fn spec_path() -> PathBuf {
        std::env::var_os("WHATSAPP_SPEC_PATH").map_or_else(
            || {
                Path::new(env!("CARGO_MANIFEST_DIR"))
                    .join("../../shared/reference/whatsapp/business-messaging-api_v23.0.yaml")
            },
            PathBuf::from,
        )
    }

    /// Says plainly that a conformance check is skipped, past the harness's output capture, or
    /// fails when `WHATSAPP_SPEC_REQUIRED` is set (CI's full run, which has the spec).
    fn skip_without(path: &Path, test: &str) -> bool {
        if path.exists() {
            return false;
        }
        assert!(
            std::env::var_os("WHATSAPP_SPEC_REQUIRED").is_none(),
            "{test}: WHATSAPP_SPEC_REQUIRED is set but {} does not exist",
            path.display()
        );
        use std::io::Write as _;
        let _ = writeln!(
            std::io::stderr(),
            "SKIPPED {test}: Meta's spec is not at {} (nothing beside the repository)",
            path.display()
        );
        true
    }

    /// Counts `messages`, `statuses` and `errors` items in the raw JSON, plus non-`messages` changes.
    fn raw_counts(body: &Value) -> (usize, usize, usize, usize) {
        let mut counts = (0, 0, 0, 0);
        let len = |v: &Value, key: &str| v.get(key).and_then(Value::as_array).map_or(0, Vec::len);
        for entry in body["entry"].as_array().into_iter().flatten() {
            for change in entry["changes"].as_array().into_iter().flatten() {
                if change["field"] == "messages" {
                    counts.0 += len(&change["value"], "messages");
                    counts.1 += len(&change["value"], "statuses");
                    counts.2 += len(&change["value"], "errors");
                } else {
                    counts.3 += 1;
                }
            }
        }
        counts
    }

    fn typed_counts(n: &Notification) -> (usize, usize, usize, usize) {
        let others = n
            .entry
            .iter()
            .flat_map(|e| &e.changes)
            .filter(|c| matches!(c.value, ChangeValue::Other(_)))
            .count();
        (
            n.messages().count(),
            n.statuses().count(),
            n.messages_values().map(|v| v.errors.len()).sum(),
            others,
        )
    }

    fn assert_nothing_lost(name: &str, raw: &str) -> Notification {
        let value: Value = serde_json::from_str(raw).unwrap_or_else(|e| panic!("{name}: {e}"));
        let notification =
            Notification::parse(raw.as_bytes()).unwrap_or_else(|e| panic!("{name}: {e}"));
        assert_eq!(notification.object, "whatsapp_business_account", "{name}");
        assert_eq!(typed_counts(&notification), raw_counts(&value), "{name}");
        let (messages, statuses, errors, others) = raw_counts(&value);
        assert!(
            messages + statuses + errors + others > 0,
            "{name} has items"
        );
        notification
    }

    fn only_message(n: &Notification) -> &InboundMessage {
        let mut messages = n.messages();
        let (message, _) = messages.next().expect("one message");
        assert!(messages.next().is_none());
        message
    }

    #[test]
    fn every_webhook_fixture_parses_with_no_item_lost() {
        let mut parsed = 0;
        let mut dir: Vec<_> = std::fs::read_dir(fixtures_dir().join("webhooks"))
            .expect("fixtures dir")
            .map(|e| e.expect("entry").path())
            .collect();
        dir.sort();
        for path in dir {
            let name = path
                .file_name()
                .and_then(|n| n.to_str())
                .unwrap_or_default()
                .to_owned();
            if !(name.starts_with("inbound-") || name.starts_with("status-")) {
                continue;
            }
            let raw = std::fs::read_to_string(&path).expect("readable");
            let notification = assert_nothing_lost(&name, &raw);
            for (message, _) in notification.messages() {
                assert!(
                    !matches!(message.content, MessageContent::Unknown { .. }),
                    "{name}: every type in the fixtures is known"
                );
            }
            parsed += 1;
        }
        assert_eq!(parsed, 23, "17 inbound and 6 status fixtures");
    }

    #[test]
    fn the_signed_fixture_body_parses_with_its_escapes_decoded() {
        let fixture: Value = serde_json::from_str(&read_fixture("signature.json")).expect("json");
        let body = fixture["raw_body"].as_str().expect("raw_body");
        let notification = assert_nothing_lost("signature", body);
        assert!(matches!(
            &only_message(&notification).content,
            MessageContent::Text(t) if t.body.starts_with("crème") && t.body.contains("https://example.org/")
        ));
    }

    #[test]
    fn all_sixteen_webhook_examples_of_the_spec_parse_with_no_item_lost() {
        let path = spec_path();
        if skip_without(
            &path,
            "all_sixteen_webhook_examples_of_the_spec_parse_with_no_item_lost",
        ) {
            return;
        }
        let yaml = std::fs::read_to_string(&path).expect("spec");
        let spec: Value = serde_norway::from_str(&yaml).expect("yaml");
        let examples = spec["paths"]["/whatsapp/webhooks"]["post"]["requestBody"]["content"]
            ["application/json"]["examples"]
            .as_object()
            .expect("examples");
        assert_eq!(examples.len(), 16);
        let mut kinds = Vec::new();
        for (name, example) in examples {
            let raw = serde_json::to_string(&example["value"]).expect("json");
            let notification = assert_nothing_lost(name, &raw);
            for (message, _) in notification.messages() {
                assert!(
                    !matches!(message.content, MessageContent::Unknown { .. }),
                    "{name}: {:?}",
                    message.content
                );
                kinds.push(std::mem::discriminant(&message.content));
            }
        }
        assert_eq!(
            kinds.len(),
            13,
            "13 message examples and 3 group-field examples"
        );
    }

    #[test]
    fn media_messages_keep_id_checksum_and_url() {
        let notification = webhook_fixture("inbound-document.json");
        let (message, contact) = notification.messages().next().expect("one");
        let (kind, media) = message.content.media().expect("media");
        assert_eq!(kind, super::super::messages::MediaKind::Document);
        assert_eq!(media.id, "9100000000000004");
        assert_eq!(media.filename.as_deref(), Some("site-survey-0312.pdf"));
        assert_eq!(
            media.sha256.as_deref(),
            Some("9TCn651coLfZDpX6Vtc6iInx6+OQp1UV1ljcJvRP4DI=")
        );
        assert!(media.url.is_some());
        assert_eq!(
            contact
                .and_then(|c| c.profile.as_ref())
                .and_then(|p| p.name.as_deref()),
            Some("Avery Quinn")
        );
    }

    #[test]
    fn replies_carry_the_ids_we_sent() {
        let read = webhook_fixture;
        let buttons = read("inbound-interactive-button-reply.json");
        let message = only_message(&buttons);
        assert!(matches!(
            &message.content,
            MessageContent::Interactive(InteractiveReply::ButtonReply { button_reply })
                if button_reply.id == "asset-7731-approve"
        ));
        assert!(
            message
                .context
                .as_ref()
                .and_then(|c| c.id.as_ref())
                .is_some()
        );
        let list = read("inbound-interactive-list-reply.json");
        assert!(matches!(
            &only_message(&list).content,
            MessageContent::Interactive(InteractiveReply::ListReply { list_reply })
                if list_reply.id == "region_north"
        ));
        let quick = read("inbound-button-template-quick-reply.json");
        assert!(matches!(
            &only_message(&quick).content,
            MessageContent::Button(ButtonReply { payload: Some(p), .. }) if p == "RESCHEDULE_VISIT_2207"
        ));
        let removed = read("inbound-reaction-removed.json");
        assert!(matches!(
            &only_message(&removed).content,
            MessageContent::Reaction(r) if r.is_removal()
        ));
        let unsupported = read("inbound-unsupported.json");
        let message = only_message(&unsupported);
        assert!(matches!(
            message.content,
            MessageContent::Unsupported(Some(_))
        ));
        assert_eq!(message.errors[0].code, 131_051);
    }

    #[test]
    fn failed_statuses_carry_classified_errors_and_pricing_is_typed() {
        let read = webhook_fixture;
        let failed = read("status-failed-131026.json");
        let status = failed.statuses().next().expect("one");
        assert_eq!(status.kind(), StatusKind::Failed);
        assert_eq!(status.errors[0].class(), ErrorClass::Permanent);
        let marketing = read("status-template-marketing-sent.json");
        let status = marketing.statuses().next().expect("one");
        assert_eq!(status.kind(), StatusKind::Sent);
        assert_eq!(
            status.pricing.as_ref().and_then(|p| p.category.as_deref()),
            Some("marketing")
        );
        assert_eq!(
            status.biz_opaque_callback_data.as_deref(),
            Some("campaign=autumn-launch;row=57")
        );
        assert!(
            StatusKind::Sent < StatusKind::Delivered && StatusKind::Delivered < StatusKind::Read
        );
    }

    #[test]
    fn username_users_without_a_phone_are_keyed_by_their_user_id() {
        let body = r#"{"object":"whatsapp_business_account","entry":[{"id":"W","changes":[{"field":"messages",
          "value":{"metadata":{"phone_number_id":"P"},
            "contacts":[{"profile":{"name":"Ana","username":"ana.designs"},"user_id":"US.1349","parent_user_id":"US.ENT.77"}],
            "messages":[{"from_user_id":"US.1349","from_parent_user_id":"US.ENT.77","id":"wamid.U","timestamp":"1","type":"text","text":{"body":"hi"}}],
            "statuses":[{"id":"wamid.O","status":"delivered","timestamp":"2","recipient_user_id":"US.1349"}]}}]}]}"#;
        let notification = assert_nothing_lost("bsuid", body);
        let (message, contact) = notification.messages().next().expect("one");
        assert_eq!(message.from, None);
        assert_eq!(message.sender_key(), Some("US.ENT.77"));
        let contact = contact.expect("matched by user id");
        assert_eq!(contact.user_key(), Some("US.ENT.77"));
        assert_eq!(
            contact.profile.as_ref().and_then(|p| p.username.as_deref()),
            Some("ana.designs")
        );
        let status = notification.statuses().next().expect("one");
        assert_eq!(status.recipient_id, None);
        assert_eq!(status.recipient_user_id.as_deref(), Some("US.1349"));
    }

    #[test]
    fn unknown_types_and_misfit_bodies_are_kept_raw() {
        let body = r#"{"object":"whatsapp_business_account","entry":[{"id":"W","changes":[
          {"field":"messages","value":{"messages":[
            {"from":"1","id":"wamid.A","type":"revoke","revoke":{"original_message_id":"wamid.Z"}},
            {"from":"1","id":"wamid.B","type":"image","image":"not an object"},
            {"from":"1","id":"wamid.C","type":"request_welcome"}],
           "errors":[{"code":130429,"title":"Rate limit hit"}]}},
          {"field":"message_template_status_update","value":{"event":"APPROVED"}}]}]}"#;
        let notification = assert_nothing_lost("odd", body);
        let contents: Vec<&MessageContent> =
            notification.messages().map(|(m, _)| &m.content).collect();
        assert!(matches!(contents[0], MessageContent::Unknown { kind, raw }
            if kind == "revoke" && raw["revoke"]["original_message_id"] == "wamid.Z"));
        assert!(matches!(contents[1], MessageContent::Unknown { kind, .. } if kind == "image"));
        assert_eq!(contents[2], &MessageContent::RequestWelcome);
        let error = &notification.messages_values().next().expect("value").errors[0];
        assert!(error.class().is_retryable());
    }
}

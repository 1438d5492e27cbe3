//! What flows hand the one sender (`outbound.fifo`), and the ids that tie replies and statuses back
//! to the message and flow they belong to.

use crate::connector_config::{Purpose, TemplateUse};
use crate::domain::contact::WhatsAppAddress;
use crate::pseudonym::UserPseudonym;
use crate::whatsapp::messages::{Content, TemplateButton, TemplateHeader, TemplateParam};
use serde::{Deserialize, Serialize};
use std::fmt;

/// Envelope version of [`OutboundRequest`] and [`RoutedMessage`].
pub const OUTBOUND_VERSION: u8 = 1;

/// The flow a message belongs to: replies and statuses go back to it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum MessageFlow {
    /// The router's own messages: the courtesy reply to unknown senders, START confirmations.
    Conversation,
    /// The confirmation of an opt-out: the only message sent to a user who has opted out.
    OptOut,
    /// Flow 1.
    Review,
    /// Flow 2 receipts.
    FieldIngest,
    /// Flow 3.
    RightsExpiry,
    /// Flow 4.
    Campaign,
    /// Flow 5.
    Sharing,
    /// Flow 6.
    UgcIntake,
    /// Flow 7.
    IssueAlert,
}

impl MessageFlow {
    /// Every flow.
    pub const ALL: [MessageFlow; 9] = [
        Self::Conversation,
        Self::OptOut,
        Self::Review,
        Self::FieldIngest,
        Self::RightsExpiry,
        Self::Campaign,
        Self::Sharing,
        Self::UgcIntake,
        Self::IssueAlert,
    ];

    /// A short code used in send keys and button ids (kept short: button ids hold 256 bytes).
    pub fn code(self) -> &'static str {
        match self {
            Self::Conversation => "cv",
            Self::OptOut => "oo",
            Self::Review => "rv",
            Self::FieldIngest => "fi",
            Self::RightsExpiry => "rx",
            Self::Campaign => "cp",
            Self::Sharing => "sh",
            Self::UgcIntake => "ug",
            Self::IssueAlert => "ia",
        }
    }

    /// The flow of a code.
    pub fn from_code(code: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|f| f.code() == code)
    }
}

/// The identity of one send: the same key is never sent twice. `subject` is what the message is
/// about (an asset id, an inbound wamid, a campaign), `version` which state of it (the asset version,
/// the expiry window, a reminder number).
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
pub struct SendKey {
    /// The flow sending.
    pub flow: MessageFlow,
    /// What the message is about.
    pub subject: String,
    /// Which state of the subject.
    pub version: String,
    /// Who it goes to.
    pub recipient: UserPseudonym,
}

impl SendKey {
    /// The key as one string: `flow|subject|version|recipient`. This is what travels in
    /// `biz_opaque_callback_data` (max 512 bytes): a longer key travels as its digest.
    pub fn encode(&self) -> String {
        let key = format!(
            "{}|{}|{}|{}",
            self.flow.code(),
            self.subject,
            self.version,
            self.recipient
        );
        if key.len() <= 512 {
            key
        } else {
            format!("sha256:{}", crate::crypto::sha256_hex(&[key.as_bytes()]))
        }
    }

    /// The FIFO deduplication id of the request (SQS allows 128 characters).
    pub fn deduplication_id(&self) -> String {
        crate::crypto::sha256_hex(&[self.encode().as_bytes()])
    }
}

/// A template message by its use: the sender picks the approved template for the use from the
/// configuration, in the recipient's language when it exists, else the configured default.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct TemplateMessage {
    /// Which of the configured templates.
    #[serde(rename = "use")]
    pub template: TemplateUse,
    /// Header variable.
    #[serde(default)]
    pub header: Option<TemplateHeader>,
    /// Body variables.
    #[serde(default)]
    pub body: Vec<TemplateParam>,
    /// Button variables.
    #[serde(default)]
    pub buttons: Vec<TemplateButton>,
}

/// Which business number sends.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum SendFrom {
    /// The first configured number with this purpose.
    Purpose(Purpose),
    /// This number (replies go out on the number the user wrote to).
    Number(String),
}

/// One message for the one sender. At least one of `content` and `template` is set: `content` is
/// sent inside the user's 24-hour window, `template` outside it (or always, without `content`).
#[derive(Clone, PartialEq, Serialize, Deserialize)]
pub struct OutboundRequest {
    /// Envelope version.
    pub v: u8,
    /// The send's identity.
    pub key: SendKey,
    /// Where it goes (personal data; the queue is encrypted, logs show the pseudonym).
    pub to: WhatsAppAddress,
    /// The sending number.
    pub from: SendFrom,
    /// Free-form content.
    #[serde(default)]
    pub content: Option<Content>,
    /// The template to send outside the window.
    #[serde(default)]
    pub template: Option<TemplateMessage>,
    /// Quote-reply to this wamid.
    #[serde(default)]
    pub reply_to: Option<String>,
    /// Who caused the send (a rep's pseudonym, `dam:<user>`, `system`), for the audit.
    #[serde(default)]
    pub actor: Option<String>,
    /// When the flow asked, Unix milliseconds.
    pub requested_at_ms: i64,
}

impl OutboundRequest {
    /// The FIFO message group: one per recipient, so one person's messages stay in order.
    pub fn group_id(&self) -> String {
        self.key.recipient.as_str().to_owned()
    }
}

impl fmt::Debug for OutboundRequest {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("OutboundRequest")
            .field("key", &self.key)
            .field("from", &self.from)
            .field("content", &self.content.as_ref().map(Content::type_name))
            .field("template", &self.template.as_ref().map(|t| t.template))
            .finish_non_exhaustive()
    }
}

/// A reply button's id, which carries the flow, the action and the subject, so a tap routes back
/// without a lookup: `flow|action|subject|version` (max 256 bytes).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ButtonId {
    /// The flow that sent the buttons.
    pub flow: MessageFlow,
    /// What the button does (`approve`, `reject`, `confirm`, `yes`).
    pub action: String,
    /// What it is about.
    pub subject: String,
    /// Which state of it.
    pub version: String,
}

impl ButtonId {
    /// Encodes the id; `None` when it would pass 256 bytes or a part holds `|`.
    pub fn encode(&self) -> Option<String> {
        let parts = [&self.action, &self.subject, &self.version];
        if parts.iter().any(|p| p.contains('|')) {
            return None;
        }
        let id = format!(
            "{}|{}|{}|{}",
            self.flow.code(),
            self.action,
            self.subject,
            self.version
        );
        (id.len() <= 256).then_some(id)
    }

    /// Decodes an id this connector made; anything else is `None`.
    pub fn decode(id: &str) -> Option<Self> {
        let mut parts = id.splitn(4, '|');
        let flow = MessageFlow::from_code(parts.next()?)?;
        let (action, subject, version) = (parts.next()?, parts.next()?, parts.next()?);
        (!action.is_empty()).then(|| Self {
            flow,
            action: action.to_owned(),
            subject: subject.to_owned(),
            version: version.to_owned(),
        })
    }
}

/// What a sent message was about, found from its wamid (a reply's `context.id`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SentMessageRef {
    /// The wamid.
    pub message_id: String,
    /// The send it was.
    pub key: SendKey,
}

/// An inbound message the router hands a flow's queue: who wrote, on which number, what it answers,
/// and the message exactly as Meta sent it (parse it with `whatsapp::webhook_types::InboundMessage`).
#[derive(Clone, Serialize, Deserialize)]
pub struct RoutedMessage {
    /// Envelope version.
    pub v: u8,
    /// The wamid.
    pub key: String,
    /// The sender's pseudonym.
    pub user: UserPseudonym,
    /// Where replies to the sender go.
    pub reply_address: WhatsAppAddress,
    /// The business number it was sent to (`phone_number_id`).
    pub number: String,
    /// When the edge received it, Unix milliseconds.
    pub received_at_ms: i64,
    /// The message this one answers, when it answers one of ours (by button id or `context.id`).
    #[serde(default)]
    pub answers: Option<SendKey>,
    /// The button tapped, when it was one of ours.
    #[serde(default)]
    pub button: Option<String>,
    /// The message as Meta sent it.
    pub item: Box<serde_json::value::RawValue>,
    /// The matching `contacts[]` entry, when there is one.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub contact: Option<Box<serde_json::value::RawValue>>,
}

impl fmt::Debug for RoutedMessage {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("RoutedMessage")
            .field("key", &self.key)
            .field("user", &self.user)
            .field("number", &self.number)
            .field("answers", &self.answers)
            .finish_non_exhaustive()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::pseudonym::Pseudonymizer;
    use crate::secrets::Secret;

    fn user() -> UserPseudonym {
        Pseudonymizer::new(&Secret::new("k")).pseudonym("447700900123")
    }

    #[test]
    fn a_send_key_fits_callback_data_and_a_long_one_travels_as_its_digest() {
        let key = SendKey {
            flow: MessageFlow::Review,
            subject: "A-1".into(),
            version: "3".into(),
            recipient: user(),
        };
        assert!(key.encode().starts_with("rv|A-1|3|u_"));
        let long = SendKey {
            subject: "x".repeat(600),
            ..key.clone()
        };
        assert!(long.encode().starts_with("sha256:"));
        assert!(long.encode().len() <= 512);
        assert_eq!(key.deduplication_id().len(), 64);
    }

    #[test]
    fn button_ids_round_trip_and_foreign_ids_are_not_ours() {
        let id = ButtonId {
            flow: MessageFlow::Review,
            action: "approve".into(),
            subject: "A-1".into(),
            version: "3".into(),
        };
        let encoded = id.encode().expect("valid");
        assert_eq!(ButtonId::decode(&encoded), Some(id));
        assert_eq!(ButtonId::decode("yes"), None);
        assert_eq!(ButtonId::decode("zz|a|b|c"), None);
        let piped = ButtonId {
            flow: MessageFlow::Campaign,
            action: "a|b".into(),
            subject: "s".into(),
            version: "v".into(),
        };
        assert_eq!(piped.encode(), None);
    }

    #[test]
    fn an_outbound_request_round_trips_and_its_debug_hides_the_number() {
        let request = OutboundRequest {
            v: OUTBOUND_VERSION,
            key: SendKey {
                flow: MessageFlow::Conversation,
                subject: "wamid.X".into(),
                version: "courtesy".into(),
                recipient: user(),
            },
            to: WhatsAppAddress::parse("+447700900123").expect("valid"),
            from: SendFrom::Purpose(Purpose::Notifications),
            content: Some(Content::Text {
                body: "Hello".into(),
                preview_url: false,
            }),
            template: None,
            reply_to: None,
            actor: None,
            requested_at_ms: 1,
        };
        let json = serde_json::to_string(&request).expect("valid");
        let back: OutboundRequest = serde_json::from_str(&json).expect("valid");
        assert_eq!(back, request);
        assert!(!format!("{request:?}").contains("7700"));
    }
}

/// What a flow's own queue carries: the domain events change detection publishes, and the answers
/// route-inbound hands back to the flow that sent the message answered.
#[derive(Debug, Clone)]
pub enum FlowQueueMessage {
    /// A user answered one of the flow's messages.
    Answer(Box<RoutedMessage>),
    /// Something happened to an asset.
    Event(crate::domain::dam::DomainEvent),
}

impl FlowQueueMessage {
    /// Reads a queue body: an answer carries `reply_address`, a domain event does not. (Not an
    /// untagged serde enum: the raw item inside an answer cannot be buffered by one.)
    pub fn parse(body: &str) -> Result<Self, serde_json::Error> {
        #[derive(Deserialize)]
        struct Probe {
            #[serde(default)]
            reply_address: Option<serde::de::IgnoredAny>,
        }
        let probe: Probe = serde_json::from_str(body)?;
        Ok(if probe.reply_address.is_some() {
            Self::Answer(serde_json::from_str(body)?)
        } else {
            Self::Event(serde_json::from_str(body)?)
        })
    }
}

#[cfg(test)]
mod flow_queue_tests {
    use super::*;

    #[test]
    fn a_flow_queue_tells_answers_from_domain_events() {
        let event = r#"{"id":"e1","asset":"A-1","edited_at":null,"type":"ready_for_review"}"#;
        let answer = r#"{"v":1,"key":"wamid.1","user":"u_0123456789abcdef01234567","reply_address":"+447700900123","number":"109876543210987","received_at_ms":1,"answers":{"flow":"review","subject":"A-1","version":"3","recipient":"u_0123456789abcdef01234567"},"button":"rv|approve|A-1|3","item":{"type":"interactive"}}"#;
        match FlowQueueMessage::parse(answer).expect("an answer") {
            FlowQueueMessage::Answer(routed) => {
                assert_eq!(routed.answers.expect("answers").flow, MessageFlow::Review)
            }
            other => panic!("not an answer: {other:?}"),
        }
        match FlowQueueMessage::parse(event) {
            Ok(FlowQueueMessage::Event(_)) => {}
            other => panic!("not an event: {other:?}"),
        }
    }
}

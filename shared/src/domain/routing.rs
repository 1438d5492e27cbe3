//! Where an inbound message goes: decided from the receiving number's purposes, the sender's
//! directory roles, what the message answers and what it is. Opt-out commands and number changes
//! are decided before these rules (see `flows::route_inbound`).

use crate::connector_config::Purpose;
use crate::domain::contact::Role;
use crate::whatsapp::webhook_types::{InteractiveReply, MessageContent};
use serde::{Deserialize, Serialize};
use std::collections::BTreeSet;

/// The queues route-inbound feeds; each is consumed by a later flow and holds its events until then.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Destination {
    /// Statuses, for track-delivery (the `InboundItem` itself).
    DeliveryStatus,
    /// Answers to messages the connector sent (button taps, quote replies), for the flow that sent them.
    Replies,
    /// A rep's request on a sharing number (flow 5).
    Sharing,
    /// Media from a field contributor (flow 2).
    FieldIngest,
    /// Anything sent to a UGC number (flow 6).
    UgcIntake,
    /// Messages no flow takes (an unknown sender, a type no rule handles): kept, never dropped.
    Unrouted,
}

impl Destination {
    /// Every destination.
    pub const ALL: [Destination; 6] = [
        Self::DeliveryStatus,
        Self::Replies,
        Self::Sharing,
        Self::FieldIngest,
        Self::UgcIntake,
        Self::Unrouted,
    ];

    /// The name in logs.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::DeliveryStatus => "delivery_status",
            Self::Replies => "replies",
            Self::Sharing => "sharing",
            Self::FieldIngest => "field_ingest",
            Self::UgcIntake => "ugc_intake",
            Self::Unrouted => "unrouted",
        }
    }
}

/// What the router knows about a message when it decides.
#[derive(Debug, Clone)]
pub struct MessageFacts<'a> {
    /// What was sent.
    pub content: &'a MessageContent,
    /// The receiving number's purposes; `None` when the number is not in the configuration.
    pub purposes: Option<&'a [Purpose]>,
    /// The sender's directory roles (empty: not in the directory).
    pub roles: &'a BTreeSet<Role>,
    /// Whether it answers a message of ours (a button id we made, or `context.id` of a send).
    pub answers_ours: bool,
}

/// The decision.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Route {
    /// To a flow's queue.
    To(Destination),
    /// An unknown sender on an internal number: one courtesy reply per window, and the message
    /// kept on [`Destination::Unrouted`].
    Courtesy,
    /// No flow takes it: kept on [`Destination::Unrouted`], with the reason logged.
    Unrouted(&'static str),
}

/// The routing rules, in order: answers go back to their flow; anything on a UGC number is UGC;
/// a rep's text on a sharing number is a sharing request; image, video and document from a field
/// contributor on a field-ingest number are field media; an unknown sender on an internal number
/// gets the courtesy reply; everything else is kept unrouted.
pub fn route(facts: &MessageFacts<'_>) -> Route {
    let Some(purposes) = facts.purposes else {
        return Route::Unrouted("the business number is not configured");
    };
    if facts.answers_ours {
        return Route::To(Destination::Replies);
    }
    if purposes.contains(&Purpose::UgcIntake) {
        return Route::To(Destination::UgcIntake);
    }
    // A field contributor's location pin and `project <TAG>` belong with their media (flow 2).
    if purposes.contains(&Purpose::FieldIngest)
        && facts.roles.contains(&Role::Field)
        && is_field_context(facts.content)
    {
        return Route::To(Destination::FieldIngest);
    }
    if purposes.contains(&Purpose::Sharing)
        && facts.roles.contains(&Role::Rep)
        && is_text_request(facts.content)
    {
        return Route::To(Destination::Sharing);
    }
    if purposes.contains(&Purpose::FieldIngest)
        && facts.roles.contains(&Role::Field)
        && is_field_media(facts.content)
    {
        return Route::To(Destination::FieldIngest);
    }
    if facts.roles.is_empty() {
        return Route::Courtesy;
    }
    Route::Unrouted(match facts.content {
        MessageContent::Unknown { .. } => "a message type this connector does not know",
        MessageContent::Unsupported(_) => "a message type the Cloud API does not support",
        _ => "no flow takes this message from this sender on this number",
    })
}

/// Text a rep types (or a list / button choice of their own menu) asks for something.
fn is_text_request(content: &MessageContent) -> bool {
    matches!(
        content,
        MessageContent::Text(_)
            | MessageContent::Interactive(
                InteractiveReply::ListReply { .. } | InteractiveReply::ButtonReply { .. }
            )
    )
}

/// The media flow 2 ingests into the DAM.
fn is_field_media(content: &MessageContent) -> bool {
    matches!(
        content,
        MessageContent::Image(_) | MessageContent::Video(_) | MessageContent::Document(_)
    )
}

/// What flow 2 keeps beside the media: a location pin, a `project <TAG>` command.
fn is_field_context(content: &MessageContent) -> bool {
    match content {
        MessageContent::Location(_) => true,
        MessageContent::Text(text) => {
            crate::domain::field_ingest::project_command(&text.body).is_some()
        }
        _ => false,
    }
}

/// The `type` of a message as Meta names it, for log lines (never its content).
pub fn type_name(content: &MessageContent) -> &str {
    match content {
        MessageContent::Text(_) => "text",
        MessageContent::Image(_) => "image",
        MessageContent::Video(_) => "video",
        MessageContent::Audio(_) => "audio",
        MessageContent::Document(_) => "document",
        MessageContent::Sticker(_) => "sticker",
        MessageContent::Location(_) => "location",
        MessageContent::Contacts(_) => "contacts",
        MessageContent::Interactive(_) => "interactive",
        MessageContent::Button(_) => "button",
        MessageContent::Reaction(_) => "reaction",
        MessageContent::Order(_) => "order",
        MessageContent::System(_) => "system",
        MessageContent::Unsupported(_) => "unsupported",
        MessageContent::RequestWelcome => "request_welcome",
        MessageContent::Unknown { kind, .. } => kind,
    }
}

/// The id a user's tap carries: a reply button's or list row's id, or a template quick reply's payload.
pub fn tapped_id(content: &MessageContent) -> Option<&str> {
    match content {
        MessageContent::Interactive(
            InteractiveReply::ButtonReply {
                button_reply: choice,
            }
            | InteractiveReply::ListReply { list_reply: choice },
        ) => Some(&choice.id),
        MessageContent::Button(button) => button.payload.as_deref(),
        _ => None,
    }
}

/// The text an opt-out or opt-in command may be written in: a text body, or the label of a
/// template quick-reply button (Meta's marketing templates offer a "Stop" button).
pub fn command_text(content: &MessageContent) -> Option<&str> {
    match content {
        MessageContent::Text(text) => Some(&text.body),
        MessageContent::Button(button) => button.text.as_deref(),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::whatsapp::webhook_types::InboundMessage;

    fn message(json: &str) -> MessageContent {
        serde_json::from_str::<InboundMessage>(json)
            .expect("message")
            .content
    }

    fn text() -> MessageContent {
        message(r#"{"id":"w","type":"text","text":{"body":"pier photos please"}}"#)
    }

    fn image() -> MessageContent {
        message(r#"{"id":"w","type":"image","image":{"id":"7001","mime_type":"image/jpeg"}}"#)
    }

    fn roles(roles: &[Role]) -> BTreeSet<Role> {
        roles.iter().copied().collect()
    }

    #[test]
    fn a_field_contributors_location_and_project_command_go_to_field_ingest() {
        let field = roles(&[Role::Field]);
        let purposes = [Purpose::FieldIngest, Purpose::Sharing];
        for json in [
            r#"{"id":"w","type":"location","location":{"latitude":51.5,"longitude":-0.1}}"#,
            r#"{"id":"w","type":"text","text":{"body":"project BRIDGE-12"}}"#,
        ] {
            let content = message(json);
            let facts = MessageFacts {
                content: &content,
                purposes: Some(&purposes),
                roles: &field,
                answers_ours: false,
            };
            assert_eq!(route(&facts), Route::To(Destination::FieldIngest), "{json}");
        }
        let chat = text();
        let facts = MessageFacts {
            content: &chat,
            purposes: Some(&purposes),
            roles: &field,
            answers_ours: false,
        };
        assert_ne!(route(&facts), Route::To(Destination::FieldIngest));
    }

    const INTERNAL: &[Purpose] = &[
        Purpose::Notifications,
        Purpose::FieldIngest,
        Purpose::Sharing,
    ];
    const UGC: &[Purpose] = &[Purpose::UgcIntake];

    fn decide(
        content: &MessageContent,
        purposes: Option<&[Purpose]>,
        who: &BTreeSet<Role>,
        answers_ours: bool,
    ) -> Route {
        route(&MessageFacts {
            content,
            purposes,
            roles: who,
            answers_ours,
        })
    }

    #[test]
    fn an_answer_to_one_of_our_messages_goes_back_to_its_flow_on_any_number() {
        let tap = message(
            r#"{"id":"w","type":"interactive","interactive":{"type":"button_reply","button_reply":{"id":"rv|approve|A-1|3","title":"Approve"}}}"#,
        );
        for purposes in [INTERNAL, UGC] {
            assert_eq!(
                decide(&tap, Some(purposes), &roles(&[Role::Approver]), true),
                Route::To(Destination::Replies)
            );
        }
        assert_eq!(tapped_id(&tap), Some("rv|approve|A-1|3"));
    }

    #[test]
    fn anything_on_a_ugc_number_is_ugc_even_from_unknown_senders_and_unknown_types() {
        let odd = message(r#"{"id":"w","type":"hologram","hologram":{"x":1}}"#);
        for content in [text(), image(), odd] {
            assert_eq!(
                decide(&content, Some(UGC), &roles(&[]), false),
                Route::To(Destination::UgcIntake)
            );
        }
    }

    #[test]
    fn a_reps_text_on_a_sharing_number_is_a_sharing_request() {
        assert_eq!(
            decide(&text(), Some(INTERNAL), &roles(&[Role::Rep]), false),
            Route::To(Destination::Sharing)
        );
        // A rep's photo is not a request; a field contributor's text is not one either.
        assert!(matches!(
            decide(&image(), Some(INTERNAL), &roles(&[Role::Rep]), false),
            Route::Unrouted(_)
        ));
        assert!(matches!(
            decide(&text(), Some(INTERNAL), &roles(&[Role::Field]), false),
            Route::Unrouted(_)
        ));
    }

    #[test]
    fn field_media_goes_to_field_ingest_only_from_field_contributors_on_a_field_number() {
        let document = message(
            r#"{"id":"w","type":"document","document":{"id":"7002","filename":"plan.pdf"}}"#,
        );
        let video = message(r#"{"id":"w","type":"video","video":{"id":"7003"}}"#);
        for content in [image(), document, video] {
            assert_eq!(
                decide(&content, Some(INTERNAL), &roles(&[Role::Field]), false),
                Route::To(Destination::FieldIngest)
            );
        }
        let notifications_only = [Purpose::Notifications];
        assert!(matches!(
            decide(
                &image(),
                Some(&notifications_only),
                &roles(&[Role::Field]),
                false
            ),
            Route::Unrouted(_)
        ));
        let sticker = message(r#"{"id":"w","type":"sticker","sticker":{"id":"7004"}}"#);
        assert!(matches!(
            decide(&sticker, Some(INTERNAL), &roles(&[Role::Field]), false),
            Route::Unrouted(_)
        ));
    }

    #[test]
    fn an_unknown_sender_on_an_internal_number_gets_the_courtesy_reply() {
        assert_eq!(
            decide(&text(), Some(INTERNAL), &roles(&[]), false),
            Route::Courtesy
        );
        assert_eq!(
            decide(&image(), Some(INTERNAL), &roles(&[]), false),
            Route::Courtesy
        );
    }

    #[test]
    fn unknown_types_and_unconfigured_numbers_are_kept_with_a_reason() {
        let odd = message(r#"{"id":"w","type":"hologram","hologram":{"x":1}}"#);
        assert_eq!(type_name(&odd), "hologram");
        assert_eq!(
            decide(&odd, Some(INTERNAL), &roles(&[Role::Field]), false),
            Route::Unrouted("a message type this connector does not know")
        );
        assert_eq!(
            decide(&text(), None, &roles(&[]), false),
            Route::Unrouted("the business number is not configured")
        );
    }

    #[test]
    fn a_template_stop_button_carries_its_label_as_the_command_text() {
        let stop = message(
            r#"{"id":"w","type":"button","button":{"payload":"Stop promotions","text":"Stop"}}"#,
        );
        assert_eq!(command_text(&stop), Some("Stop"));
        assert_eq!(command_text(&image()), None);
    }
}

//! route-inbound: each message item of `inbound.fifo` is checked against the items its
//! conversation saw last, opt-out and opt-in commands are honoured before anything else, and the
//! item is handed to the queue of the flow it belongs to; the conversation write that records the
//! last inbound time then marks the item seen.
//!
//! Check first, mark last, no claim: the conversation item (one per user and business number)
//! keeps the digests of its last [`SEEN_ITEMS`](crate::ports::SEEN_ITEMS) items. A message whose key is among them is a
//! duplicate and does nothing. Otherwise it is handled, and only then marked, in the one
//! `UpdateItem` that also moves the last inbound time forward. A failure between handling and the
//! mark (a crash, the mark's write failing) handles the item again on SQS's redelivery, which is
//! safe because every side effect is safe to repeat:
//! - opt-out, opt-in and the courtesy reply record the message's own time (Meta's timestamp, the
//!   same on every redelivery), so a redelivery recognises what *this* message already did and
//!   queues its reply again under the same send key, which `outbound.fifo` (5 minutes) and the
//!   sender's ledger (after that) deduplicate;
//! - a route is a FIFO send whose deduplication id is the item key: a redelivery within 5 minutes
//!   is dropped by SQS, a later one reaches the flow twice (below);
//! - a number change finds the old entry gone and moves nothing.
//!
//! The window comes first: the sender sends a free-form reply (a confirmation, the courtesy
//! reply, a flow's answer) only if the conversation shows the user's 24-hour window open, and the
//! mark comes after those replies are queued. So when the conversation as read does not show the
//! window open for at least [`WINDOW_MARGIN_MS`] more, the message's time is recorded before
//! anything is sent (one write more for the first message of a window); within an open window the
//! mark is the item's only write.
//!
//! What this gives up against a claim per item: the list is bounded, so a redelivery of an item
//! older than the conversation's last [`SEEN_ITEMS`](crate::ports::SEEN_ITEMS) items, and more than 5 minutes after the
//! first delivery, is handled again (a routed message reaches its flow twice; replies stay
//! deduplicated by their send keys). Meta redelivers only a webhook that was not answered 200, and
//! the user must have sent 16 more messages on that number in between.
//!
//! Statuses and error items are not checked or marked: forwarding a status is idempotent (see
//! [`InboundRouter::handle`]) and an error item is only logged, so a redelivered one is logged
//! again, which changes nothing anyone sees.

use crate::connector_config::{ConnectorConfig, Purpose};
use crate::domain::contact::{Contact, OptChange, WhatsAppAddress};
use crate::domain::inbound::{ENVELOPE_VERSION, InboundItem, InboundKind};
use crate::domain::opt_out::{OptCommand, parse_command};
use crate::domain::outbound::{
    ButtonId, MessageFlow, OUTBOUND_VERSION, OutboundRequest, RoutedMessage, SendFrom, SendKey,
    awaited_answer,
};
use crate::domain::routing::{self, Destination, MessageFacts, Route};
use crate::error::Retryable;
use crate::ports::{
    BusinessNumberId, ContactDirectory, Conversation, ConversationStore, InboundRoutes,
    OutboundQueue, QueueError, SERVICE_WINDOW_MS, SeenMark, SentMessageLookup, StoreError,
};
use crate::pseudonym::{Pseudonymizer, UserPseudonym};
use crate::whatsapp::messages::Content;
use crate::whatsapp::webhook_types::{InboundMessage, MessageContent, SystemEvent, WebhookError};
use std::collections::{BTreeMap, BTreeSet};

/// The source recorded with an opt-in sent over WhatsApp.
pub const OPT_IN_SOURCE: &str = "whatsapp:START";

/// How long the window must stay open, as the conversation was read, for a message not to
/// record its time before its replies are queued: longer than a reply takes to reach the sender,
/// and than a redelivery takes to come back after a failed mark.
pub const WINDOW_MARGIN_MS: i64 = 60 * 60 * 1000;

/// How often the mark is retried on a fresh read when the conversation changed under it.
const MARK_ATTEMPTS: usize = 3;

/// Tunables and the router's own words.
#[derive(Debug, Clone)]
pub struct RouterSettings {
    /// The one reply an unknown sender on an internal number gets per window.
    pub courtesy_text: String,
    /// The confirmation of an opt-out.
    pub opt_out_text: String,
    /// The confirmation of an opt-in.
    pub opt_in_text: String,
}

impl Default for RouterSettings {
    fn default() -> Self {
        Self {
            courtesy_text: "Thank you for your message. This number is used by our teams and \
                            cannot answer here; please contact us through our usual channels."
                .into(),
            opt_out_text: "You will no longer receive messages from us here. Reply START to \
                           receive them again."
                .into(),
            opt_in_text: "Welcome back: you will receive our messages here again. Reply STOP \
                          to stop them."
                .into(),
        }
    }
}

/// The business numbers and their purposes, from the connector configuration.
#[derive(Debug, Clone, Default)]
pub struct Numbers(BTreeMap<String, Vec<Purpose>>);

impl Numbers {
    /// Every configured number.
    pub fn from_config(config: &ConnectorConfig) -> Self {
        Self(
            config
                .whatsapp
                .business_numbers
                .iter()
                .map(|n| (n.phone_number_id.clone(), n.purposes.clone()))
                .collect(),
        )
    }

    /// The purposes of `number`, if it is configured.
    pub fn purposes(&self, number: &str) -> Option<&[Purpose]> {
        self.0.get(number).map(Vec::as_slice)
    }
}

/// What the router needs.
#[derive(Debug)]
pub struct InboundRouter<D, C, S, O, R> {
    /// The contact directory.
    pub directory: D,
    /// Conversation state per user and number.
    pub conversations: C,
    /// What our sent messages were about (for `context.id`).
    pub sent: S,
    /// `outbound.fifo`: confirmations and courtesy replies.
    pub outbound: O,
    /// The flow queues.
    pub routes: R,
    /// Pseudonyms of new numbers (a `system` message names the new one in clear).
    pub pseudonyms: Pseudonymizer,
    /// The business numbers.
    pub numbers: Numbers,
    /// Tunables.
    pub settings: RouterSettings,
}

/// What handling one item did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Handled {
    /// Its key is among the last items its conversation saw.
    Duplicate,
    /// A status, handed to track-delivery.
    Status,
    /// A system-level error of the business number, logged with its code.
    ErrorLogged {
        /// Meta's code, when the item had one.
        code: Option<i64>,
    },
    /// An opt-out command.
    OptedOut {
        /// Whether a confirmation was queued (not on a repeated STOP).
        confirmed: bool,
    },
    /// An opt-in command.
    OptedIn {
        /// Whether a confirmation was queued (not when the user was not opted out).
        confirmed: bool,
    },
    /// The user changed number.
    NumberChanged {
        /// Whether a directory entry was moved.
        moved: bool,
    },
    /// A message handed to a flow queue.
    Routed(Destination),
    /// An unknown sender on an internal number; the message kept on the unrouted queue.
    Courtesy {
        /// Whether the window's courtesy reply was queued by this message.
        replied: bool,
    },
    /// No flow takes it; kept on the unrouted queue.
    Unrouted,
}

/// The `Flow` value of the routing metric: where a handled item went (`None`: nowhere new).
fn routed_to(handled: &Handled) -> Option<&'static str> {
    Some(match handled {
        Handled::Duplicate | Handled::ErrorLogged { .. } | Handled::NumberChanged { .. } => {
            return None;
        }
        Handled::Status | Handled::Routed(Destination::DeliveryStatus) => "delivery-status",
        Handled::OptedOut { .. } | Handled::OptedIn { .. } => "opt-out",
        Handled::Routed(Destination::Replies) => "replies",
        Handled::Routed(Destination::Sharing) => "sharing",
        Handled::Routed(Destination::FieldIngest) => "field-ingest",
        Handled::Routed(Destination::UgcIntake) => "ugc-intake",
        Handled::Routed(Destination::Unrouted) | Handled::Courtesy { .. } | Handled::Unrouted => {
            "unrouted"
        }
    })
}

/// Why an item could not be handled.
#[derive(Debug, thiserror::Error)]
pub enum RouteError {
    /// The item can never be handled (a foreign envelope, no sender, no number).
    #[error("the inbound item is malformed: {0}")]
    Malformed(&'static str),
    /// A store failed.
    #[error("a store failed")]
    Store(#[from] StoreError),
    /// A queue failed.
    #[error("a queue failed")]
    Queue(#[from] QueueError),
    /// The conversation kept changing while the item was marked seen.
    #[error("the conversation kept changing while the item was marked")]
    Contention,
}

impl Retryable for RouteError {
    fn is_retryable(&self) -> bool {
        match self {
            Self::Malformed(_) => false,
            Self::Store(e) => e.is_retryable(),
            Self::Queue(e) => e.is_retryable(),
            Self::Contention => true,
        }
    }
}

/// A message item, read.
struct Inbound<'a> {
    item: &'a InboundItem,
    message: InboundMessage,
    user: UserPseudonym,
    number: BusinessNumberId,
    address: WhatsAppAddress,
    /// The message's own time (Meta's timestamp), Unix milliseconds: the same on every
    /// redelivery, so it names what this message did.
    at_ms: i64,
    now_ms: i64,
}

impl<D, C, S, O, R> InboundRouter<D, C, S, O, R>
where
    D: ContactDirectory,
    C: ConversationStore,
    S: SentMessageLookup,
    O: OutboundQueue,
    R: InboundRoutes,
{
    /// Handles one item once: a message whose key its conversation saw last is a duplicate;
    /// otherwise it is handled, then marked seen.
    #[tracing::instrument(name = "route_inbound", skip_all, fields(kind = ?item.kind, user = ?item.user))]
    pub async fn handle(&self, item: &InboundItem, now_ms: i64) -> Result<Handled, RouteError> {
        if item.v != ENVELOPE_VERSION {
            return Err(RouteError::Malformed("unknown envelope version"));
        }
        let handled = match item.kind {
            // Not checked: forwarding a status is a queue send deduplicated by its key, and
            // track-delivery applies statuses monotonically, settles a send once and queues a
            // late 131047's template once, so a redelivered status changes nothing.
            InboundKind::Status => {
                let handled = self.forward_status(item).await?;
                crate::metrics::count_in("delivery-status", crate::metrics::Outcome::Routed, 1);
                return Ok(handled);
            }
            // Not checked: logging a redelivered error again changes nothing anyone sees.
            InboundKind::Error => log_error(item),
            InboundKind::Message => {
                let inbound = read_message(item, now_ms)?;
                let conversation = self
                    .conversations
                    .get(&inbound.user, &inbound.number)
                    .await?
                    .unwrap_or_default();
                if conversation.seen.contains(&item.key) {
                    tracing::info!("duplicate inbound item skipped");
                    return Ok(Handled::Duplicate);
                }
                let handled = self.handle_message(&inbound, &conversation).await?;
                self.mark_seen(&inbound, conversation, &handled).await?;
                handled
            }
        };
        tracing::info!(outcome = ?handled, "inbound item handled");
        if let Some(to) = routed_to(&handled) {
            crate::metrics::count_in(to, crate::metrics::Outcome::Routed, 1);
        }
        Ok(handled)
    }

    async fn forward_status(&self, item: &InboundItem) -> Result<Handled, RouteError> {
        self.routes.status(item).await?;
        Ok(Handled::Status)
    }

    /// Marks the item seen, with its time unless it is a `system` message, built on `read`.
    async fn mark_seen(
        &self,
        inbound: &Inbound<'_>,
        mut read: Conversation,
        handled: &Handled,
    ) -> Result<(), RouteError> {
        let mark = SeenMark {
            key: &inbound.item.key,
            at_ms: inbound.at_ms,
            // A `system` message is Meta's, not the user's: it opens no window.
            records_inbound: !matches!(handled, Handled::NumberChanged { .. }),
        };
        for _ in 0..MARK_ATTEMPTS {
            if self
                .conversations
                .mark_seen(&inbound.user, &inbound.number, &read, &mark)
                .await?
            {
                return Ok(());
            }
            // Changed since the read: a redelivery of this item handled at the same time (its
            // mark says the same), or another item's. Build on what is there now.
            read = self
                .conversations
                .get(&inbound.user, &inbound.number)
                .await?
                .unwrap_or_default();
            if read.seen.contains(mark.key)
                && read.last_inbound_after(&mark) == read.last_inbound_at_ms
            {
                return Ok(());
            }
        }
        Err(RouteError::Contention)
    }

    /// Records the message's time before anything is sent, unless the conversation as read
    /// shows the window open for [`WINDOW_MARGIN_MS`] more: the sender reads the window before a
    /// free-form reply, and the mark that records the time comes after the replies.
    async fn open_window(
        &self,
        inbound: &Inbound<'_>,
        conversation: &Conversation,
    ) -> Result<(), RouteError> {
        if conversation.window_open(inbound.now_ms + WINDOW_MARGIN_MS) {
            return Ok(());
        }
        self.conversations
            .record_inbound(&inbound.user, &inbound.number, inbound.at_ms)
            .await?;
        Ok(())
    }

    /// Handles a message not seen yet; `conversation` is its conversation as read for the check.
    async fn handle_message(
        &self,
        inbound: &Inbound<'_>,
        conversation: &Conversation,
    ) -> Result<Handled, RouteError> {
        let content = &inbound.message.content;
        // Opt-out first: recorded before the conversation, the routing or any reply.
        match routing::command_text(content).and_then(parse_command) {
            Some(OptCommand::Stop) => return self.opt_out(inbound, conversation).await,
            Some(OptCommand::Start) => return self.opt_in(inbound, conversation).await,
            None => {}
        }
        if let MessageContent::System(system) = content {
            return self.change_number(inbound, system).await;
        }
        self.open_window(inbound, conversation).await?;

        let contact = self.directory.get(&inbound.user).await?;
        let no_roles = BTreeSet::new();
        let roles = contact.as_ref().map_or(&no_roles, |c| &c.roles);
        let (answers, button) = self.answers(inbound, conversation).await?;
        let purposes = self.numbers.purposes(inbound.number.as_str());
        let decision = routing::route(&MessageFacts {
            content,
            purposes,
            roles,
            answers_ours: answers.is_some(),
        });
        let routed = RoutedMessage {
            v: OUTBOUND_VERSION,
            key: inbound.item.key.clone(),
            user: inbound.user.clone(),
            reply_address: inbound.address.clone(),
            number: inbound.number.as_str().to_owned(),
            received_at_ms: inbound.item.received_at_ms,
            answers,
            button,
            item: inbound.item.item.clone(),
            contact: inbound.item.contact.clone(),
        };
        let message_type = routing::type_name(content);
        match decision {
            Route::To(destination) => {
                self.routes.route(destination, &routed).await?;
                tracing::info!(
                    destination = destination.as_str(),
                    message_type,
                    "message routed"
                );
                Ok(Handled::Routed(destination))
            }
            Route::Courtesy => {
                let opted_out = contact.as_ref().is_some_and(Contact::is_opted_out);
                let replied = !opted_out && self.courtesy_reply(inbound).await?;
                self.routes.route(Destination::Unrouted, &routed).await?;
                tracing::info!(
                    message_type,
                    replied,
                    "message from a sender the directory does not know; kept unrouted"
                );
                Ok(Handled::Courtesy { replied })
            }
            Route::Unrouted(reason) => {
                self.routes.route(Destination::Unrouted, &routed).await?;
                tracing::warn!(message_type, reason, "message kept unrouted");
                Ok(Handled::Unrouted)
            }
        }
    }

    /// What the message answers: a button id we made, else the send behind `context.id`.
    async fn answers(
        &self,
        inbound: &Inbound<'_>,
        conversation: &Conversation,
    ) -> Result<(Option<SendKey>, Option<String>), RouteError> {
        if let Some(id) = routing::tapped_id(&inbound.message.content)
            && let Some(button) = ButtonId::decode(id)
        {
            let key = SendKey {
                flow: button.flow,
                subject: button.subject,
                version: button.version,
                recipient: inbound.user.clone(),
            };
            return Ok((Some(key), Some(id.to_owned())));
        }
        let replied_to = inbound
            .message
            .context
            .as_ref()
            .and_then(|c| c.id.as_deref());
        if let Some(id) = replied_to
            && let Some(sent) = self.sent.find(id).await?
        {
            let button = routing::tapped_id(&inbound.message.content).map(str::to_owned);
            return Ok((Some(sent.key), button));
        }
        // `status <campaign>` asks the campaign flow (flow 4) for the status per region.
        if let MessageContent::Text(text) = &inbound.message.content
            && let Some(campaign) = crate::domain::campaign::status_command(&text.body)
        {
            let key = SendKey {
                flow: MessageFlow::Campaign,
                subject: campaign,
                version: crate::domain::campaign::STATUS_COMMAND.to_owned(),
                recipient: inbound.user.clone(),
            };
            return Ok((Some(key), None));
        }
        // A flow waiting for the user's next text (a rejection reason) set the conversation's
        // state: that text answers the flow's question as a reply quoting it would. The
        // conversation is the one read for the duplicate check, moments ago, after the user's
        // previous item was handled (one FIFO group per user).
        if matches!(inbound.message.content, MessageContent::Text(_))
            && let Some(state) = conversation.state.as_deref()
            && let Some((flow, subject, version)) = awaited_answer(state)
        {
            let key = SendKey {
                flow,
                subject,
                version,
                recipient: inbound.user.clone(),
            };
            return Ok((Some(key), None));
        }
        Ok((None, None))
    }

    async fn opt_out(
        &self,
        inbound: &Inbound<'_>,
        conversation: &Conversation,
    ) -> Result<Handled, RouteError> {
        let change = self.directory.opt_out(&inbound.user, inbound.at_ms).await?;
        let confirm = match change {
            OptChange::Changed => true,
            // A redelivery of this same STOP after its confirmation failed to queue.
            OptChange::Unchanged => self
                .directory
                .get(&inbound.user)
                .await?
                .is_some_and(|c| c.opted_out_at_ms == Some(inbound.at_ms)),
        };
        self.open_window(inbound, conversation).await?;
        if confirm {
            let request = self.reply(
                inbound,
                MessageFlow::OptOut,
                inbound.user.as_str().to_owned(),
                inbound.at_ms.to_string(),
                &self.settings.opt_out_text,
            );
            self.outbound.enqueue(&[request]).await?;
        }
        tracing::info!(confirmed = confirm, "opt-out recorded");
        Ok(Handled::OptedOut { confirmed: confirm })
    }

    async fn opt_in(
        &self,
        inbound: &Inbound<'_>,
        conversation: &Conversation,
    ) -> Result<Handled, RouteError> {
        let change = self
            .directory
            .opt_in(&inbound.user, inbound.at_ms, OPT_IN_SOURCE)
            .await?;
        let confirm = match change {
            OptChange::Changed => true,
            OptChange::Unchanged => self.directory.get(&inbound.user).await?.is_some_and(|c| {
                !c.is_opted_out()
                    && c.opted_in
                        .as_ref()
                        .is_some_and(|o| o.at_ms == inbound.at_ms && o.source == OPT_IN_SOURCE)
            }),
        };
        self.open_window(inbound, conversation).await?;
        if confirm {
            let request = self.reply(
                inbound,
                MessageFlow::Conversation,
                inbound.user.as_str().to_owned(),
                format!("opt-in:{}", inbound.at_ms),
                &self.settings.opt_in_text,
            );
            self.outbound.enqueue(&[request]).await?;
        }
        tracing::info!(confirmed = confirm, "opt-in recorded");
        Ok(Handled::OptedIn { confirmed: confirm })
    }

    /// Takes the window's courtesy reply and queues it; `false` when this window already had one.
    async fn courtesy_reply(&self, inbound: &Inbound<'_>) -> Result<bool, RouteError> {
        let taken = self
            .conversations
            .take_courtesy_reply(
                &inbound.user,
                &inbound.number,
                inbound.at_ms,
                SERVICE_WINDOW_MS,
            )
            .await?;
        let reply = taken
            || self
                .conversations
                .get(&inbound.user, &inbound.number)
                .await?
                // A redelivery of the message that took it, whose reply failed to queue.
                .is_some_and(|c| c.courtesy_reply_at_ms == Some(inbound.at_ms));
        if reply {
            // The key names the window, not the message: messages of the same second, and
            // redeliveries, all ask for the same reply, which the sender sends once.
            let request = self.reply(
                inbound,
                MessageFlow::Conversation,
                format!("courtesy@{}", inbound.number.as_str()),
                inbound.at_ms.to_string(),
                &self.settings.courtesy_text,
            );
            self.outbound.enqueue(&[request]).await?;
        }
        Ok(reply)
    }

    /// A `system` message: the user's number (or user id) changed; their entry moves to the new key.
    async fn change_number(
        &self,
        inbound: &Inbound<'_>,
        system: &SystemEvent,
    ) -> Result<Handled, RouteError> {
        let changed_user_id = system
            .kind
            .as_deref()
            .is_some_and(|k| k.contains("user_id"));
        let new_id = if changed_user_id {
            system.user_id.as_deref()
        } else {
            system.wa_id.as_deref()
        };
        let Some(new_id) = new_id.filter(|id| !id.is_empty()) else {
            tracing::warn!(system_type = ?system.kind, "system message without the new id; nothing to move");
            return Ok(Handled::NumberChanged { moved: false });
        };
        let new_user = self.pseudonyms.pseudonym(new_id);
        if new_user == inbound.user {
            return Ok(Handled::NumberChanged { moved: false });
        }
        let Some(old) = self.directory.get(&inbound.user).await? else {
            tracing::info!(system_type = ?system.kind, new_user = %new_user, "number change of a user the directory does not hold");
            return Ok(Handled::NumberChanged { moved: false });
        };
        let new_address = WhatsAppAddress::from_wa_id(new_id).ok();
        let address = match (&old.address, changed_user_id) {
            // A phone number change: sends go to the new number.
            (Some(_), false) => new_address,
            // A user id change: a user-id address follows it, a phone address stays.
            (Some(a), true) if !a.expose().starts_with('+') => new_address,
            (kept, _) => kept.clone(),
        };
        let moved = Contact {
            pseudonym: new_user.clone(),
            address,
            ..old
        };
        self.directory.change_number(&inbound.user, &moved).await?;
        tracing::info!(new_user = %new_user, system_type = ?system.kind, "directory entry moved to the new number");
        Ok(Handled::NumberChanged { moved: true })
    }

    fn reply(
        &self,
        inbound: &Inbound<'_>,
        flow: MessageFlow,
        subject: String,
        version: String,
        body: &str,
    ) -> OutboundRequest {
        OutboundRequest {
            v: OUTBOUND_VERSION,
            key: SendKey {
                flow,
                subject,
                version,
                recipient: inbound.user.clone(),
            },
            to: inbound.address.clone(),
            // Replies go out on the number the user wrote to.
            from: SendFrom::Number(inbound.number.as_str().to_owned()),
            content: Some(Content::Text {
                body: body.to_owned(),
                preview_url: false,
            }),
            template: None,
            reply_to: None,
            actor: Some("system".into()),
            requested_at_ms: inbound.now_ms,
        }
    }
}

fn read_message(item: &InboundItem, now_ms: i64) -> Result<Inbound<'_>, RouteError> {
    let message: InboundMessage = serde_json::from_str(item.item.get())
        .map_err(|_| RouteError::Malformed("the message is not a JSON object"))?;
    if message.id.is_empty() {
        return Err(RouteError::Malformed("the message has no id"));
    }
    let user = item
        .user
        .clone()
        .ok_or(RouteError::Malformed("the message names no sender"))?;
    let number = item
        .phone_number_id
        .as_deref()
        .and_then(BusinessNumberId::parse)
        .ok_or(RouteError::Malformed(
            "the message names no business number",
        ))?;
    let address = message
        .from
        .as_deref()
        .or(message.from_user_id.as_deref())
        .and_then(|id| WhatsAppAddress::from_wa_id(id).ok())
        .ok_or(RouteError::Malformed(
            "the message has no sender address to reply to",
        ))?;
    let at_ms = message
        .timestamp
        .as_deref()
        .and_then(|t| t.parse::<i64>().ok())
        .map_or(item.received_at_ms, |seconds| seconds.saturating_mul(1000));
    Ok(Inbound {
        item,
        message,
        user,
        number,
        address,
        at_ms,
        now_ms,
    })
}

fn log_error(item: &InboundItem) -> Handled {
    match serde_json::from_str::<WebhookError>(item.item.get()) {
        Ok(error) => {
            tracing::warn!(
                code = error.code,
                title = error.title.as_deref().unwrap_or(""),
                number = item.phone_number_id.as_deref().unwrap_or(""),
                "Meta reported an error for the business number"
            );
            Handled::ErrorLogged {
                code: Some(error.code),
            }
        }
        Err(_) => {
            tracing::warn!(
                number = item.phone_number_id.as_deref().unwrap_or(""),
                "Meta reported an error item without a readable code"
            );
            Handled::ErrorLogged { code: None }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::domain::contact::Role;
    use crate::domain::outbound::SentMessageRef;
    use crate::ports::SEEN_ITEMS;
    use crate::secrets::Secret;
    use crate::testing::{
        InMemoryContactDirectory, InMemoryConversationStore, InMemoryInboundRoutes,
        InMemoryOutboundQueue, InMemorySentMessages,
    };
    use serde_json::value::RawValue;

    const INTERNAL: &str = "109876543210987";
    const UGC: &str = "109876543210988";
    const PHONE: &str = "447700900123";

    type TestRouter = InboundRouter<
        InMemoryContactDirectory,
        InMemoryConversationStore,
        InMemorySentMessages,
        InMemoryOutboundQueue,
        InMemoryInboundRoutes,
    >;

    fn router() -> TestRouter {
        let config = ConnectorConfig::parse(include_str!("../../../local/connector.yaml"))
            .expect("local/connector.yaml");
        InboundRouter {
            directory: InMemoryContactDirectory::default(),
            conversations: InMemoryConversationStore::default(),
            sent: InMemorySentMessages::default(),
            outbound: InMemoryOutboundQueue::default(),
            routes: InMemoryInboundRoutes::default(),
            pseudonyms: pseudonyms(),
            numbers: Numbers::from_config(&config),
            settings: RouterSettings::default(),
        }
    }

    fn pseudonyms() -> Pseudonymizer {
        Pseudonymizer::new(&Secret::new("k"))
    }

    fn user(phone: &str) -> UserPseudonym {
        pseudonyms().pseudonym(phone)
    }

    fn item(kind: InboundKind, key: &str, number: &str, raw: &str) -> InboundItem {
        InboundItem {
            v: ENVELOPE_VERSION,
            kind,
            key: key.to_owned(),
            user: Some(user(PHONE)),
            phone_number_id: Some(number.to_owned()),
            waba_id: Some("204060801234567".into()),
            received_at_ms: 1_764_000_000_500,
            item: RawValue::from_string(raw.to_owned()).expect("json"),
            contact: None,
        }
    }

    /// A message from [`PHONE`] with `content` (the fields after `type`), sent at `ts` seconds.
    fn message(id: &str, number: &str, ts: i64, content: &str) -> InboundItem {
        item(
            InboundKind::Message,
            id,
            number,
            &format!(r#"{{"from":"{PHONE}","id":"{id}","timestamp":"{ts}",{content}}}"#),
        )
    }

    fn text(id: &str, number: &str, ts: i64, body: &str) -> InboundItem {
        message(
            id,
            number,
            ts,
            &format!(
                r#""type":"text","text":{{"body":{}}}"#,
                serde_json::json!(body)
            ),
        )
    }

    async fn known(router: &TestRouter, roles: &[Role]) {
        let mut contact = Contact::new(user(PHONE));
        contact.address = Some(WhatsAppAddress::from_wa_id(PHONE).expect("phone"));
        contact.roles = roles.iter().copied().collect();
        router.directory.put(&contact).await.expect("put");
    }

    const NOW_MS: i64 = 1_764_000_001_000;

    async fn handle(router: &TestRouter, item: &InboundItem) -> Result<Handled, RouteError> {
        router.handle(item, NOW_MS).await
    }

    async fn conversation(router: &TestRouter, number: &str) -> Conversation {
        router
            .conversations
            .get(&user(PHONE), &BusinessNumberId::parse(number).expect("id"))
            .await
            .expect("get")
            .expect("conversation")
    }

    /// Handles `item` with its mark failing: a retryable error, as SQS's redelivery expects.
    async fn first_mark_fails(router: &TestRouter, item: &InboundItem) {
        router.conversations.fail_next_marks(1);
        let error = handle(router, item).await.expect_err("the mark fails");
        assert!(error.is_retryable(), "{error}");
    }

    /// Meta's `system` message: the user of [`PHONE`] changed to 447700900999.
    fn number_change() -> InboundItem {
        message(
            "wamid.Y1",
            INTERNAL,
            1_764_000_000,
            r#""type":"system","system":{"body":"User A changed from 447700900123 to 447700900999","wa_id":"447700900999","type":"user_changed_number"}"#,
        )
    }

    fn outbound_flows(router: &TestRouter) -> Vec<(MessageFlow, String)> {
        router
            .outbound
            .events()
            .into_iter()
            .map(|r| (r.key.flow, r.key.version))
            .collect()
    }

    #[tokio::test]
    async fn stop_with_punctuation_is_recorded_and_confirmed_once() {
        let router = router();
        let first = text("wamid.S1", INTERNAL, 1_764_000_000, "Stop.");
        assert_eq!(
            handle(&router, &first).await.expect("stop"),
            Handled::OptedOut { confirmed: true }
        );
        let contact = router.directory.get(&user(PHONE)).await.expect("get");
        assert_eq!(
            contact.and_then(|c| c.opted_out_at_ms),
            Some(1_764_000_000_000)
        );
        let second = text("wamid.S2", INTERNAL, 1_764_000_050, " stop! ");
        assert_eq!(
            handle(&router, &second).await.expect("stop again"),
            Handled::OptedOut { confirmed: false }
        );
        let requests = router.outbound.events();
        assert_eq!(requests.len(), 1, "{requests:?}");
        assert_eq!(requests[0].key.flow, MessageFlow::OptOut);
        assert_eq!(requests[0].key.subject, user(PHONE).as_str());
        assert_eq!(requests[0].key.version, "1764000000000");
        assert_eq!(requests[0].from, SendFrom::Number(INTERNAL.into()));
        // Opt-out comes before routing: nothing reached a flow queue.
        assert!(router.routes.events().is_empty());
    }

    #[tokio::test]
    async fn start_opts_back_in_and_is_confirmed_once() {
        let router = router();
        let start_first = text("wamid.G0", INTERNAL, 1_764_000_000, "START");
        assert_eq!(
            handle(&router, &start_first).await.expect("start"),
            Handled::OptedIn { confirmed: false },
            "not opted out: nothing to confirm"
        );
        handle(&router, &text("wamid.S1", INTERNAL, 1_764_000_010, "ARRÊT"))
            .await
            .expect("stop");
        assert_eq!(
            handle(
                &router,
                &text("wamid.G1", INTERNAL, 1_764_000_020, "Start!")
            )
            .await
            .expect("start"),
            Handled::OptedIn { confirmed: true }
        );
        let contact = router
            .directory
            .get(&user(PHONE))
            .await
            .expect("get")
            .expect("entry");
        assert!(!contact.is_opted_out());
        assert_eq!(
            contact.opted_in.map(|o| (o.at_ms, o.source)),
            Some((1_764_000_020_000, OPT_IN_SOURCE.to_owned()))
        );
        assert_eq!(
            outbound_flows(&router),
            [
                (MessageFlow::OptOut, "1764000010000".to_owned()),
                (MessageFlow::Conversation, "opt-in:1764000020000".to_owned())
            ]
        );
    }

    #[tokio::test]
    async fn a_stop_whose_confirmation_failed_to_queue_is_confirmed_on_redelivery() {
        let router = router();
        let stop = text("wamid.S1", INTERNAL, 1_764_000_000, "STOPP");
        router.outbound.fail_next(1);
        let err = handle(&router, &stop).await.expect_err("outbound down");
        assert!(err.is_retryable());
        assert!(
            router
                .directory
                .get(&user(PHONE))
                .await
                .expect("get")
                .is_some_and(|c| c.is_opted_out()),
            "the opt-out was recorded before the confirmation"
        );
        assert_eq!(
            handle(&router, &stop).await.expect("redelivery"),
            Handled::OptedOut { confirmed: true }
        );
        assert_eq!(
            handle(&router, &stop).await.expect("third"),
            Handled::Duplicate
        );
        assert_eq!(router.outbound.events().len(), 1);
    }

    #[tokio::test]
    async fn the_same_item_twice_has_one_effect() {
        let router = router();
        let hello = text("wamid.H1", INTERNAL, 1_764_000_000, "hello?");
        assert_eq!(
            handle(&router, &hello).await.expect("first"),
            Handled::Courtesy { replied: true }
        );
        assert_eq!(
            handle(&router, &hello).await.expect("again"),
            Handled::Duplicate
        );
        assert_eq!(router.outbound.events().len(), 1);
        assert_eq!(router.routes.keys_on(Destination::Unrouted), ["wamid.H1"]);
    }

    #[tokio::test]
    async fn two_messages_in_the_same_second_from_an_unknown_sender_ask_for_one_courtesy_reply() {
        let router = router();
        for id in ["wamid.S1", "wamid.S2"] {
            handle(&router, &text(id, INTERNAL, 1_764_000_000, "hi?"))
                .await
                .expect("handled");
        }
        let keys: std::collections::BTreeSet<_> = router
            .outbound
            .events()
            .into_iter()
            .map(|r| r.key.encode())
            .collect();
        assert_eq!(keys.len(), 1, "one send key, so the sender sends one reply");
    }

    #[tokio::test]
    async fn the_courtesy_reply_goes_out_once_per_window_and_never_answers_itself() {
        let router = router();
        handle(
            &router,
            &text("wamid.H1", INTERNAL, 1_764_000_000, "hello?"),
        )
        .await
        .expect("first");
        // Another bot answering our courtesy reply, an hour later: no second reply.
        assert_eq!(
            handle(
                &router,
                &text(
                    "wamid.H2",
                    INTERNAL,
                    1_764_003_600,
                    "Thank you for your message"
                )
            )
            .await
            .expect("second"),
            Handled::Courtesy { replied: false }
        );
        // The next day's first message gets one again.
        assert_eq!(
            handle(
                &router,
                &text("wamid.H3", INTERNAL, 1_764_090_000, "hello again")
            )
            .await
            .expect("next day"),
            Handled::Courtesy { replied: true }
        );
        assert_eq!(router.outbound.events().len(), 2);
        assert_eq!(
            router.routes.keys_on(Destination::Unrouted),
            ["wamid.H1", "wamid.H2", "wamid.H3"],
            "every message is kept"
        );
    }

    #[tokio::test]
    async fn an_opted_out_unknown_sender_gets_no_courtesy_reply() {
        let router = router();
        handle(&router, &text("wamid.S1", INTERNAL, 1_764_000_000, "stop"))
            .await
            .expect("stop");
        assert_eq!(
            handle(&router, &text("wamid.H1", INTERNAL, 1_764_000_100, "hi"))
                .await
                .expect("hi"),
            Handled::Courtesy { replied: false }
        );
        assert_eq!(
            router.outbound.events().len(),
            1,
            "the opt-out confirmation only"
        );
    }

    #[tokio::test]
    async fn the_last_inbound_time_only_moves_forward() {
        let router = router();
        known(&router, &[Role::Approver]).await;
        for (id, ts) in [("wamid.A", 1_764_000_500), ("wamid.B", 1_764_000_100)] {
            handle(&router, &text(id, INTERNAL, ts, "ok"))
                .await
                .expect("message");
        }
        let conversation = conversation(&router, INTERNAL).await;
        assert_eq!(conversation.last_inbound_at_ms, Some(1_764_000_500_000));
        assert!(
            conversation.seen.contains("wamid.A") && conversation.seen.contains("wamid.B"),
            "the late one was handled and marked too"
        );
        assert_eq!(
            handle(&router, &text("wamid.B", INTERNAL, 1_764_000_100, "ok"))
                .await
                .expect("again"),
            Handled::Duplicate
        );
    }

    #[tokio::test]
    async fn a_message_whose_mark_failed_is_routed_once_and_marked_on_redelivery() {
        let router = router();
        known(&router, &[Role::Rep]).await;
        let request = text("wamid.Q1", INTERNAL, 1_764_000_000, "share the pier photo");
        first_mark_fails(&router, &request).await;
        assert_eq!(
            handle(&router, &request).await.expect("redelivery"),
            Handled::Routed(Destination::Sharing),
            "handled again: it was not marked"
        );
        assert_eq!(
            handle(&router, &request).await.expect("third"),
            Handled::Duplicate
        );
        // Both sends carried the item key as FIFO deduplication id: one routed message (the
        // fake keeps one per key, as SQS does for 5 minutes).
        assert_eq!(router.routes.keys_on(Destination::Sharing), ["wamid.Q1"]);
        assert_eq!(router.routes.events().len(), 1);
    }

    #[tokio::test]
    async fn a_route_that_failed_is_routed_once_on_redelivery() {
        let router = router();
        known(&router, &[Role::Rep]).await;
        let request = text("wamid.Q1", INTERNAL, 1_764_000_000, "share the pier photo");
        router.routes.fail_next(1);
        assert!(
            handle(&router, &request)
                .await
                .expect_err("queue down")
                .is_retryable()
        );
        assert!(
            !conversation(&router, INTERNAL)
                .await
                .seen
                .contains("wamid.Q1"),
            "not marked: the redelivery is not a duplicate"
        );
        assert_eq!(
            handle(&router, &request).await.expect("redelivery"),
            Handled::Routed(Destination::Sharing)
        );
        assert_eq!(router.routes.keys_on(Destination::Sharing), ["wamid.Q1"]);
    }

    #[tokio::test]
    async fn a_stop_whose_mark_failed_is_confirmed_once() {
        let router = router();
        let stop = text("wamid.S1", INTERNAL, 1_764_000_000, "STOP");
        first_mark_fails(&router, &stop).await;
        assert_eq!(
            handle(&router, &stop).await.expect("redelivery"),
            Handled::OptedOut { confirmed: true },
            "the redelivery recognises its own opt-out"
        );
        assert_eq!(
            handle(&router, &stop).await.expect("third"),
            Handled::Duplicate
        );
        assert_eq!(
            outbound_flows(&router),
            [(MessageFlow::OptOut, "1764000000000".to_owned())],
            "one confirmation: the redelivery asked for the same send"
        );
        let contact = router.directory.get(&user(PHONE)).await.expect("get");
        assert_eq!(
            contact.and_then(|c| c.opted_out_at_ms),
            Some(1_764_000_000_000)
        );
    }

    #[tokio::test]
    async fn an_unknown_senders_message_whose_mark_failed_gets_one_courtesy_reply() {
        let router = router();
        let hello = text("wamid.H1", INTERNAL, 1_764_000_000, "hello?");
        first_mark_fails(&router, &hello).await;
        assert_eq!(
            handle(&router, &hello).await.expect("redelivery"),
            Handled::Courtesy { replied: true }
        );
        assert_eq!(router.outbound.events().len(), 1, "one courtesy reply");
        assert_eq!(router.routes.keys_on(Destination::Unrouted), ["wamid.H1"]);
    }

    #[tokio::test]
    async fn the_window_a_message_opens_is_recorded_before_its_reply_is_queued() {
        let router = router();
        let hello = text("wamid.H1", INTERNAL, 1_764_000_000, "hello?");
        first_mark_fails(&router, &hello).await;
        // The courtesy reply is on outbound.fifo; the sender, reading the conversation now,
        // finds the window this message opened, though the item is not marked yet.
        assert_eq!(router.outbound.events().len(), 1);
        let conversation = conversation(&router, INTERNAL).await;
        assert!(conversation.window_open(NOW_MS));
        assert!(conversation.seen.is_empty());
    }

    #[tokio::test]
    async fn the_seen_list_keeps_the_last_items_and_an_older_redelivery_is_handled_again() {
        let router = router();
        known(&router, &[Role::Rep]).await;
        let request = |i: i64| {
            text(
                &format!("wamid.Q{i}"),
                INTERNAL,
                1_764_000_000 + i,
                "share the pier photo",
            )
        };
        let last = i64::try_from(SEEN_ITEMS).expect("small");
        for i in 0..=last {
            handle(&router, &request(i)).await.expect("routed");
        }
        let seen = conversation(&router, INTERNAL).await.seen;
        assert_eq!(seen.len(), SEEN_ITEMS, "bounded");
        assert!(seen.encode().len() < 200, "{} bytes", seen.encode().len());
        assert_eq!(
            handle(&router, &request(last)).await.expect("recent"),
            Handled::Duplicate
        );
        assert_eq!(
            handle(&router, &request(1)).await.expect("still held"),
            Handled::Duplicate
        );
        // The residual risk (module doc): the first item is no longer held, so its redelivery is
        // handled again; SQS drops the route only within 5 minutes of the first one.
        assert_eq!(
            handle(&router, &request(0)).await.expect("too old"),
            Handled::Routed(Destination::Sharing)
        );
    }

    #[tokio::test]
    async fn a_redelivered_number_change_is_a_duplicate_and_opens_no_window() {
        let router = router();
        known(&router, &[Role::Field]).await;
        let change = number_change();
        assert_eq!(
            handle(&router, &change).await.expect("change"),
            Handled::NumberChanged { moved: true }
        );
        // Someone is added under the old number afterwards; the redelivery must not move them.
        known(&router, &[Role::Rep]).await;
        assert_eq!(
            handle(&router, &change).await.expect("again"),
            Handled::Duplicate
        );
        assert!(
            router
                .directory
                .get(&user(PHONE))
                .await
                .expect("get")
                .is_some_and(|c| c.has_role(Role::Rep))
        );
        assert_eq!(
            conversation(&router, INTERNAL).await.last_inbound_at_ms,
            None
        );
    }

    #[tokio::test]
    async fn a_redelivered_error_item_is_only_logged_again() {
        let router = router();
        let error = item(
            InboundKind::Error,
            "Error:abc",
            INTERNAL,
            r#"{"code":131042,"title":"Business eligibility payment issue"}"#,
        );
        for _ in 0..2 {
            assert_eq!(
                handle(&router, &error).await.expect("error"),
                Handled::ErrorLogged { code: Some(131042) }
            );
        }
        assert!(router.routes.events().is_empty());
        assert!(router.outbound.events().is_empty());
    }

    #[tokio::test]
    async fn a_tap_on_one_of_our_buttons_goes_to_replies_with_the_key_it_answers() {
        let router = router();
        known(&router, &[Role::Approver]).await;
        let tap = message(
            "wamid.T1",
            INTERNAL,
            1_764_000_000,
            r#""type":"interactive","context":{"from":"15551230000","id":"wamid.OUT1"},"interactive":{"type":"button_reply","button_reply":{"id":"rv|approve|A-1|3","title":"Approve"}}"#,
        );
        assert_eq!(
            handle(&router, &tap).await.expect("tap"),
            Handled::Routed(Destination::Replies)
        );
        let routed = router.routes.events();
        let answers = routed[0].answers.clone().expect("answers");
        assert_eq!(
            (
                answers.flow,
                answers.subject.as_str(),
                answers.version.as_str()
            ),
            (MessageFlow::Review, "A-1", "3")
        );
    }

    #[tokio::test]
    async fn a_quote_reply_to_one_of_our_messages_goes_to_replies_by_its_context_id() {
        let router = router();
        known(&router, &[Role::Regional]).await;
        let key = SendKey {
            flow: MessageFlow::Campaign,
            subject: "SUMMER26".into(),
            version: "1".into(),
            recipient: user(PHONE),
        };
        router.sent.remember(SentMessageRef {
            message_id: "wamid.OUT9".into(),
            key: key.clone(),
        });
        let reply = message(
            "wamid.R1",
            INTERNAL,
            1_764_000_000,
            r#""type":"text","context":{"from":"15551230000","id":"wamid.OUT9"},"text":{"body":"Need the square format"}"#,
        );
        assert_eq!(
            handle(&router, &reply).await.expect("reply"),
            Handled::Routed(Destination::Replies)
        );
        assert_eq!(router.routes.events()[0].answers, Some(key));
        // A quote reply to a message that is not ours is not an answer.
        let foreign = message(
            "wamid.R2",
            INTERNAL,
            1_764_000_001,
            r#""type":"text","context":{"from":"15551230000","id":"wamid.OTHER"},"text":{"body":"?"}"#,
        );
        assert_eq!(
            handle(&router, &foreign).await.expect("foreign"),
            Handled::Unrouted
        );
    }

    #[tokio::test]
    async fn each_kind_of_message_reaches_its_queue() {
        let router = router();
        known(&router, &[Role::Field, Role::Rep]).await;
        let image = message(
            "wamid.I1",
            INTERNAL,
            1_764_000_000,
            r#""type":"image","image":{"id":"7001","mime_type":"image/jpeg","caption":"Bridge"}"#,
        );
        let request = text("wamid.Q1", INTERNAL, 1_764_000_001, "share the pier photo");
        let ugc = text("wamid.U1", UGC, 1_764_000_002, "my entry!");
        let odd = message(
            "wamid.X1",
            INTERNAL,
            1_764_000_003,
            r#""type":"hologram","hologram":{"x":1}"#,
        );
        let status = item(
            InboundKind::Status,
            "wamid.OUT1:delivered",
            INTERNAL,
            r#"{"id":"wamid.OUT1","status":"delivered","timestamp":"1764000004","recipient_id":"447700900123"}"#,
        );
        for (item, expected) in [
            (&image, Handled::Routed(Destination::FieldIngest)),
            (&request, Handled::Routed(Destination::Sharing)),
            (&ugc, Handled::Routed(Destination::UgcIntake)),
            (&odd, Handled::Unrouted),
            (&status, Handled::Status),
        ] {
            assert_eq!(handle(&router, item).await.expect("routed"), expected);
        }
        let on = |d| router.routes.keys_on(d);
        assert_eq!(on(Destination::FieldIngest), ["wamid.I1"]);
        assert_eq!(on(Destination::Sharing), ["wamid.Q1"]);
        assert_eq!(on(Destination::UgcIntake), ["wamid.U1"]);
        assert_eq!(on(Destination::Unrouted), ["wamid.X1"]);
        assert_eq!(on(Destination::DeliveryStatus), ["wamid.OUT1:delivered"]);
        assert!(
            router.outbound.events().is_empty(),
            "known senders get no courtesy reply"
        );
    }

    #[tokio::test]
    async fn a_number_change_moves_the_directory_entry() {
        let router = router();
        known(&router, &[Role::Field]).await;
        let change = number_change();
        assert_eq!(
            handle(&router, &change).await.expect("change"),
            Handled::NumberChanged { moved: true }
        );
        assert!(
            router
                .directory
                .get(&user(PHONE))
                .await
                .expect("get")
                .is_none()
        );
        let moved = router
            .directory
            .get(&user("447700900999"))
            .await
            .expect("get")
            .expect("moved");
        assert!(moved.has_role(Role::Field));
        assert_eq!(
            moved.address.map(|a| a.expose().to_owned()),
            Some("+447700900999".to_owned())
        );
    }

    #[tokio::test]
    async fn an_error_item_is_logged_and_acknowledged() {
        let router = router();
        let error = item(
            InboundKind::Error,
            "Error:abc",
            INTERNAL,
            r#"{"code":131042,"title":"Business eligibility payment issue"}"#,
        );
        assert_eq!(
            handle(&router, &error).await.expect("error"),
            Handled::ErrorLogged { code: Some(131042) }
        );
        assert!(router.routes.events().is_empty());
    }

    #[tokio::test]
    async fn a_malformed_item_is_a_permanent_failure() {
        let router = router();
        let mut nobody = text("wamid.M1", INTERNAL, 1_764_000_000, "hi");
        nobody.user = None;
        let err = handle(&router, &nobody).await.expect_err("no sender");
        assert!(!err.is_retryable(), "{err}");
        let mut future = text("wamid.M2", INTERNAL, 1_764_000_000, "hi");
        future.v = 9;
        assert!(
            !handle(&router, &future)
                .await
                .expect_err("v9")
                .is_retryable()
        );
        let not_an_object = item(InboundKind::Message, "Message:x", INTERNAL, "[1,2]");
        assert!(
            !handle(&router, &not_an_object)
                .await
                .expect_err("array")
                .is_retryable()
        );
    }

    #[tokio::test]
    async fn a_status_is_forwarded_without_a_claim_each_time_it_comes() {
        let router = router();
        let status = item(
            InboundKind::Status,
            "wamid.OUT9:read",
            INTERNAL,
            r#"{"id":"wamid.OUT9","status":"read","timestamp":"1764000004","recipient_id":"447700900123"}"#,
        );
        for _ in 0..2 {
            assert_eq!(
                handle(&router, &status).await.expect("status"),
                Handled::Status
            );
        }
        // Both were forwarded under the status's key (the queue, like SQS's FIFO deduplication,
        // keeps one; track-delivery absorbs a later one), and no conversation was written.
        assert_eq!(
            router.routes.keys_on(Destination::DeliveryStatus),
            ["wamid.OUT9:read"]
        );
        assert!(
            router
                .conversations
                .get(
                    &user(PHONE),
                    &BusinessNumberId::parse(INTERNAL).expect("id")
                )
                .await
                .expect("get")
                .is_none()
        );
    }
}

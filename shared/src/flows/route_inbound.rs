//! route-inbound: each item of `inbound.fifo` is claimed once, opt-out and opt-in commands are
//! honoured before anything else, the conversation's last inbound time is recorded, and the item
//! is handed to the queue of the flow it belongs to.
//!
//! Every side effect is safe to repeat: when a step fails after an earlier one took effect (the
//! opt-out recorded, its confirmation not yet queued), the claim is released and the redelivery
//! finds the earlier step done *by this same message* (the stored time is this message's time) and
//! finishes the job; the send key makes the confirmation the same request, which the outbound queue
//! and the sender deduplicate.

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
    BusinessNumberId, Claim, ContactDirectory, ConversationStore, IdempotencyStore, InboundRoutes,
    OutboundQueue, OwnerToken, QueueError, SERVICE_WINDOW_MS, SentMessageLookup, StoreError,
};
use crate::pseudonym::{Pseudonymizer, UserPseudonym};
use crate::whatsapp::messages::Content;
use crate::whatsapp::webhook_types::{InboundMessage, MessageContent, SystemEvent, WebhookError};
use std::collections::{BTreeMap, BTreeSet};

/// The source recorded with an opt-in sent over WhatsApp.
pub const OPT_IN_SOURCE: &str = "whatsapp:START";

/// Tunables and the router's own words.
#[derive(Debug, Clone)]
pub struct RouterSettings {
    /// How long a completed claim is kept (Meta redelivers a webhook for up to 7 days).
    pub completed_ttl_seconds: i64,
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
            completed_ttl_seconds: 8 * 24 * 3600,
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
pub struct InboundRouter<I, D, C, S, O, R> {
    /// Claims on inbound item keys.
    pub claims: I,
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
    /// Its key was already handled.
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
    /// Another worker holds this item's claim.
    #[error("another worker is handling this item")]
    HeldElsewhere,
}

impl Retryable for RouteError {
    fn is_retryable(&self) -> bool {
        match self {
            Self::Malformed(_) => false,
            Self::Store(e) => e.is_retryable(),
            Self::Queue(e) => e.is_retryable(),
            Self::HeldElsewhere => true,
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

impl<I, D, C, S, O, R> InboundRouter<I, D, C, S, O, R>
where
    I: IdempotencyStore,
    D: ContactDirectory,
    C: ConversationStore,
    S: SentMessageLookup,
    O: OutboundQueue,
    R: InboundRoutes,
{
    /// Handles one item once: claims its key until `deadline` (Unix seconds, the invocation's
    /// deadline), handles it, completes the claim; releases it on failure.
    #[tracing::instrument(name = "route_inbound", skip_all, fields(kind = ?item.kind, user = ?item.user))]
    pub async fn handle(
        &self,
        item: &InboundItem,
        now_ms: i64,
        deadline: i64,
    ) -> Result<Handled, RouteError> {
        if item.v != ENVELOPE_VERSION {
            return Err(RouteError::Malformed("unknown envelope version"));
        }
        if item.kind == InboundKind::Status {
            // No claim for a status: forwarding it is a queue send deduplicated by its key,
            // and track-delivery applies statuses monotonically, settles a send once and
            // queues a late 131047's template once, so a redelivered status changes nothing.
            // That saves the claim's two writes on every status (docs/cost.md).
            let handled = self.forward_status(item).await?;
            crate::metrics::count_in("delivery-status", crate::metrics::Outcome::Routed, 1);
            return Ok(handled);
        }
        let now = now_ms.div_euclid(1000);
        let key = format!("inbound#{}", item.key);
        let owner = OwnerToken(crate::crypto::random_hex(16));
        match self.claims.claim(&key, &owner, now, deadline).await? {
            Claim::AlreadyDone => {
                tracing::info!("duplicate inbound item skipped");
                return Ok(Handled::Duplicate);
            }
            Claim::HeldElsewhere => return Err(RouteError::HeldElsewhere),
            Claim::Acquired => {}
        }
        let result = self.handle_claimed(item, now_ms).await;
        match &result {
            Ok(handled) => {
                tracing::info!(outcome = ?handled, "inbound item handled");
                if let Some(to) = routed_to(handled) {
                    crate::metrics::count_in(to, crate::metrics::Outcome::Routed, 1);
                }
                match self
                    .claims
                    .complete(&key, &owner, now + self.settings.completed_ttl_seconds)
                    .await
                {
                    Ok(()) => {}
                    // Our deadline passed and another worker took over; the work is done either way.
                    Err(StoreError::NotOwner) => {
                        tracing::warn!("claim taken over before completion");
                    }
                    Err(error) => return Err(error.into()),
                }
            }
            Err(_) => {
                if let Err(error) = self.claims.release(&key, &owner).await {
                    tracing::warn!(error = %crate::error::chain(&error), "could not release the claim; it expires at its deadline");
                }
            }
        }
        result
    }

    async fn forward_status(&self, item: &InboundItem) -> Result<Handled, RouteError> {
        self.routes.status(item).await?;
        Ok(Handled::Status)
    }

    async fn handle_claimed(&self, item: &InboundItem, now_ms: i64) -> Result<Handled, RouteError> {
        match item.kind {
            InboundKind::Status => self.forward_status(item).await,
            InboundKind::Error => Ok(log_error(item)),
            InboundKind::Message => {
                let inbound = read_message(item, now_ms)?;
                self.handle_message(&inbound).await
            }
        }
    }

    async fn handle_message(&self, inbound: &Inbound<'_>) -> Result<Handled, RouteError> {
        let content = &inbound.message.content;
        // Opt-out first: recorded before the conversation, the routing or any reply.
        match routing::command_text(content).and_then(parse_command) {
            Some(OptCommand::Stop) => return self.opt_out(inbound).await,
            Some(OptCommand::Start) => return self.opt_in(inbound).await,
            None => {}
        }
        if let MessageContent::System(system) = content {
            return self.change_number(inbound, system).await;
        }
        self.conversations
            .record_inbound(&inbound.user, &inbound.number, inbound.at_ms)
            .await?;

        let contact = self.directory.get(&inbound.user).await?;
        let no_roles = BTreeSet::new();
        let roles = contact.as_ref().map_or(&no_roles, |c| &c.roles);
        let (answers, button) = self.answers(inbound).await?;
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
        // state: that text answers the flow's question as a reply quoting it would.
        if matches!(inbound.message.content, MessageContent::Text(_))
            && let Some(state) = self
                .conversations
                .get(&inbound.user, &inbound.number)
                .await?
                .and_then(|c| c.state)
            && let Some((flow, subject, version)) = awaited_answer(&state)
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

    async fn opt_out(&self, inbound: &Inbound<'_>) -> Result<Handled, RouteError> {
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
        self.conversations
            .record_inbound(&inbound.user, &inbound.number, inbound.at_ms)
            .await?;
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

    async fn opt_in(&self, inbound: &Inbound<'_>) -> Result<Handled, RouteError> {
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
        self.conversations
            .record_inbound(&inbound.user, &inbound.number, inbound.at_ms)
            .await?;
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
    use crate::secrets::Secret;
    use crate::testing::{
        InMemoryContactDirectory, InMemoryConversationStore, InMemoryIdempotencyStore,
        InMemoryInboundRoutes, InMemoryOutboundQueue, InMemorySentMessages,
    };
    use serde_json::value::RawValue;

    const INTERNAL: &str = "109876543210987";
    const UGC: &str = "109876543210988";
    const PHONE: &str = "447700900123";

    type TestRouter = InboundRouter<
        InMemoryIdempotencyStore,
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
            claims: InMemoryIdempotencyStore::default(),
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
    const DEADLINE: i64 = 1_764_000_100;

    async fn handle(router: &TestRouter, item: &InboundItem) -> Result<Handled, RouteError> {
        router.handle(item, NOW_MS, DEADLINE).await
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
        let conversation = router
            .conversations
            .get(
                &user(PHONE),
                &BusinessNumberId::parse(INTERNAL).expect("id"),
            )
            .await
            .expect("get")
            .expect("conversation");
        assert_eq!(conversation.last_inbound_at_ms, Some(1_764_000_500_000));
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
        let change = message(
            "wamid.Y1",
            INTERNAL,
            1_764_000_000,
            r#""type":"system","system":{"body":"User A changed from 447700900123 to 447700900999","wa_id":"447700900999","type":"user_changed_number"}"#,
        );
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
    async fn a_malformed_item_is_a_permanent_failure_and_releases_its_claim() {
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
    async fn an_item_held_by_another_worker_is_retried_later() {
        let router = router();
        let hello = text("wamid.H1", INTERNAL, 1_764_000_000, "hello?");
        router
            .claims
            .claim(
                "inbound#wamid.H1",
                &OwnerToken("other".into()),
                NOW_MS / 1000,
                DEADLINE,
            )
            .await
            .expect("claim");
        let err = handle(&router, &hello).await.expect_err("held");
        assert!(matches!(err, RouteError::HeldElsewhere));
        assert!(err.is_retryable());
        assert!(router.outbound.events().is_empty());
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
        // keeps one; track-delivery absorbs a later one), and nothing was written to claim them.
        assert_eq!(
            router.routes.keys_on(Destination::DeliveryStatus),
            ["wamid.OUT9:read"]
        );
        let free = router
            .claims
            .claim(
                "inbound#wamid.OUT9:read",
                &OwnerToken("probe".into()),
                NOW_MS / 1000,
                DEADLINE,
            )
            .await
            .expect("claim");
        assert!(matches!(free, Claim::Acquired), "no claim was written");
    }
}

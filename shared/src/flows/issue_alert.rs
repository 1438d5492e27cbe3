//! Flow 7, issue alerts: a rejected asset, one missing required metadata or one blocked by policy
//! → its owner gets one message at once with the reason and a fresh link to fix it, and a note of
//! the alert is added to the asset. One alert per asset, reason and version: the send key is
//! `asset`, `version:reason` (the sender sends a key once) and the note is a fixed line (an
//! append finds it already there). An owner the directory does not know → the configured
//! fallback team contact, and the gap is logged.

use crate::adapters::orange_logic::{OrangeLogicClient, OrangeLogicError, Record, field_text};
use crate::connector_config::{ConnectorConfig, DamConcept, Purpose, TemplateUse};
use crate::domain::contact::{Role, WhatsAppAddress};
use crate::domain::dam::DomainEvent;
use crate::domain::outbound::{
    FlowQueueMessage, MessageFlow, OUTBOUND_VERSION, OutboundRequest, SendFrom, SendKey,
    TemplateMessage,
};
use crate::domain::review::{self, IssueReason, Verdict};
use crate::error::Retryable;
use crate::flows::dam_log::{self, LogError};
use crate::flows::review_request::{TITLE_FIELD, review_version};
use crate::ports::{
    ContactDirectory, IdempotencyStore, OutboundQueue, QueueError, ReviewStore, StoreError,
};
use crate::pseudonym::{Pseudonymizer, UserPseudonym};
use crate::whatsapp::messages::TemplateParam;
use std::sync::Arc;

/// Field names and tunables.
#[derive(Debug, Clone)]
pub struct IssueSettings {
    /// Owner field.
    pub owner_field: String,
    /// Comment log field.
    pub comments_field: String,
    /// Share-link format.
    pub link_format: String,
    /// Links stay valid this long, seconds.
    pub link_seconds: i64,
    /// The team contact alerted when the owner is not in the directory.
    pub fallback: Option<WhatsAppAddress>,
}

impl IssueSettings {
    /// From the validated configuration.
    pub fn from_config(config: &ConnectorConfig) -> Self {
        let field = |concept| {
            config
                .dam
                .field_map
                .get(&concept)
                .cloned()
                .unwrap_or_default()
        };
        Self {
            owner_field: field(DamConcept::Owner),
            comments_field: field(DamConcept::Comments),
            link_format: config.review.link_format.clone(),
            link_seconds: i64::from(config.review.link_hours.max(1)) * 3600,
            fallback: config
                .issue_alerts
                .fallback_contact
                .as_deref()
                .and_then(|c| WhatsAppAddress::parse(c).ok()),
        }
    }
}

/// What the flow needs.
#[derive(Debug)]
pub struct IssueAlertFlow<R, D, O, L> {
    /// Review decisions (a WhatsApp rejection's reviewer and reason).
    pub reviews: R,
    /// The contact directory.
    pub directory: D,
    /// `outbound.fifo`.
    pub outbound: O,
    /// Per-asset comment leases.
    pub leases: L,
    /// The DAM.
    pub dam: Arc<OrangeLogicClient>,
    /// Numbers in the owner field → directory keys.
    pub pseudonyms: Pseudonymizer,
    /// Fields and tunables.
    pub settings: IssueSettings,
}

/// What handling one message did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Handled {
    /// The owner was alerted.
    AlertedOwner,
    /// The owner is not in the directory: the fallback contact was alerted.
    AlertedFallback,
    /// Nobody could be alerted (no owner in the directory, no fallback): noted on the asset only.
    NoRecipient,
    /// Nothing to do, and why.
    Ignored(&'static str),
}

/// A message that could not be handled.
#[derive(Debug, thiserror::Error)]
pub enum AlertError {
    /// The DAM failed.
    #[error("the DAM call failed")]
    Dam(#[from] OrangeLogicError),
    /// A table failed.
    #[error("a store failed")]
    Store(#[from] StoreError),
    /// `outbound.fifo` failed.
    #[error("the outbound queue failed")]
    Queue(#[from] QueueError),
    /// The note could not be added.
    #[error(transparent)]
    Log(#[from] LogError),
}

impl Retryable for AlertError {
    fn is_retryable(&self) -> bool {
        match self {
            Self::Dam(e) => e.is_retryable(),
            Self::Store(e) => e.is_retryable(),
            Self::Queue(e) => e.is_retryable(),
            Self::Log(e) => e.is_retryable(),
        }
    }
}

struct Recipient {
    who: UserPseudonym,
    to: WhatsAppAddress,
    name: String,
    owner: bool,
}

impl<R, D, O, L> IssueAlertFlow<R, D, O, L>
where
    R: ReviewStore,
    D: ContactDirectory,
    O: OutboundQueue,
    L: IdempotencyStore,
{
    /// Handles one message of the issue-alert queue at `now_ms`.
    pub async fn handle(
        &self,
        message: &FlowQueueMessage,
        now_ms: i64,
    ) -> Result<Handled, AlertError> {
        match message {
            FlowQueueMessage::Event(event) => self.alert(event, now_ms).await,
            // Owners answer alerts in the DAM; a WhatsApp reply is kept in the router's log only.
            FlowQueueMessage::Answer(_) => Ok(Handled::Ignored("a reply to an issue alert")),
        }
    }

    async fn alert(&self, event: &DomainEvent, now_ms: i64) -> Result<Handled, AlertError> {
        let Some(mut reason) = IssueReason::of(&event.kind, review::label_of) else {
            return Ok(Handled::Ignored("not an issue event"));
        };
        let asset = event.asset.as_str();
        let Some(record) = self.dam.read_asset(asset).await? else {
            return Ok(Handled::Ignored("the asset no longer exists"));
        };
        let version = review_version(event);
        if let IssueReason::Rejected { detail } = &mut reason
            && let Some(request) = self.reviews.get(asset).await?
            && let Some(decision) = request.decision
            && let Verdict::Rejected { reason } = decision.verdict
        {
            *detail = Some(format!("{}: {reason}", decision.by_name));
        }
        let recipient = self.recipient(&record).await?;
        let outcome = match &recipient {
            None => {
                tracing::warn!(
                    asset,
                    reason = reason.tag(),
                    "an issue alert has no recipient: the owner is not in the directory and no issue_alerts.fallback_contact is configured"
                );
                Handled::NoRecipient
            }
            Some(recipient) => {
                let send = self
                    .message(&record, asset, &version, &reason, recipient, now_ms)
                    .await?;
                self.outbound.enqueue(&[send]).await?;
                crate::metrics::count(
                    crate::domain::outbound::MessageFlow::IssueAlert,
                    crate::metrics::Outcome::AlertSent,
                    1,
                );
                if recipient.owner {
                    Handled::AlertedOwner
                } else {
                    tracing::warn!(
                        asset,
                        reason = reason.tag(),
                        "the asset's owner is not in the directory: the fallback contact was alerted"
                    );
                    Handled::AlertedFallback
                }
            }
        };
        let name = recipient
            .as_ref()
            .map_or("nobody (owner not in the directory)", |r| r.name.as_str());
        let note = review::alert_note(&reason, name, &version);
        dam_log::append_line(
            &self.leases,
            &self.dam,
            asset,
            &self.settings.comments_field,
            &note,
        )
        .await?;
        tracing::info!(asset, reason = reason.tag(), "issue alert handled");
        Ok(outcome)
    }

    async fn message(
        &self,
        record: &Record,
        asset: &str,
        version: &str,
        reason: &IssueReason,
        recipient: &Recipient,
        now_ms: i64,
    ) -> Result<OutboundRequest, AlertError> {
        let expires = jiff::Timestamp::from_second(now_ms / 1000 + self.settings.link_seconds)
            .unwrap_or(jiff::Timestamp::MAX)
            .strftime("%Y-%m-%dT%H:%M:%S")
            .to_string();
        let link = self
            .dam
            .share_link(asset, &self.settings.link_format, &expires)
            .await?
            .url;
        let title = field_text(record, TITLE_FIELD)
            .filter(|t| !t.trim().is_empty())
            .unwrap_or_else(|| asset.to_owned());
        Ok(OutboundRequest {
            v: OUTBOUND_VERSION,
            key: SendKey {
                flow: MessageFlow::IssueAlert,
                subject: asset.to_owned(),
                version: format!("{version}:{}", reason.tag()),
                recipient: recipient.who.clone(),
            },
            to: recipient.to.clone(),
            from: SendFrom::Purpose(Purpose::Notifications),
            content: None,
            template: Some(TemplateMessage {
                template: TemplateUse::IssueAlert,
                header: None,
                body: vec![
                    TemplateParam::text(title),
                    TemplateParam::text(reason.text()),
                    TemplateParam::text(link),
                ],
                buttons: Vec::new(),
            }),
            reply_to: None,
            actor: Some("system".into()),
            requested_at_ms: now_ms,
        })
    }

    /// The owner (the owner field: a number or a directory name), else the fallback contact.
    async fn recipient(&self, record: &Record) -> Result<Option<Recipient>, AlertError> {
        let entries = field_text(record, &self.settings.owner_field)
            .map(|v| review::field_entries(&v))
            .unwrap_or_default();
        let mut owners: Option<Vec<crate::domain::contact::Contact>> = None;
        for entry in &entries {
            let contact = if WhatsAppAddress::parse(entry).is_ok() {
                self.directory
                    .get(&self.pseudonyms.pseudonym(entry))
                    .await?
            } else {
                if owners.is_none() {
                    owners = Some(self.directory.with_role(Role::Owner).await?);
                }
                owners.as_ref().and_then(|all| {
                    all.iter()
                        .find(|c| {
                            c.name
                                .as_deref()
                                .is_some_and(|n| n.trim().eq_ignore_ascii_case(entry))
                        })
                        .cloned()
                })
            };
            if let Some(contact) = contact
                && !contact.is_opted_out()
                && let Some(to) = contact.address.clone()
            {
                return Ok(Some(Recipient {
                    who: contact.pseudonym.clone(),
                    to,
                    name: contact.name.clone().unwrap_or_else(|| "the owner".into()),
                    owner: true,
                }));
            }
        }
        Ok(self.settings.fallback.as_ref().map(|to| Recipient {
            who: self.pseudonyms.pseudonym(to.expose()),
            to: to.clone(),
            name: "the fallback team contact".into(),
            owner: false,
        }))
    }
}

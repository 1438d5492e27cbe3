//! Flow 1, review requests: an asset ready for review → each approver gets the review template
//! (fresh link, deadline, campaign, rights, Approve / Reject); the first valid answer decides, by a
//! conditional write in the reviews table, and is then written to the DAM (status and comment);
//! every other answer is told politely that it changed nothing. A reminder goes out once before
//! the deadline. The rules are `domain::review`; this module orchestrates the ports.

use crate::adapters::orange_logic::{
    FieldUpdate, OrangeLogicClient, OrangeLogicError, Record, field_text,
};
use crate::connector_config::{ConnectorConfig, DamConcept, Purpose, TemplateUse};
use crate::domain::contact::{Contact, Role, WhatsAppAddress};
use crate::domain::dam::{DamDates, DomainEvent, DomainEventKind};
use crate::domain::outbound::{
    ButtonId, FlowQueueMessage, MessageFlow, OUTBOUND_VERSION, OutboundRequest, RoutedMessage,
    SendFrom, SendKey, TemplateMessage, awaited_answer, awaited_answer_state,
};
use crate::domain::review::{
    self, APPROVE, Answer, Approver, Decision, Judgement, REASON_SUFFIX, REJECT, ReviewRequest,
    Verdict, judge,
};
use crate::error::Retryable;
use crate::flows::dam_log::{self, LogError};
use crate::ports::{
    BusinessNumberId, ContactDirectory, ConversationStore, Decided, IdempotencyStore, Opened,
    OutboundQueue, QueueError, ReviewStore, StoreError,
};
use crate::pseudonym::Pseudonymizer;
use crate::whatsapp::messages::{Content, TemplateButton, TemplateParam};
use crate::whatsapp::webhook_types::{InboundMessage, MessageContent};
use std::sync::Arc;

/// The title field (Orange Logic's own; not in the field map).
pub const TITLE_FIELD: &str = "CoreField.Title";

/// Field names, status values and tunables, from the connector configuration.
#[derive(Debug, Clone)]
pub struct ReviewSettings {
    /// Status field.
    pub status_field: String,
    /// Approved value.
    pub approved: String,
    /// Rejected value.
    pub rejected: String,
    /// Approvers field.
    pub approvers_field: String,
    /// Campaign field.
    pub campaign_field: String,
    /// Usage rights field.
    pub rights_field: String,
    /// Review deadline field.
    pub deadline_field: String,
    /// Region field.
    pub region_field: String,
    /// Comment log field.
    pub comments_field: String,
    /// How the instance writes dates.
    pub dates: DamDates,
    /// Reasons offered to a rejecting approver.
    pub reject_reasons: Vec<String>,
    /// The reminder goes out this long before the deadline, seconds.
    pub reminder_lead_seconds: i64,
    /// Links stay valid this long, seconds.
    pub link_seconds: i64,
    /// Share-link format.
    pub link_format: String,
}

impl ReviewSettings {
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
            status_field: field(DamConcept::Status),
            approved: config.dam.status_values.approved.clone(),
            rejected: config.dam.status_values.rejected.clone(),
            approvers_field: field(DamConcept::Approvers),
            campaign_field: field(DamConcept::Campaign),
            rights_field: field(DamConcept::UsageRights),
            deadline_field: field(DamConcept::ReviewDeadline),
            region_field: field(DamConcept::Region),
            comments_field: field(DamConcept::Comments),
            dates: DamDates::from_settings(&config.dam.dates).unwrap_or_default(),
            reject_reasons: config.review.reject_reasons.clone(),
            reminder_lead_seconds: i64::from(config.review.reminder_before_hours) * 3600,
            link_seconds: i64::from(config.review.link_hours.max(1)) * 3600,
            link_format: config.review.link_format.clone(),
        }
    }
}

/// What the flow needs.
#[derive(Debug)]
pub struct ReviewFlow<R, D, C, O, L> {
    /// Review requests and decisions.
    pub reviews: R,
    /// The contact directory.
    pub directory: D,
    /// Conversation state (an approver asked for a reason).
    pub conversations: C,
    /// `outbound.fifo`.
    pub outbound: O,
    /// Per-asset comment leases.
    pub leases: L,
    /// The DAM.
    pub dam: Arc<OrangeLogicClient>,
    /// Numbers in the approvers field → directory keys.
    pub pseudonyms: Pseudonymizer,
    /// Fields and tunables.
    pub settings: ReviewSettings,
}

/// What handling one queue message did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Handled {
    /// Review requests queued for this many approvers.
    Requested(usize),
    /// Nobody to ask: the gap is logged.
    NoApprovers,
    /// The answer decided; confirmations queued.
    Decided,
    /// A rejecting approver was asked for the reason.
    ReasonAsked,
    /// The answer could not decide; the person was told why.
    Refused,
    /// The DAM approved it itself; the request is closed.
    ClosedInDam,
    /// Nothing to do, and why.
    Ignored(&'static str),
}

/// A message that could not be handled.
#[derive(Debug, thiserror::Error)]
pub enum ReviewError {
    /// The DAM failed.
    #[error("the DAM call failed")]
    Dam(#[from] OrangeLogicError),
    /// A table failed.
    #[error("a store failed")]
    Store(#[from] StoreError),
    /// `outbound.fifo` failed.
    #[error("the outbound queue failed")]
    Queue(#[from] QueueError),
    /// The comment log write failed.
    #[error(transparent)]
    Log(#[from] LogError),
    /// The answer names a number we do not know.
    #[error("the answer came to a number that is not a business number id")]
    BadNumber,
}

impl Retryable for ReviewError {
    fn is_retryable(&self) -> bool {
        match self {
            Self::Dam(e) => e.is_retryable(),
            Self::Store(e) => e.is_retryable(),
            Self::Queue(e) => e.is_retryable(),
            Self::Log(e) => e.is_retryable(),
            Self::BadNumber => false,
        }
    }
}

/// The version a review request is about: the file version, else the edit date of the change.
pub fn review_version(event: &DomainEvent) -> String {
    event
        .version
        .clone()
        .or_else(|| event.edited_at.clone())
        .unwrap_or_else(|| "current".into())
        .replace('|', "/")
}

fn text_of(record: &Record, field: &str) -> String {
    field_text(record, field)
        .map(|v| v.trim().to_owned())
        .filter(|v| !v.is_empty())
        .unwrap_or_else(|| "-".into())
}

impl<R, D, C, O, L> ReviewFlow<R, D, C, O, L>
where
    R: ReviewStore,
    D: ContactDirectory,
    C: ConversationStore,
    O: OutboundQueue,
    L: IdempotencyStore,
{
    /// Handles one message of the review queue at `now_ms`.
    pub async fn handle(
        &self,
        message: &FlowQueueMessage,
        now_ms: i64,
    ) -> Result<Handled, ReviewError> {
        match message {
            FlowQueueMessage::Event(event) => match &event.kind {
                DomainEventKind::ReadyForReview => self.request(event, now_ms).await,
                DomainEventKind::Approved => self.closed_in_dam(event, now_ms).await,
                _ => Ok(Handled::Ignored("not a review event")),
            },
            FlowQueueMessage::Answer(routed) => self.answer(routed, now_ms).await,
        }
    }

    async fn request(&self, event: &DomainEvent, now_ms: i64) -> Result<Handled, ReviewError> {
        let asset = event.asset.as_str();
        let Some(record) = self.dam.read_asset(asset).await? else {
            return Ok(Handled::Ignored("the asset no longer exists"));
        };
        let version = review_version(event);
        let contacts = self.approvers(&record).await?;
        if contacts.is_empty() {
            tracing::warn!(
                asset,
                "an asset is ready for review but no approver can be messaged (approvers field and directory role `approver`)"
            );
            return Ok(Handled::NoApprovers);
        }
        let deadline = field_text(&record, &self.settings.deadline_field)
            .and_then(|d| self.settings.dates.parse(&d))
            .map(|d| d.unix_seconds());
        let request = ReviewRequest {
            asset: asset.to_owned(),
            version: version.clone(),
            approvers: contacts
                .iter()
                .map(|c| Approver {
                    who: c.pseudonym.clone(),
                    name: display_name(c),
                })
                .collect(),
            deadline,
            decision: None,
            reminded: false,
        };
        let asked = match self.reviews.open(&request).await? {
            Opened::New => request,
            Opened::Existing(stored) if stored.decision.is_some() => {
                return Ok(Handled::Ignored("this version was already decided"));
            }
            // A redelivery: the same people, the same send keys (the sender sends each once).
            Opened::Existing(stored) => stored,
        };
        let sends = self
            .review_messages(&record, &asked, &version, now_ms, None)
            .await?;
        let count = sends.len();
        self.outbound.enqueue(&sends).await?;
        crate::metrics::count(
            MessageFlow::Review,
            crate::metrics::Outcome::AlertSent,
            count as u64,
        );
        tracing::info!(asset, approvers = count, "review requested");
        Ok(Handled::Requested(count))
    }

    /// The review template for every approver of `request` (with a fresh link); `suffix` marks a
    /// reminder's send keys.
    async fn review_messages(
        &self,
        record: &Record,
        request: &ReviewRequest,
        version: &str,
        now_ms: i64,
        suffix: Option<&str>,
    ) -> Result<Vec<OutboundRequest>, ReviewError> {
        let asset = request.asset.as_str();
        let expires = jiff::Timestamp::from_second(now_ms / 1000 + self.settings.link_seconds)
            .unwrap_or(jiff::Timestamp::MAX)
            .strftime("%Y-%m-%dT%H:%M:%S")
            .to_string();
        let link = self
            .dam
            .share_link(asset, &self.settings.link_format, &expires)
            .await?
            .url;
        let deadline = request.deadline.map_or_else(
            || "no deadline set".to_owned(),
            |d| review::utc_minute(d * 1000),
        );
        let button = |action: &str| {
            ButtonId {
                flow: MessageFlow::Review,
                action: action.to_owned(),
                subject: asset.to_owned(),
                version: version.to_owned(),
            }
            .encode()
            .unwrap_or_default()
        };
        let mut sends = Vec::new();
        for approver in &request.approvers {
            let Some(contact) = self.directory.get(&approver.who).await? else {
                continue;
            };
            let Some(to) = contact.address.clone().filter(|_| !contact.is_opted_out()) else {
                continue;
            };
            sends.push(OutboundRequest {
                v: OUTBOUND_VERSION,
                key: SendKey {
                    flow: MessageFlow::Review,
                    subject: asset.to_owned(),
                    version: format!("{version}{}", suffix.unwrap_or("")),
                    recipient: approver.who.clone(),
                },
                to,
                from: SendFrom::Purpose(Purpose::Notifications),
                content: None,
                template: Some(TemplateMessage {
                    template: TemplateUse::ReviewRequest,
                    header: None,
                    body: vec![
                        TemplateParam::text(text_of(record, TITLE_FIELD)),
                        TemplateParam::text(text_of(record, &self.settings.campaign_field)),
                        TemplateParam::text(text_of(record, &self.settings.rights_field)),
                        TemplateParam::text(deadline.clone()),
                        TemplateParam::text(link.clone()),
                    ],
                    buttons: vec![
                        TemplateButton::QuickReply {
                            index: 0,
                            payload: button(APPROVE),
                        },
                        TemplateButton::QuickReply {
                            index: 1,
                            payload: button(REJECT),
                        },
                    ],
                }),
                reply_to: None,
                actor: Some("system".into()),
                requested_at_ms: now_ms,
            });
        }
        Ok(sends)
    }

    /// The approvers of an asset: its approvers field (numbers or directory names), else the
    /// directory's approvers for its region; opted-out contacts and contacts without an address
    /// are left out.
    async fn approvers(&self, record: &Record) -> Result<Vec<Contact>, ReviewError> {
        let entries = field_text(record, &self.settings.approvers_field)
            .map(|v| review::field_entries(&v))
            .unwrap_or_default();
        let mut found: Vec<Contact> = Vec::new();
        if entries.is_empty() {
            let region = field_text(record, &self.settings.region_field)
                .map(|r| r.trim().to_lowercase())
                .filter(|r| !r.is_empty());
            for contact in self.directory.with_role(Role::Approver).await? {
                let covers = contact.regions.is_empty()
                    || region
                        .as_ref()
                        .is_none_or(|r| contact.regions.iter().any(|c| c.to_lowercase() == *r));
                if covers {
                    found.push(contact);
                }
            }
        } else {
            let mut by_role: Option<Vec<Contact>> = None;
            for (index, entry) in entries.iter().enumerate() {
                let contact = if WhatsAppAddress::parse(entry).is_ok() {
                    self.directory
                        .get(&self.pseudonyms.pseudonym(entry))
                        .await?
                } else {
                    if by_role.is_none() {
                        by_role = Some(self.directory.with_role(Role::Approver).await?);
                    }
                    by_role.as_ref().and_then(|all| {
                        all.iter()
                            .find(|c| {
                                c.name
                                    .as_deref()
                                    .is_some_and(|n| n.trim().eq_ignore_ascii_case(entry))
                            })
                            .cloned()
                    })
                };
                match contact {
                    Some(c) => found.push(c),
                    None => tracing::warn!(
                        entry = index,
                        "an entry of the approvers field is not in the directory"
                    ),
                }
            }
        }
        found.retain(|c| c.address.is_some() && !c.is_opted_out());
        found.sort_by(|a, b| a.pseudonym.cmp(&b.pseudonym));
        found.dedup_by(|a, b| a.pseudonym == b.pseudonym);
        Ok(found)
    }

    async fn closed_in_dam(
        &self,
        event: &DomainEvent,
        now_ms: i64,
    ) -> Result<Handled, ReviewError> {
        let asset = event.asset.as_str();
        let Some(request) = self.reviews.get(asset).await? else {
            return Ok(Handled::Ignored("no review request for this asset"));
        };
        if request.decision.is_some() {
            // Our own write-back, seen by change detection.
            return Ok(Handled::Ignored("already decided"));
        }
        let decision = Decision {
            verdict: Verdict::Approved,
            by: None,
            by_name: "the DAM".into(),
            at_ms: now_ms,
            message: None,
        };
        match self
            .reviews
            .decide(asset, &request.version, &decision)
            .await?
        {
            Decided::Written => Ok(Handled::ClosedInDam),
            Decided::Lost(_) => Ok(Handled::Ignored("already decided")),
        }
    }

    async fn answer(&self, routed: &RoutedMessage, now_ms: i64) -> Result<Handled, ReviewError> {
        let Some(key) = &routed.answers else {
            return Ok(Handled::Ignored("not an answer"));
        };
        let number = BusinessNumberId::parse(&routed.number).ok_or(ReviewError::BadNumber)?;
        let asset = key.subject.as_str();
        let message: Option<InboundMessage> = serde_json::from_str(routed.item.get()).ok();
        if let Some(version) = key.version.strip_suffix(REASON_SUFFIX) {
            let reason = match message.as_ref().map(|m| &m.content) {
                Some(MessageContent::Text(text)) => review::clean_reason(&text.body),
                _ => None,
            };
            let Some(reason) = reason else {
                return Ok(Handled::Ignored("the reason is not a text"));
            };
            self.conversations
                .set_state(&routed.user, &number, None)
                .await?;
            return self
                .decide(routed, asset, version, Verdict::Rejected { reason }, now_ms)
                .await;
        }
        let Some(button) = routed.button.as_deref().and_then(ButtonId::decode) else {
            return Ok(Handled::Ignored(
                "an answer to a review request that is not a tap",
            ));
        };
        match button.action.as_str() {
            APPROVE => {
                self.decide(routed, asset, &button.version, Verdict::Approved, now_ms)
                    .await
            }
            REJECT => {
                let request = self.reviews.get(asset).await?;
                let judgement = judge(
                    request.as_ref(),
                    &Answer {
                        who: &routed.user,
                        version: &button.version,
                        message: &routed.key,
                    },
                );
                if judgement != Judgement::MayDecide {
                    return self
                        .refuse(routed, asset, &button.version, &judgement)
                        .await;
                }
                let title = self.title(asset).await?;
                let state = awaited_answer_state(
                    MessageFlow::Review,
                    asset,
                    &format!("{}{REASON_SUFFIX}", button.version),
                );
                self.conversations
                    .set_state(&routed.user, &number, state.as_deref())
                    .await?;
                let prompt = review::reason_prompt(&title, &self.settings.reject_reasons);
                let send = self.reply(
                    routed,
                    asset,
                    format!("{}{REASON_SUFFIX}", button.version),
                    prompt,
                    now_ms,
                );
                self.outbound.enqueue(&[send]).await?;
                Ok(Handled::ReasonAsked)
            }
            _ => Ok(Handled::Ignored("a button this flow does not make")),
        }
    }

    async fn decide(
        &self,
        routed: &RoutedMessage,
        asset: &str,
        version: &str,
        verdict: Verdict,
        now_ms: i64,
    ) -> Result<Handled, ReviewError> {
        let request = self.reviews.get(asset).await?;
        let answer = Answer {
            who: &routed.user,
            version,
            message: &routed.key,
        };
        let judgement = judge(request.as_ref(), &answer);
        let (request, decision) = match (judgement, request) {
            (Judgement::MayDecide, Some(request)) => {
                let name = request
                    .approver(&routed.user)
                    .map_or_else(|| "an approver".to_owned(), |a| a.name.clone());
                let decision = Decision {
                    verdict,
                    by: Some(routed.user.clone()),
                    by_name: name,
                    at_ms: now_ms,
                    message: Some(routed.key.clone()),
                };
                match self.reviews.decide(asset, version, &decision).await? {
                    Decided::Written => (request, decision),
                    Decided::Lost(now) => {
                        // Two taps at once: the other one won the conditional write.
                        let judgement = judge(now.as_ref(), &answer);
                        return self.refuse(routed, asset, version, &judgement).await;
                    }
                }
            }
            (Judgement::DecidedByThis, Some(request)) => {
                let decision = request.decision.clone().unwrap_or_else(|| Decision {
                    verdict,
                    by: Some(routed.user.clone()),
                    by_name: String::new(),
                    at_ms: now_ms,
                    message: Some(routed.key.clone()),
                });
                (request, decision)
            }
            (judgement, _) => return self.refuse(routed, asset, version, &judgement).await,
        };
        self.write_back(&request, &decision).await?;
        self.forget_reason_question(routed, asset).await?;
        self.confirm(routed, &request, &decision, now_ms).await?;
        tracing::info!(asset, "review decided");
        Ok(Handled::Decided)
    }

    /// An approver who tapped Reject and then Approve is no longer asked for a reason: their next
    /// text must not be taken for one. Other states of the conversation are left alone.
    async fn forget_reason_question(
        &self,
        routed: &RoutedMessage,
        asset: &str,
    ) -> Result<(), ReviewError> {
        let number = BusinessNumberId::parse(&routed.number).ok_or(ReviewError::BadNumber)?;
        let waiting = self
            .conversations
            .get(&routed.user, &number)
            .await?
            .and_then(|c| c.state)
            .and_then(|s| awaited_answer(&s))
            .is_some_and(|(flow, subject, _)| flow == MessageFlow::Review && subject == asset);
        if waiting {
            self.conversations
                .set_state(&routed.user, &number, None)
                .await?;
        }
        Ok(())
    }

    /// Status, then the comment, under the asset's comment lease; both are safe to repeat.
    async fn write_back(
        &self,
        request: &ReviewRequest,
        decision: &Decision,
    ) -> Result<(), ReviewError> {
        let status = match decision.verdict {
            Verdict::Approved => &self.settings.approved,
            Verdict::Rejected { .. } => &self.settings.rejected,
        };
        let line = review::decision_comment(decision);
        let asset = request.asset.as_str();
        dam_log::with_lease(&self.leases, asset, || async {
            self.dam
                .update_record(
                    asset,
                    &[FieldUpdate::set(&self.settings.status_field, status)],
                )
                .await?;
            self.dam
                .append_to_field(asset, &self.settings.comments_field, &line)
                .await
        })
        .await?;
        Ok(())
    }

    async fn confirm(
        &self,
        routed: &RoutedMessage,
        request: &ReviewRequest,
        decision: &Decision,
        now_ms: i64,
    ) -> Result<(), ReviewError> {
        let title = self.title(&request.asset).await?;
        let mut sends = Vec::new();
        for approver in &request.approvers {
            let to_decider = decision.by.as_ref() == Some(&approver.who);
            let text = review::confirmation_text(decision, &title, to_decider);
            let key = SendKey {
                flow: MessageFlow::Review,
                subject: request.asset.clone(),
                version: format!("{}#decided", request.version),
                recipient: approver.who.clone(),
            };
            let (to, from) = if approver.who == routed.user {
                (
                    routed.reply_address.clone(),
                    SendFrom::Number(routed.number.clone()),
                )
            } else {
                match self.directory.get(&approver.who).await? {
                    Some(Contact {
                        address: Some(address),
                        opted_out_at_ms: None,
                        ..
                    }) => (address, SendFrom::Purpose(Purpose::Notifications)),
                    _ => continue,
                }
            };
            sends.push(OutboundRequest {
                v: OUTBOUND_VERSION,
                key,
                to,
                from,
                content: Some(Content::Text {
                    body: text,
                    preview_url: false,
                }),
                template: None,
                reply_to: None,
                actor: decision.by.as_ref().map(|p| p.as_str().to_owned()),
                requested_at_ms: now_ms,
            });
        }
        self.outbound.enqueue(&sends).await?;
        Ok(())
    }

    async fn refuse(
        &self,
        routed: &RoutedMessage,
        asset: &str,
        version: &str,
        judgement: &Judgement,
    ) -> Result<Handled, ReviewError> {
        // "No longer open" names no asset: it needs no DAM read.
        let title = if *judgement == Judgement::NoRequest {
            String::new()
        } else {
            self.title(asset).await?
        };
        let Some(text) = review::refusal_text(judgement, &title) else {
            return Ok(Handled::Ignored("nothing to refuse"));
        };
        let send = self.reply(
            routed,
            asset,
            format!("{version}#refused:{}", routed.key),
            text,
            routed.received_at_ms,
        );
        self.outbound.enqueue(&[send]).await?;
        tracing::info!(asset, "review answer refused");
        Ok(Handled::Refused)
    }

    fn reply(
        &self,
        routed: &RoutedMessage,
        asset: &str,
        version: String,
        body: String,
        now_ms: i64,
    ) -> OutboundRequest {
        OutboundRequest {
            v: OUTBOUND_VERSION,
            key: SendKey {
                flow: MessageFlow::Review,
                subject: asset.to_owned(),
                version,
                recipient: routed.user.clone(),
            },
            to: routed.reply_address.clone(),
            from: SendFrom::Number(routed.number.clone()),
            content: Some(Content::Text {
                body,
                preview_url: false,
            }),
            template: None,
            reply_to: Some(routed.key.clone()),
            actor: Some(routed.user.as_str().to_owned()),
            requested_at_ms: now_ms,
        }
    }

    async fn title(&self, asset: &str) -> Result<String, ReviewError> {
        Ok(self
            .dam
            .read_asset(asset)
            .await?
            .map_or_else(|| asset.to_owned(), |r| text_of(&r, TITLE_FIELD)))
    }

    /// The scheduled reminder: every open request whose deadline is within the reminder lead and
    /// that was not reminded gets the review template again (fresh link), once. Returns how many
    /// requests were reminded.
    pub async fn remind(&self, now_ms: i64) -> Result<usize, ReviewError> {
        let due = self
            .reviews
            .due_for_reminder(now_ms / 1000 + self.settings.reminder_lead_seconds)
            .await?;
        let mut reminded = 0;
        for request in due {
            let Some(record) = self.dam.read_asset(&request.asset).await? else {
                continue;
            };
            let sends = self
                .review_messages(
                    &record,
                    &request,
                    &request.version,
                    now_ms,
                    Some("#reminder"),
                )
                .await?;
            // Queued before the mark: a second run before the mark queues the same send keys,
            // which the sender sends once.
            self.outbound.enqueue(&sends).await?;
            crate::metrics::count(
                MessageFlow::Review,
                crate::metrics::Outcome::AlertSent,
                sends.len() as u64,
            );
            if self
                .reviews
                .mark_reminded(&request.asset, &request.version)
                .await?
            {
                reminded += 1;
            }
        }
        tracing::info!(reminded, "review reminders");
        Ok(reminded)
    }
}

fn display_name(contact: &Contact) -> String {
    contact
        .name
        .as_deref()
        .map(str::trim)
        .filter(|n| !n.is_empty())
        .unwrap_or("an approver")
        .to_owned()
}

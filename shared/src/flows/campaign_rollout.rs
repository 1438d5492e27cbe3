//! Flow 4, campaign rollout: an approved campaign package → each regional contact covering one
//! of its regions gets the template naming the package and its localised assets (fresh links),
//! with Confirm receipt / Request another format / Flag an issue. A format request is answered
//! with the configured renditions as a list, and the pick with the rendition itself; a flag asks
//! for a short description. Every answer is written on the package's comment log (who, what,
//! when) once, and recorded per recipient for the status per region (`status <campaign>` on
//! WhatsApp, `connector campaign status`). The rules are `domain::campaign`.

use crate::adapters::orange_logic::{OrangeLogicClient, Record, field_text};
use crate::connector_config::{
    ConnectorConfig, DamConcept, Purpose, RenditionFormat, RenditionKind, TemplateUse,
};
use crate::domain::campaign::{
    self, CONFIRM, FORMAT, ISSUE, ISSUE_SUFFIX, Mark, PICK_PREFIX, Recipient, Refusal, Rollout,
    STATUS_COMMAND,
};
use crate::domain::contact::Role;
use crate::domain::dam::{DomainEvent, DomainEventKind};
use crate::domain::outbound::{
    ButtonId, FlowQueueMessage, MessageFlow, OUTBOUND_VERSION, OutboundRequest, RoutedMessage,
    SendFrom, SendKey, TemplateMessage, awaited_answer, awaited_answer_state,
};
use crate::flows::dam_log;
use crate::flows::review_request::{TITLE_FIELD, review_version};
use crate::ports::{
    BusinessNumberId, CampaignStore, ContactDirectory, ConversationStore, IdempotencyStore,
    OutboundQueue, RolloutOpened, StoreError,
};
use crate::whatsapp::messages::{
    Content, ListMessage, ListRow, ListSection, MediaKind, MediaMessage, MediaSource,
    TemplateButton, TemplateParam,
};
use crate::whatsapp::webhook_types::{InboundMessage, MessageContent};
use std::sync::Arc;

/// The most member assets one notification lists (and one format pick sends).
pub const MAX_MEMBERS: usize = 10;

/// Fields and tunables, from the connector configuration.
#[derive(Debug, Clone)]
pub struct CampaignSettings {
    /// Campaign field.
    pub campaign_field: String,
    /// Region field (the package's regions; a member's region).
    pub region_field: String,
    /// Comment log field.
    pub comments_field: String,
    /// The package's member assets field.
    pub members_field: String,
    /// Links stay valid this long, seconds.
    pub link_seconds: i64,
    /// Share-link format of the notification.
    pub link_format: String,
    /// Renditions offered (at most 10).
    pub formats: Vec<RenditionFormat>,
}

impl CampaignSettings {
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
            campaign_field: field(DamConcept::Campaign),
            region_field: field(DamConcept::Region),
            comments_field: field(DamConcept::Comments),
            members_field: config.campaign.members_field.clone(),
            link_seconds: i64::from(config.campaign.link_hours.max(1)) * 3600,
            link_format: config.campaign.link_format.clone(),
            formats: config.campaign.formats.iter().take(10).cloned().collect(),
        }
    }
}

/// What the flow needs.
#[derive(Debug)]
pub struct CampaignFlow<S, D, C, O, L> {
    /// Rollouts and answers.
    pub rollouts: S,
    /// The contact directory.
    pub directory: D,
    /// Conversation state (a flag's description awaited).
    pub conversations: C,
    /// `outbound.fifo`.
    pub outbound: O,
    /// Per-asset comment leases.
    pub leases: L,
    /// The DAM.
    pub dam: Arc<OrangeLogicClient>,
    /// Fields and tunables.
    pub settings: CampaignSettings,
}

/// What handling one queue message did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Handled {
    /// Notifications queued for this many recipients.
    Notified(usize),
    /// No region, or nobody covering one: the gap is logged.
    NoRecipients,
    /// An answer recorded and written on the package.
    Recorded,
    /// The renditions list was sent.
    FormatsOffered,
    /// A flagging recipient was asked for the description.
    DescriptionAsked,
    /// The status was sent.
    StatusShown,
    /// The answer changed nothing; the person was told why.
    Refused,
    /// Nothing to do, and why.
    Ignored(&'static str),
}

/// A message that could not be handled: the same failures as a review answer's (a DAM call,
/// a table, `outbound.fifo`, the comment log, an unknown business number).
pub type CampaignError = crate::flows::review_request::ReviewError;

fn text_of(record: &Record, field: &str) -> String {
    field_text(record, field)
        .map(|v| v.trim().to_owned())
        .filter(|v| !v.is_empty())
        .unwrap_or_else(|| "-".into())
}

/// A member asset of a package.
struct Member {
    id: String,
    title: String,
    regions: Vec<String>,
}

impl<S, D, C, O, L> CampaignFlow<S, D, C, O, L>
where
    S: CampaignStore,
    D: ContactDirectory,
    C: ConversationStore,
    O: OutboundQueue,
    L: IdempotencyStore,
{
    /// Handles one message of the campaign queue at `now_ms`.
    pub async fn handle(
        &self,
        message: &FlowQueueMessage,
        now_ms: i64,
    ) -> Result<Handled, CampaignError> {
        match message {
            FlowQueueMessage::Event(event) => match &event.kind {
                DomainEventKind::CampaignPackageApproved { campaign } => {
                    self.roll_out(event, campaign, now_ms).await
                }
                _ => Ok(Handled::Ignored("not a campaign event")),
            },
            FlowQueueMessage::Answer(routed) => self.answer(routed).await,
        }
    }

    async fn roll_out(
        &self,
        event: &DomainEvent,
        campaign: &str,
        now_ms: i64,
    ) -> Result<Handled, CampaignError> {
        let package = event.asset.as_str();
        let Some(record) = self.dam.read_asset(package).await? else {
            return Ok(Handled::Ignored("the package no longer exists"));
        };
        let regions = field_text(&record, &self.settings.region_field)
            .map(|v| campaign::package_regions(&v))
            .unwrap_or_default();
        if regions.is_empty() {
            tracing::warn!(
                package,
                "a campaign package was approved without regions; nobody is notified"
            );
            return Ok(Handled::NoRecipients);
        }
        let contacts = self.directory.with_role(Role::Regional).await?;
        let rollout = Rollout {
            package: package.to_owned(),
            version: review_version(event),
            campaign: campaign.to_owned(),
            title: text_of(&record, TITLE_FIELD),
            regions: regions.clone(),
            recipients: campaign::recipients(&contacts, &regions),
            at_ms: now_ms,
        };
        if rollout.recipients.is_empty() {
            tracing::warn!(
                package,
                regions = regions.len(),
                "a campaign package was approved but no regional contact covers its regions"
            );
            return Ok(Handled::NoRecipients);
        }
        // A redelivery keeps the stored recipients: the same send keys, which the sender sends once.
        let rollout = match self.rollouts.open(&rollout).await? {
            RolloutOpened::New => rollout,
            RolloutOpened::Existing(stored) => stored,
        };
        let members = self.members(&record).await?;
        let expires = self.expiry(now_ms);
        let mut links: Vec<(String, String)> = Vec::new();
        for member in &members {
            let link = self
                .dam
                .share_link(&member.id, &self.settings.link_format, &expires)
                .await?
                .url;
            links.push((member.id.clone(), link));
        }
        let package_link = if members.is_empty() {
            Some(
                self.dam
                    .share_link(package, &self.settings.link_format, &expires)
                    .await?
                    .url,
            )
        } else {
            None
        };
        let mut sends = Vec::new();
        for recipient in &rollout.recipients {
            let Some(contact) = self.directory.get(&recipient.who).await? else {
                continue;
            };
            let Some(to) = contact.address.clone().filter(|_| !contact.is_opted_out()) else {
                continue;
            };
            let listed: Vec<(String, String)> = members
                .iter()
                .zip(&links)
                .filter(|(m, _)| campaign::member_for(&m.regions, &recipient.regions))
                .map(|(m, (_, link))| {
                    let label = if m.regions.is_empty() {
                        m.title.clone()
                    } else {
                        format!("{} ({})", m.title, m.regions.join(", "))
                    };
                    (label, link.clone())
                })
                .collect();
            let assets = match (&package_link, listed.is_empty()) {
                (Some(link), _) => link.clone(),
                (None, true) => "no localised assets for your region yet".to_owned(),
                (None, false) => campaign::asset_list(&listed),
            };
            sends.push(self.notification(&rollout, recipient, to, assets, now_ms));
        }
        let count = sends.len();
        self.outbound.enqueue(&sends).await?;
        tracing::info!(package, recipients = count, "campaign package rolled out");
        Ok(Handled::Notified(count))
    }

    fn notification(
        &self,
        rollout: &Rollout,
        recipient: &Recipient,
        to: crate::domain::contact::WhatsAppAddress,
        assets: String,
        now_ms: i64,
    ) -> OutboundRequest {
        let button = |action: &str| {
            ButtonId {
                flow: MessageFlow::Campaign,
                action: action.to_owned(),
                subject: rollout.package.clone(),
                version: rollout.version.clone(),
            }
            .encode()
            .unwrap_or_default()
        };
        OutboundRequest {
            v: OUTBOUND_VERSION,
            key: SendKey {
                flow: MessageFlow::Campaign,
                subject: rollout.package.clone(),
                version: rollout.version.clone(),
                recipient: recipient.who.clone(),
            },
            to,
            from: SendFrom::Purpose(Purpose::Notifications),
            content: None,
            template: Some(TemplateMessage {
                template: TemplateUse::CampaignRollout,
                header: None,
                body: vec![
                    TemplateParam::text(rollout.title.clone()),
                    TemplateParam::text(rollout.campaign.clone()),
                    TemplateParam::text(recipient.regions.join(", ")),
                    TemplateParam::text(assets),
                ],
                buttons: [CONFIRM, FORMAT, ISSUE]
                    .iter()
                    .enumerate()
                    .map(|(index, action)| TemplateButton::QuickReply {
                        index: index as u8,
                        payload: button(action),
                    })
                    .collect(),
            }),
            reply_to: None,
            actor: Some("system".into()),
            requested_at_ms: now_ms,
        }
    }

    fn expiry(&self, now_ms: i64) -> String {
        jiff::Timestamp::from_second(now_ms / 1000 + self.settings.link_seconds)
            .unwrap_or(jiff::Timestamp::MAX)
            .strftime("%Y-%m-%dT%H:%M:%S")
            .to_string()
    }

    /// The package's member assets: the RecordIDs of its members field, each read for its title
    /// and region (a member that no longer exists is left out).
    async fn members(&self, record: &Record) -> Result<Vec<Member>, CampaignError> {
        if self.settings.members_field.is_empty() {
            return Ok(Vec::new());
        }
        let ids = field_text(record, &self.settings.members_field)
            .map(|v| crate::domain::review::field_entries(&v))
            .unwrap_or_default();
        let mut members = Vec::new();
        for (index, id) in ids.into_iter().take(MAX_MEMBERS).enumerate() {
            match self.dam.read_asset(&id).await? {
                Some(member) => members.push(Member {
                    title: text_of(&member, TITLE_FIELD),
                    regions: field_text(&member, &self.settings.region_field)
                        .map(|v| campaign::package_regions(&v))
                        .unwrap_or_default(),
                    id,
                }),
                None => tracing::warn!(
                    entry = index,
                    "a member of a campaign package does not exist"
                ),
            }
        }
        Ok(members)
    }

    /// Answers are timed by the inbound message (the same on every redelivery), not by `now`.
    async fn answer(&self, routed: &RoutedMessage) -> Result<Handled, CampaignError> {
        let Some(key) = &routed.answers else {
            return Ok(Handled::Ignored("not an answer"));
        };
        if key.version == STATUS_COMMAND {
            return self.status(routed, &key.subject).await;
        }
        let package = key.subject.as_str();
        let message: Option<InboundMessage> = serde_json::from_str(routed.item.get()).ok();
        if let Some(version) = key.version.strip_suffix(ISSUE_SUFFIX) {
            let description = match message.as_ref().map(|m| &m.content) {
                Some(MessageContent::Text(text)) => campaign::clean_description(&text.body),
                _ => None,
            };
            let Some(description) = description else {
                return Ok(Handled::Ignored("the description is not a text"));
            };
            let number = BusinessNumberId::parse(&routed.number).ok_or(CampaignError::BadNumber)?;
            let Some((rollout, recipient)) = self.check(routed, package, version).await? else {
                return Ok(Handled::Refused);
            };
            self.conversations
                .set_state(&routed.user, &number, None)
                .await?;
            return self
                .log(routed, &rollout, &recipient, Mark::Flagged(description))
                .await;
        }
        let Some(button) = routed.button.as_deref().and_then(ButtonId::decode) else {
            return Ok(Handled::Ignored(
                "an answer to a campaign message that is not a tap",
            ));
        };
        let Some((rollout, recipient)) = self.check(routed, package, &button.version).await? else {
            return Ok(Handled::Refused);
        };
        match button.action.as_str() {
            CONFIRM => {
                self.log(routed, &rollout, &recipient, Mark::Confirmed)
                    .await
            }
            FORMAT => {
                let send = self.reply(
                    routed,
                    package,
                    format!("{}#formats:{}", rollout.version, routed.key),
                    self.formats_list(&rollout),
                );
                self.outbound.enqueue(&[send]).await?;
                Ok(Handled::FormatsOffered)
            }
            ISSUE => {
                let number =
                    BusinessNumberId::parse(&routed.number).ok_or(CampaignError::BadNumber)?;
                let state = awaited_answer_state(
                    MessageFlow::Campaign,
                    package,
                    &format!("{}{ISSUE_SUFFIX}", rollout.version),
                );
                self.conversations
                    .set_state(&routed.user, &number, state.as_deref())
                    .await?;
                let send = self.reply(
                    routed,
                    package,
                    format!("{}{ISSUE_SUFFIX}", rollout.version),
                    text(campaign::issue_prompt(&rollout.title)),
                );
                self.outbound.enqueue(&[send]).await?;
                Ok(Handled::DescriptionAsked)
            }
            action => match action.strip_prefix(PICK_PREFIX) {
                Some(code) => {
                    self.send_rendition(routed, &rollout, &recipient, code)
                        .await
                }
                None => Ok(Handled::Ignored("a button this flow does not make")),
            },
        }
    }

    /// The rollout and the recipient an answer is about, or `None` after a polite refusal.
    async fn check(
        &self,
        routed: &RoutedMessage,
        package: &str,
        version: &str,
    ) -> Result<Option<(Rollout, Recipient)>, CampaignError> {
        let rollout = self.rollouts.get(package).await?;
        let refusal = match &rollout {
            None => Refusal::NoRollout,
            Some(r) if r.recipient(&routed.user).is_none() => Refusal::NotNotified,
            Some(r) if r.version != version => Refusal::EarlierVersion,
            Some(r) => {
                let recipient = r.recipient(&routed.user).cloned();
                return Ok(recipient.map(|recipient| (r.clone(), recipient)));
            }
        };
        let title = rollout.as_ref().map_or("", |r| r.title.as_str());
        self.refuse(routed, package, refusal, title).await?;
        Ok(None)
    }

    async fn refuse(
        &self,
        routed: &RoutedMessage,
        package: &str,
        refusal: Refusal,
        title: &str,
    ) -> Result<(), CampaignError> {
        self.forget_description_question(routed, package).await?;
        let send = self.reply(
            routed,
            package,
            format!("#refused:{}", routed.key),
            text(campaign::refusal_text(refusal, title)),
        );
        self.outbound.enqueue(&[send]).await?;
        tracing::info!(package, refusal = ?refusal, "campaign answer refused");
        Ok(())
    }

    /// A refused answer leaves no awaited description of this package behind.
    async fn forget_description_question(
        &self,
        routed: &RoutedMessage,
        package: &str,
    ) -> Result<(), CampaignError> {
        let number = BusinessNumberId::parse(&routed.number).ok_or(CampaignError::BadNumber)?;
        let waiting = self
            .conversations
            .get(&routed.user, &number)
            .await?
            .and_then(|c| c.state)
            .and_then(|s| awaited_answer(&s))
            .is_some_and(|(flow, subject, _)| flow == MessageFlow::Campaign && subject == package);
        if waiting {
            self.conversations
                .set_state(&routed.user, &number, None)
                .await?;
        }
        Ok(())
    }

    /// The comment on the package (under its lease; a redelivery finds the line there), the
    /// recipient's status, and the thanks.
    async fn log(
        &self,
        routed: &RoutedMessage,
        rollout: &Rollout,
        recipient: &Recipient,
        mark: Mark,
    ) -> Result<Handled, CampaignError> {
        // The answer's own time: the same on every redelivery, so the line is the same line.
        let at_ms = routed.received_at_ms;
        let line = campaign::comment(&rollout.campaign, recipient, &mark, at_ms);
        let package = rollout.package.as_str();
        dam_log::with_lease(&self.leases, package, || async {
            self.dam
                .append_to_field(package, &self.settings.comments_field, &line)
                .await
        })
        .await?;
        let current = self
            .rollouts
            .record(package, &rollout.version, &recipient.who, &mark, at_ms)
            .await?;
        if !current {
            tracing::warn!(
                package,
                "a newer version was rolled out while an answer was logged"
            );
        }
        if !matches!(mark, Mark::FormatRequested(_)) {
            let send = self.reply(
                routed,
                package,
                format!("{}#ack:{}", rollout.version, routed.key),
                text(campaign::acknowledgement(&rollout.title, &mark)),
            );
            self.outbound.enqueue(&[send]).await?;
        }
        tracing::info!(package, "campaign answer logged");
        Ok(Handled::Recorded)
    }

    fn formats_list(&self, rollout: &Rollout) -> Content {
        let rows = self
            .settings
            .formats
            .iter()
            .filter_map(|f| {
                let id = ButtonId {
                    flow: MessageFlow::Campaign,
                    action: format!("{PICK_PREFIX}{}", f.code),
                    subject: rollout.package.clone(),
                    version: rollout.version.clone(),
                }
                .encode()?;
                Some(ListRow {
                    id,
                    title: f.label.chars().take(24).collect(),
                    description: f.description.as_ref().map(|d| d.chars().take(72).collect()),
                })
            })
            .collect::<Vec<_>>();
        if rows.is_empty() {
            return text(format!(
                "No other formats of {} are offered here; please ask the campaign team.",
                rollout.title
            ));
        }
        Content::List(ListMessage {
            header: None,
            body: format!("Which format of {} do you need?", rollout.title),
            footer: None,
            button: "Choose a format".into(),
            sections: vec![ListSection { title: None, rows }],
        })
    }

    /// The picked rendition of each member asset for the recipient's regions (of the package
    /// itself when it lists none), sent by fresh link; then the comment and the status.
    async fn send_rendition(
        &self,
        routed: &RoutedMessage,
        rollout: &Rollout,
        recipient: &Recipient,
        code: &str,
    ) -> Result<Handled, CampaignError> {
        let Some(format) = self
            .settings
            .formats
            .iter()
            .find(|f| f.code.eq_ignore_ascii_case(code))
            .cloned()
        else {
            self.refuse(
                routed,
                &rollout.package,
                Refusal::UnknownFormat,
                &rollout.title,
            )
            .await?;
            return Ok(Handled::Refused);
        };
        let record = self.dam.read_asset(&rollout.package).await?;
        let members = match &record {
            Some(record) => self.members(record).await?,
            None => Vec::new(),
        };
        let mut wanted: Vec<(String, String)> = members
            .iter()
            .filter(|m| campaign::member_for(&m.regions, &recipient.regions))
            .map(|m| (m.id.clone(), m.title.clone()))
            .collect();
        if wanted.is_empty() {
            wanted.push((rollout.package.clone(), rollout.title.clone()));
        }
        let expires = self.expiry(routed.received_at_ms);
        let mut sends = Vec::new();
        for (id, title) in &wanted {
            let link = self.dam.share_link(id, &format.code, &expires).await?.url;
            let (kind, filename) = match format.send_as {
                RenditionKind::Image => (MediaKind::Image, None),
                RenditionKind::Document => (MediaKind::Document, Some(file_name(title, &format))),
            };
            let media = Content::Media(MediaMessage {
                kind,
                source: MediaSource::Link(link),
                caption: Some(format!("{title} ({})", format.label)),
                filename,
            });
            sends.push(self.reply(
                routed,
                &rollout.package,
                format!("{}#fmt:{}:{id}", rollout.version, format.code),
                media,
            ));
        }
        self.outbound.enqueue(&sends).await?;
        self.log(
            routed,
            rollout,
            recipient,
            Mark::FormatRequested(format.label.clone()),
        )
        .await
    }

    /// `status <campaign>` from a regional lead or an owner: the status per region of each of
    /// the campaign's packages.
    async fn status(
        &self,
        routed: &RoutedMessage,
        campaign_name: &str,
    ) -> Result<Handled, CampaignError> {
        let allowed = self
            .directory
            .get(&routed.user)
            .await?
            .is_some_and(|c| c.has_role(Role::Regional) || c.has_role(Role::Owner));
        if !allowed {
            self.refuse(routed, campaign_name, Refusal::NotAllowedStatus, "")
                .await?;
            return Ok(Handled::Refused);
        }
        let lines = status_text(&self.rollouts, campaign_name).await?;
        let send = self.reply(
            routed,
            campaign_name,
            format!("{STATUS_COMMAND}:{}", routed.key),
            text(lines.join("\n")),
        );
        self.outbound.enqueue(&[send]).await?;
        tracing::info!("campaign status shown");
        Ok(Handled::StatusShown)
    }

    fn reply(
        &self,
        routed: &RoutedMessage,
        subject: &str,
        version: String,
        content: Content,
    ) -> OutboundRequest {
        OutboundRequest {
            v: OUTBOUND_VERSION,
            key: SendKey {
                flow: MessageFlow::Campaign,
                subject: subject.to_owned(),
                version,
                recipient: routed.user.clone(),
            },
            to: routed.reply_address.clone(),
            from: SendFrom::Number(routed.number.clone()),
            content: Some(content),
            template: None,
            reply_to: Some(routed.key.clone()),
            actor: Some(routed.user.as_str().to_owned()),
            requested_at_ms: routed.received_at_ms,
        }
    }
}

/// The status per region of every package of `campaign`, as text lines (shared by the WhatsApp
/// command and `connector campaign status`).
pub async fn status_text<S: CampaignStore>(
    store: &S,
    campaign_name: &str,
) -> Result<Vec<String>, StoreError> {
    let packages = store.packages_of(campaign_name).await?;
    let mut lines = Vec::new();
    for package in &packages {
        let Some(rollout) = store.get(package).await? else {
            continue;
        };
        let statuses = store.statuses(package).await?;
        lines.extend(campaign::status_lines(&rollout, &statuses));
    }
    if lines.is_empty() {
        lines.push(format!(
            "No package of campaign {} has been rolled out.",
            campaign_name.trim()
        ));
    }
    Ok(lines)
}

fn file_name(title: &str, format: &RenditionFormat) -> String {
    let stem: String = title
        .chars()
        .map(|c| if c.is_alphanumeric() { c } else { '-' })
        .collect();
    let stem = stem.trim_matches('-');
    let stem = if stem.is_empty() { "asset" } else { stem };
    match format.extension.as_deref().filter(|e| !e.is_empty()) {
        Some(extension) => format!("{stem}-{}.{extension}", format.code),
        None => format!("{stem}-{}", format.code),
    }
}

fn text(body: String) -> Content {
    Content::Text {
        body,
        preview_url: false,
    }
}

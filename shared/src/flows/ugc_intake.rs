//! Flow 6, UGC intake with consent: a photo or video sent to a campaign number is staged in S3
//! (under `ugc-pending/`, which the bucket's lifecycle rule expires) with the checks of flow 2,
//! and the sender is asked for consent with Yes / No buttons and the terms' link and version. Yes
//! records the consent (append-only, and as the sender's current consent for the campaign) and
//! files the media, stripped of GPS and device metadata, in the moderation folder tagged by
//! campaign and source with rights "pending clearance" and the consent record; No deletes the
//! staged media and confirms. The sweep reminds once, then deletes what was never answered. A
//! sender who consented for a campaign is not asked again: their later submissions go straight in.
//!
//! Exactly once per wamid: the pending item is a conditional put (a redelivery finds it), every
//! send has a stable key (the sender sends it once), a consent record is keyed by the answering
//! message, and a retried upload searches the DAM for the wamid first.

use crate::adapters::orange_logic::{NewMedia, OrangeLogicClient, OrangeLogicError};
use crate::adapters::staging::{S3Staging, StagingError};
use crate::adapters::ugc_store::{ConsentRecord, DynamoUgcStore, Pending, PendingStatus};
use crate::adapters::whatsapp::client::WhatsAppClient;
use crate::connector_config::{IngestFields, UgcRouting};
use crate::domain::field_ingest::{self as media_rules, Refusal};
use crate::domain::outbound::{
    ButtonId, MessageFlow, OUTBOUND_VERSION, OutboundRequest, RoutedMessage, SendFrom, SendKey,
};
use crate::domain::ugc::{self as rules, ConsentAnswer, Hold, SweepStep};
use crate::error::Retryable;
use crate::flows::field_ingest::{IngestError, find_uploaded, stage_media};
use crate::ports::{OutboundQueue, QueueError, StoreError};
use crate::whatsapp::messages::{Content, MediaKind, ReplyButton, ReplyButtons};
use crate::whatsapp::webhook_types::{InboundMedia, InboundMessage, MessageContent};
use bytes::Bytes;
use futures::StreamExt;
use std::collections::BTreeMap;
use std::sync::Arc;

/// Settings of the flow.
#[derive(Debug, Clone)]
pub struct UgcSettings {
    /// Folder, terms, keywords, ad campaigns, source / consent fields, the rights value.
    pub routing: UgcRouting,
    /// Sender, message id, received-at and caption fields (shared with flow 2).
    pub fields: IngestFields,
    /// The DAM's campaign field.
    pub campaign_field: String,
    /// The DAM's usage-rights field.
    pub rights_field: String,
    /// Each UGC number's campaign.
    pub number_campaigns: BTreeMap<String, String>,
    /// Largest file accepted, MB.
    pub max_file_mb: u64,
    /// Types accepted, as sniffed.
    pub allowed_types: Vec<String>,
    /// When to remind, when to delete.
    pub hold: Hold,
    /// `UploadMode` of uploads.
    pub upload_mode: String,
}

/// Why a message could not be handled (refusals and declines are not errors: the sender is told).
#[derive(Debug, thiserror::Error)]
pub enum UgcError {
    /// The message cannot be read.
    #[error("the routed message cannot be read")]
    Malformed(#[source] serde_json::Error),
    /// Staging (download, checks, S3) failed.
    #[error("the submission could not be staged")]
    Stage(#[source] IngestError),
    /// S3.
    #[error("the staging bucket failed")]
    Staging(#[from] StagingError),
    /// The DAM.
    #[error("the DAM failed")]
    Dam(#[from] OrangeLogicError),
    /// DynamoDB.
    #[error("the UGC table failed")]
    Store(#[from] StoreError),
    /// SQS.
    #[error("a queue failed")]
    Queue(#[from] QueueError),
}

impl Retryable for UgcError {
    fn is_retryable(&self) -> bool {
        match self {
            Self::Malformed(_) => false,
            Self::Stage(e) => e.is_retryable(),
            Self::Staging(e) => e.is_retryable(),
            Self::Dam(e) => e.is_retryable(),
            Self::Store(e) => e.is_retryable(),
            Self::Queue(e) => e.is_retryable(),
        }
    }
}

/// What became of a message.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Outcome {
    /// Staged; consent asked.
    Asked,
    /// Filed as this asset (consent given now or before).
    Filed(String),
    /// The sender said No; the media is deleted.
    Declined,
    /// Refused by the checks; the sender was told why.
    Refused(Refusal),
    /// Not a photo or video, or an answer about a submission no longer held; the sender was told.
    Told,
    /// A redelivery of something already handled.
    Duplicate,
}

/// What a sweep did.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Swept {
    /// Reminders queued.
    pub reminded: usize,
    /// Submissions deleted for lack of an answer.
    pub expired: usize,
}

/// The flow's dependencies.
#[derive(Debug)]
pub struct UgcIntake<O> {
    /// `outbound.fifo`.
    pub outbound: O,
    /// Pending submissions and consent records.
    pub store: DynamoUgcStore,
    /// The staging bucket.
    pub staging: S3Staging,
    /// Graph (media download).
    pub graph: WhatsAppClient,
    /// The DAM.
    pub dam: Arc<OrangeLogicClient>,
    /// Settings.
    pub settings: UgcSettings,
}

fn now_ms() -> i64 {
    jiff::Timestamp::now().as_millisecond()
}

fn iso(ms: i64) -> String {
    jiff::Timestamp::from_millisecond(ms)
        .map(|t| t.strftime("%Y-%m-%dT%H:%M:%SZ").to_string())
        .unwrap_or_default()
}

/// The consent buttons' version: one question per submission.
const QUESTION: &str = "1";

impl<O: OutboundQueue> UgcIntake<O> {
    /// Handles one message of the UGC queue: a submission, or an answer to a consent question.
    pub async fn handle(&self, routed: &RoutedMessage) -> Result<Outcome, UgcError> {
        if let Some(button) = routed.button.as_deref().and_then(ButtonId::decode)
            && button.flow == MessageFlow::UgcIntake
            && let Some(answer) = ConsentAnswer::from_action(&button.action)
        {
            return self.answer(routed, &button.subject, answer).await;
        }
        let message: InboundMessage =
            serde_json::from_str(routed.item.get()).map_err(UgcError::Malformed)?;
        let sent_at_ms = message
            .timestamp
            .as_deref()
            .and_then(|t| t.parse::<i64>().ok())
            .map_or(routed.received_at_ms, |s| s * 1000);
        let referral = message
            .referral
            .as_ref()
            .and_then(|r| r.source_id.as_deref());
        match &message.content {
            MessageContent::Image(media) => {
                self.submit(routed, MediaKind::Image, media, referral, sent_at_ms)
                    .await
            }
            MessageContent::Video(media) => {
                self.submit(routed, MediaKind::Video, media, referral, sent_at_ms)
                    .await
            }
            _ => {
                self.reply(
                    routed,
                    &routed.key,
                    "not-media",
                    rules::NOT_MEDIA_TEXT.into(),
                )
                .await?;
                Ok(Outcome::Told)
            }
        }
    }

    async fn submit(
        &self,
        routed: &RoutedMessage,
        kind: MediaKind,
        media: &InboundMedia,
        referral: Option<&str>,
        sent_at_ms: i64,
    ) -> Result<Outcome, UgcError> {
        let pending = match self.store.pending(&routed.key).await? {
            Some(pending) => pending,
            None => {
                let caption = media.caption.clone().unwrap_or_default();
                let Some(of) = rules::campaign_of(
                    &caption,
                    referral,
                    self.settings
                        .number_campaigns
                        .get(&routed.number)
                        .map(String::as_str),
                    &self.settings.routing,
                ) else {
                    tracing::warn!(user = %routed.user, "UGC without a campaign (the number has none configured)");
                    self.reply(
                        routed,
                        &routed.key,
                        "not-media",
                        rules::NOT_MEDIA_TEXT.into(),
                    )
                    .await?;
                    return Ok(Outcome::Told);
                };
                let digest = crate::crypto::sha256_hex(&[routed.key.as_bytes()]);
                let key = format!("ugc-pending/{}/{}", routed.user.as_str(), &digest[..32]);
                let staged = stage_media(
                    &self.graph,
                    &self.staging,
                    &key,
                    kind,
                    media,
                    self.settings.max_file_mb,
                    &self.settings.allowed_types,
                )
                .await
                .map_err(UgcError::Stage)?;
                let (staged_key, bytes, mime) = match staged {
                    Ok((key, bytes, mime, _)) => (key, bytes, mime),
                    Err(refusal) => {
                        self.reply(routed, &routed.key, "refused", refusal.reply_text())
                            .await?;
                        tracing::info!(user = %routed.user, reason = refusal.code(), "UGC refused; the sender was told");
                        return Ok(Outcome::Refused(refusal));
                    }
                };
                self.store
                    .create_pending(&Pending {
                        wamid: routed.key.clone(),
                        user: routed.user.clone(),
                        reply_address: routed.reply_address.clone(),
                        number: routed.number.clone(),
                        campaign: of.campaign,
                        source: of.source.to_field(),
                        staged_key,
                        bytes,
                        mime: mime.to_owned(),
                        caption,
                        sent_at_ms,
                        asked_at: now_ms() / 1000,
                        reminded_at: None,
                        status: PendingStatus::Asked,
                        upload_started: false,
                        asset: None,
                    })
                    .await?
            }
        };
        if pending.status != PendingStatus::Asked {
            return Ok(Outcome::Duplicate);
        }
        let consent = self
            .store
            .current_consent(&pending.user, &pending.campaign)
            .await?;
        if let Some((ConsentAnswer::Yes, terms, answer_message, at_ms)) = consent {
            let record = rules::consent_field(
                pending.user.as_str(),
                &iso(at_ms),
                &terms,
                "earlier",
                &answer_message,
                ConsentAnswer::Yes,
            );
            let asset = self.file(&pending, record).await?;
            self.reply(
                routed,
                &pending.wamid,
                "filed",
                rules::accepted_text(&pending.campaign),
            )
            .await?;
            return Ok(Outcome::Filed(asset));
        }
        self.ask(&pending, "ask").await?;
        tracing::info!(user = %pending.user, campaign = %pending.campaign, "UGC staged; consent asked");
        Ok(Outcome::Asked)
    }

    /// The consent question (or its reminder) with Yes / No buttons.
    async fn ask(&self, pending: &Pending, version: &str) -> Result<(), UgcError> {
        let button = |action: &str, title: &str| ReplyButton {
            id: ButtonId {
                flow: MessageFlow::UgcIntake,
                action: action.to_owned(),
                subject: pending.wamid.clone(),
                version: QUESTION.to_owned(),
            }
            .encode()
            .unwrap_or_default(),
            title: title.to_owned(),
        };
        let body = if version == "reminder" {
            rules::reminder_text(&pending.campaign, &self.settings.routing)
        } else {
            rules::consent_question(&pending.campaign, &self.settings.routing)
        };
        self.outbound
            .enqueue(&[OutboundRequest {
                v: OUTBOUND_VERSION,
                key: SendKey {
                    flow: MessageFlow::UgcIntake,
                    subject: pending.wamid.clone(),
                    version: version.to_owned(),
                    recipient: pending.user.clone(),
                },
                to: pending.reply_address.clone(),
                from: SendFrom::Number(pending.number.clone()),
                content: Some(Content::Buttons(ReplyButtons {
                    header: None,
                    body,
                    footer: None,
                    buttons: vec![button(rules::YES, "Yes, I agree"), button(rules::NO, "No")],
                })),
                template: None,
                reply_to: Some(pending.wamid.clone()),
                actor: Some("system".into()),
                requested_at_ms: now_ms(),
            }])
            .await?;
        Ok(())
    }

    async fn answer(
        &self,
        routed: &RoutedMessage,
        submission: &str,
        answer: ConsentAnswer,
    ) -> Result<Outcome, UgcError> {
        let pending = self
            .store
            .pending(submission)
            .await?
            .filter(|p| p.user == routed.user);
        let Some(pending) = pending else {
            self.reply(routed, &routed.key, "gone", rules::GONE_TEXT.into())
                .await?;
            return Ok(Outcome::Told);
        };
        match pending.status {
            PendingStatus::Asked => {}
            PendingStatus::Filed | PendingStatus::Declined => return Ok(Outcome::Duplicate),
            PendingStatus::Expired => {
                self.reply(routed, &routed.key, "gone", rules::GONE_TEXT.into())
                    .await?;
                return Ok(Outcome::Told);
            }
        }
        let message: Option<InboundMessage> = serde_json::from_str(routed.item.get()).ok();
        let asked_message = message
            .as_ref()
            .and_then(|m| m.context.as_ref())
            .and_then(|c| c.id.clone())
            .unwrap_or_default();
        let at_ms = message
            .as_ref()
            .and_then(|m| m.timestamp.as_deref())
            .and_then(|t| t.parse::<i64>().ok())
            .map_or(routed.received_at_ms, |s| s * 1000);
        let record = ConsentRecord {
            user: pending.user.clone(),
            campaign: pending.campaign.clone(),
            terms_version: self.settings.routing.terms_version.clone(),
            submission: pending.wamid.clone(),
            asked_message: asked_message.clone(),
            answer_message: routed.key.clone(),
            answer,
            at_ms,
        };
        self.store.record_consent(&record).await?;
        match answer {
            ConsentAnswer::Yes => {
                let field = rules::consent_field(
                    pending.user.as_str(),
                    &iso(at_ms),
                    &record.terms_version,
                    &asked_message,
                    &routed.key,
                    ConsentAnswer::Yes,
                );
                let asset = self.file(&pending, field).await?;
                self.reply(
                    routed,
                    &pending.wamid,
                    "filed",
                    rules::accepted_text(&pending.campaign),
                )
                .await?;
                Ok(Outcome::Filed(asset))
            }
            ConsentAnswer::No => {
                self.staging.delete(&pending.staged_key).await?;
                self.store
                    .settle(&pending.wamid, PendingStatus::Declined, None)
                    .await?;
                self.reply(
                    routed,
                    &pending.wamid,
                    "declined",
                    rules::DECLINED_TEXT.into(),
                )
                .await?;
                tracing::info!(user = %pending.user, campaign = %pending.campaign, "UGC declined; the staged media is deleted");
                Ok(Outcome::Declined)
            }
        }
    }

    /// Uploads the staged media, stripped of its metadata, to the moderation folder.
    async fn file(&self, pending: &Pending, consent: String) -> Result<String, UgcError> {
        let fields = &self.settings.fields;
        let routing = &self.settings.routing;
        let found = if pending.upload_started {
            find_uploaded(&self.dam, &fields.message_id, &pending.wamid).await?
        } else {
            None
        };
        let asset = match found {
            Some((identifier, _)) => identifier,
            None => {
                let mut metadata = vec![
                    (fields.sender.clone(), pending.user.as_str().to_owned()),
                    (fields.received_at.clone(), iso(pending.sent_at_ms)),
                    (fields.message_id.clone(), pending.wamid.clone()),
                    (
                        self.settings.campaign_field.clone(),
                        pending.campaign.clone(),
                    ),
                    (routing.source_field.clone(), pending.source.clone()),
                    (
                        self.settings.rights_field.clone(),
                        routing.rights_pending.clone(),
                    ),
                    (routing.consent_field.clone(), consent),
                ];
                if !pending.caption.is_empty() {
                    metadata.push((fields.caption.clone(), pending.caption.clone()));
                }
                let digest = crate::crypto::sha256_hex(&[pending.wamid.as_bytes()]);
                let file_name = format!(
                    "ugc-{}.{}",
                    &digest[..20],
                    media_rules::extension(&pending.mime)
                );
                let folder = self
                    .dam
                    .folder_record_id(&routing.moderation_folder)
                    .await?;
                let media = NewMedia {
                    folder,
                    file_name,
                    metadata,
                    upload_mode: self.settings.upload_mode.clone(),
                };
                self.store.mark_upload_started(&pending.wamid).await?;
                let uploaded = if pending.mime.starts_with("image/") {
                    // Photos are read whole (within the size cap) and stripped in memory.
                    let len = usize::try_from(pending.bytes).unwrap_or(usize::MAX);
                    let original = self.staging.head_bytes(&pending.staged_key, len).await?;
                    let stripped = rules::strip_metadata(&pending.mime, &original)
                        .map(|s| (s.bytes.into_owned(), s.removed))
                        .unwrap_or_else(|| {
                            tracing::warn!(mime = %pending.mime, "photo metadata could not be parsed; filed as received");
                            (original.clone(), Vec::new())
                        });
                    tracing::info!(removed = ?stripped.1, "UGC metadata stripped");
                    let body = Bytes::from(stripped.0);
                    let len = body.len() as u64;
                    self.dam
                        .upload_new_media(&media, move || {
                            let body = body.clone();
                            Ok((
                                futures::stream::once(
                                    async move { Ok::<Bytes, std::io::Error>(body) },
                                )
                                .boxed(),
                                len,
                            ))
                        })
                        .await?
                } else {
                    self.dam
                        .upload_new_media(
                            &media,
                            self.staging.open(&pending.staged_key, pending.bytes),
                        )
                        .await?
                };
                uploaded.identifier
            }
        };
        self.store
            .settle(&pending.wamid, PendingStatus::Filed, Some(&asset))
            .await?;
        crate::metrics::count(
            MessageFlow::UgcIntake,
            crate::metrics::Outcome::AssetIngested,
            1,
        );
        tracing::info!(user = %pending.user, campaign = %pending.campaign, "UGC filed for moderation");
        if let Err(error) = self.staging.delete(&pending.staged_key).await {
            tracing::warn!(error = %crate::error::chain(&error), "filed UGC stays staged until lifecycle expiry");
        }
        Ok(asset)
    }

    /// Reminds once every submission unanswered past the reminder delay, and deletes those still
    /// unanswered past the hold (the bucket's lifecycle rule is the backstop).
    pub async fn sweep(&self, now: i64) -> Result<Swept, UgcError> {
        let mut swept = Swept::default();
        for pending in self.store.waiting().await? {
            match rules::sweep_step(
                pending.asked_at,
                pending.reminded_at,
                now,
                self.settings.hold,
            ) {
                SweepStep::Wait => {}
                SweepStep::Remind => {
                    if self.store.mark_reminded(&pending.wamid, now).await? {
                        self.ask(&pending, "reminder").await?;
                        swept.reminded += 1;
                    }
                }
                SweepStep::Expire => {
                    self.staging.delete(&pending.staged_key).await?;
                    if self
                        .store
                        .settle(&pending.wamid, PendingStatus::Expired, None)
                        .await?
                    {
                        swept.expired += 1;
                    }
                }
            }
        }
        tracing::info!(
            reminded = swept.reminded,
            expired = swept.expired,
            "UGC consent sweep done"
        );
        Ok(swept)
    }

    /// A free-form reply on the number the user wrote to (they just wrote: the window is open).
    async fn reply(
        &self,
        routed: &RoutedMessage,
        subject: &str,
        version: &str,
        body: String,
    ) -> Result<(), QueueError> {
        self.outbound
            .enqueue(&[OutboundRequest {
                v: OUTBOUND_VERSION,
                key: SendKey {
                    flow: MessageFlow::UgcIntake,
                    subject: subject.to_owned(),
                    version: version.to_owned(),
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
                actor: Some("system".into()),
                requested_at_ms: now_ms(),
            }])
            .await
    }
}

//! Flow 2, field media ingest: a field contributor's photo, video or document is streamed from
//! WhatsApp into the staging bucket, verified (size cap, the webhook's sha256, the sniffed type
//! against the declared one and the allow list, a safe file name, the malware scan when it is
//! on), uploaded to the DAM streamed from S3 with its metadata, routed by project tag, and
//! acknowledged by one receipt per burst. A location pin and `project <TAG>` are remembered for
//! the media around them.
//!
//! Exactly once per wamid: a claim keeps two deliveries from working at once, and a progress
//! record lets a retry resume where the last attempt stopped (after staging: no second download;
//! after an upload whose answer was lost: the DAM is searched for the wamid before uploading again).
//!
//! One receipt per burst: each filed item joins its contributor's open burst and schedules the
//! burst's receipt on a delay queue, `receipt_window` later. The first scheduled receipt to fire
//! closes the burst (items filed later open the next one) and lists everything in it; the others
//! find it closed and queue the same send key, which the one sender sends once.

use crate::adapters::field_ingest_store::{BurstEntry, DynamoFieldIngestStore, Progress};
use crate::adapters::orange_logic::{
    FieldUpdate, NewMedia, OrangeLogicClient, OrangeLogicError, SearchQuery, field_text,
};
use crate::adapters::staging::{HEAD_BYTES, S3Staging, ScanVerdict, StagingError};
use crate::adapters::whatsapp::client::WhatsAppClient;
use crate::adapters::whatsapp::media::{ExpectedMedia, MediaCaps, MediaError};
use crate::connector_config::{FieldIngestRouting, IngestFields, TemplateUse};
use crate::domain::contact::{Contact, WhatsAppAddress};
use crate::domain::field_ingest::{
    self as rules, FiledItem, GeoPoint, ProjectCommand, ProjectTag, Refusal,
};
use crate::domain::outbound::{
    MessageFlow, OUTBOUND_VERSION, OutboundRequest, RoutedMessage, SendFrom, SendKey,
    TemplateMessage,
};
use crate::error::Retryable;
use crate::ports::{
    Claim, ContactDirectory, IdempotencyStore, OutboundQueue, OwnerToken, QueueError, StoreError,
};
use crate::pseudonym::UserPseudonym;
use crate::whatsapp::messages::{Content, MediaKind, TemplateParam};
use crate::whatsapp::webhook_types::{InboundMedia, InboundMessage, MessageContent};
use futures::StreamExt;
use serde::{Deserialize, Serialize};
use std::fmt;
use std::sync::Arc;
use std::time::Duration;

/// Settings of the flow.
#[derive(Debug, Clone)]
pub struct IngestSettings {
    /// Folders, workflows, allowed types and the size cap.
    pub routing: FieldIngestRouting,
    /// Where each piece of metadata goes.
    pub fields: IngestFields,
    /// The DAM's project tag field.
    pub project_field: String,
    /// The DAM's workflow status field.
    pub status_field: String,
    /// Upload only objects GuardDuty tagged `NO_THREATS_FOUND`.
    pub malware_scan: bool,
    /// How long to wait for the scan's verdict before failing closed.
    pub scan_wait: Duration,
    /// How often the verdict is looked for.
    pub scan_poll: Duration,
    /// Media filed within this window share one receipt.
    pub receipt_window: Duration,
    /// A location pin this close in time to a media item is its location.
    pub location_window_ms: i64,
    /// `UploadMode` of uploads.
    pub upload_mode: String,
}

impl IngestSettings {
    /// Defaults around the configuration's routing and fields.
    pub fn new(routing: FieldIngestRouting, fields: IngestFields) -> Self {
        Self {
            routing,
            fields,
            project_field: "CoreField.ProjectTag".into(),
            status_field: "CoreField.Status".into(),
            malware_scan: false,
            scan_wait: Duration::from_secs(60),
            scan_poll: Duration::from_millis(500),
            receipt_window: Duration::from_secs(20),
            location_window_ms: 5 * 60 * 1000,
            upload_mode: "ProcessFullyInBackground".into(),
        }
    }
}

/// The receipt a burst is owed, on the delay queue.
#[derive(Clone, Serialize, Deserialize)]
pub struct ReceiptDue {
    /// The burst.
    pub burst: String,
    /// The contributor.
    pub user: UserPseudonym,
    /// Where the receipt goes (personal data: the queue is encrypted, logs show the pseudonym).
    pub reply_address: WhatsAppAddress,
    /// The number they wrote to.
    pub number: String,
}

impl fmt::Debug for ReceiptDue {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ReceiptDue")
            .field("burst", &self.burst)
            .field("user", &self.user)
            .finish_non_exhaustive()
    }
}

/// The delay queue receipts wait on (an SQS standard queue: FIFO queues cannot delay one message).
#[derive(Debug, Clone)]
pub struct ReceiptQueue {
    client: aws_sdk_sqs::Client,
    url: String,
}

impl ReceiptQueue {
    /// Wraps a client and the queue URL.
    pub fn new(client: aws_sdk_sqs::Client, url: impl Into<String>) -> Self {
        Self {
            client,
            url: url.into(),
        }
    }

    /// Schedules `due` to arrive `delay` from now (SQS caps the delay at 15 minutes).
    pub async fn schedule(&self, due: &ReceiptDue, delay: Duration) -> Result<(), QueueError> {
        let body = serde_json::to_string(due).map_err(|e| QueueError::Rejected {
            reason: e.to_string(),
        })?;
        let seconds = i32::try_from(delay.as_secs().min(900)).unwrap_or(900);
        self.client
            .send_message()
            .queue_url(&self.url)
            .message_body(body)
            .delay_seconds(seconds)
            .send()
            .await
            .map_err(|e| QueueError::Unavailable(Box::new(e)))?;
        Ok(())
    }
}

/// Why a message could not be handled (refusals are not errors: the sender is told).
#[derive(Debug, thiserror::Error)]
pub enum IngestError {
    /// Another delivery of the same message is being handled.
    #[error("another delivery of this message is being handled")]
    HeldElsewhere,
    /// The message is not one this flow takes.
    #[error("the message is not field media, a location or a project command")]
    NotFieldMessage,
    /// The message is malformed.
    #[error("the routed message cannot be read")]
    Malformed(#[source] serde_json::Error),
    /// Graph.
    #[error("the media could not be downloaded")]
    Media(#[source] MediaError),
    /// S3.
    #[error("the staging bucket failed")]
    Staging(#[from] StagingError),
    /// The DAM.
    #[error("the DAM failed")]
    Dam(#[from] OrangeLogicError),
    /// DynamoDB.
    #[error("a store failed")]
    Store(#[from] StoreError),
    /// SQS.
    #[error("a queue failed")]
    Queue(#[from] QueueError),
    /// The scan has not answered and this invocation has no time left to wait.
    #[error("the malware scan has not answered yet")]
    ScanPending,
}

impl Retryable for IngestError {
    fn is_retryable(&self) -> bool {
        match self {
            Self::HeldElsewhere | Self::ScanPending => true,
            Self::NotFieldMessage | Self::Malformed(_) => false,
            Self::Media(e) => e.is_retryable(),
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
    /// Filed as this asset (now or by an earlier delivery).
    Filed(String),
    /// Refused; the sender was told why.
    Refused(Refusal),
    /// A location pin was recorded.
    Located,
    /// The contributor's project was set or cleared.
    ProjectSet,
    /// A later delivery of a message already handled.
    Duplicate,
}

/// The flow's dependencies.
#[derive(Debug)]
pub struct FieldIngest<I, D, O> {
    /// Claims on wamids.
    pub claims: I,
    /// The contact directory.
    pub directory: D,
    /// `outbound.fifo`.
    pub outbound: O,
    /// Progress, bursts and locations.
    pub store: DynamoFieldIngestStore,
    /// The staging bucket.
    pub staging: S3Staging,
    /// Graph (media download).
    pub graph: WhatsAppClient,
    /// The DAM.
    pub dam: Arc<OrangeLogicClient>,
    /// The receipts' delay queue.
    pub receipts: ReceiptQueue,
    /// Settings.
    pub settings: IngestSettings,
}

/// Claims and progress records are kept 8 days: Meta redelivers for up to 7.
const KEEP_SECONDS: i64 = 8 * 24 * 3600;

fn unix_now() -> i64 {
    time::OffsetDateTime::now_utc().unix_timestamp()
}

fn iso(ms: i64) -> String {
    time::OffsetDateTime::from_unix_timestamp(ms / 1000)
        .ok()
        .and_then(|t| {
            t.format(&time::format_description::well_known::Rfc3339)
                .ok()
        })
        .unwrap_or_default()
}

impl<I, D, O> FieldIngest<I, D, O>
where
    I: IdempotencyStore,
    D: ContactDirectory,
    O: OutboundQueue,
{
    /// Handles one message of the field-ingest queue; `claim_deadline` is the invocation's, Unix seconds.
    pub async fn handle(
        &self,
        routed: &RoutedMessage,
        claim_deadline: i64,
    ) -> Result<Outcome, IngestError> {
        let message: InboundMessage =
            serde_json::from_str(routed.item.get()).map_err(IngestError::Malformed)?;
        let sent_at_ms = message
            .timestamp
            .as_deref()
            .and_then(|t| t.parse::<i64>().ok())
            .map_or(routed.received_at_ms, |s| s * 1000);
        match &message.content {
            MessageContent::Image(media) => {
                self.media(routed, MediaKind::Image, media, sent_at_ms, claim_deadline)
                    .await
            }
            MessageContent::Video(media) => {
                self.media(routed, MediaKind::Video, media, sent_at_ms, claim_deadline)
                    .await
            }
            MessageContent::Document(media) => {
                self.media(
                    routed,
                    MediaKind::Document,
                    media,
                    sent_at_ms,
                    claim_deadline,
                )
                .await
            }
            MessageContent::Location(location) => {
                let point = GeoPoint {
                    latitude: location.latitude,
                    longitude: location.longitude,
                };
                if !point.is_valid() {
                    return Err(IngestError::NotFieldMessage);
                }
                self.store
                    .record_location(routed.user.as_str(), &routed.number, point, sent_at_ms)
                    .await?;
                tracing::info!(user = %routed.user, "location pin recorded for field media");
                Ok(Outcome::Located)
            }
            MessageContent::Text(text) => match rules::project_command(&text.body) {
                Some(command) => self.set_project(routed, command).await,
                None => Err(IngestError::NotFieldMessage),
            },
            _ => Err(IngestError::NotFieldMessage),
        }
    }

    async fn set_project(
        &self,
        routed: &RoutedMessage,
        command: ProjectCommand,
    ) -> Result<Outcome, IngestError> {
        let mut contact = self
            .directory
            .get(&routed.user)
            .await?
            .unwrap_or_else(|| Contact::new(routed.user.clone()));
        let (tag, text) = match &command {
            ProjectCommand::Set(tag) => {
                let folder = rules::place(Some(tag), &self.settings.routing).folder;
                (
                    Some(tag.as_str().to_owned()),
                    format!(
                        "Project set to {tag}. Media you send without a #tag now go to {folder}."
                    ),
                )
            }
            ProjectCommand::Clear => (
                None,
                format!(
                    "Project cleared. Media you send without a #tag now go to {}.",
                    self.settings.routing.default_folder
                ),
            ),
        };
        contact.project_tag = tag;
        self.directory.put(&contact).await?;
        self.reply(routed, &routed.key, "project", text).await?;
        tracing::info!(user = %routed.user, "field contributor's project changed");
        Ok(Outcome::ProjectSet)
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
                    flow: MessageFlow::FieldIngest,
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
                requested_at_ms: unix_now() * 1000,
            }])
            .await
    }

    async fn media(
        &self,
        routed: &RoutedMessage,
        kind: MediaKind,
        media: &InboundMedia,
        sent_at_ms: i64,
        claim_deadline: i64,
    ) -> Result<Outcome, IngestError> {
        let key = format!("fi#{}", routed.key);
        let owner = OwnerToken(crate::crypto::random_hex(16));
        match self
            .claims
            .claim(&key, &owner, unix_now(), claim_deadline)
            .await?
        {
            Claim::Acquired => {}
            Claim::AlreadyDone => return Ok(Outcome::Duplicate),
            Claim::HeldElsewhere => return Err(IngestError::HeldElsewhere),
        }
        match self.ingest(routed, kind, media, sent_at_ms).await {
            Ok(outcome) => {
                self.claims
                    .complete(&key, &owner, unix_now() + KEEP_SECONDS)
                    .await?;
                Ok(outcome)
            }
            Err(error) => {
                if let Err(release) = self.claims.release(&key, &owner).await {
                    tracing::warn!(error = %crate::error::chain(&release), "could not release a field-ingest claim; it lapses at its deadline");
                }
                Err(error)
            }
        }
    }

    async fn refuse(
        &self,
        routed: &RoutedMessage,
        mut progress: Progress,
        refusal: Refusal,
    ) -> Result<Outcome, IngestError> {
        if let Some(key) = progress.staged_key.take() {
            self.staging.delete(&key).await?;
        }
        self.reply(
            routed,
            &routed.key,
            &format!("refused:{}", refusal.code()),
            refusal.reply_text(),
        )
        .await?;
        progress.refused = Some(refusal.code().to_owned());
        self.store
            .save_progress(&routed.key, &progress, unix_now())
            .await?;
        tracing::info!(user = %routed.user, reason = refusal.code(), "field media refused; the sender was told");
        Ok(Outcome::Refused(refusal))
    }

    async fn ingest(
        &self,
        routed: &RoutedMessage,
        kind: MediaKind,
        media: &InboundMedia,
        sent_at_ms: i64,
    ) -> Result<Outcome, IngestError> {
        let mut progress = self.store.progress(&routed.key).await?;
        if progress.refused.is_some() {
            return Ok(Outcome::Duplicate);
        }
        let contact = self.directory.get(&routed.user).await?;
        let original_name = match &media.filename {
            Some(name) => match rules::safe_file_name(name) {
                Ok(name) => Some(name),
                Err(refusal) => return self.refuse(routed, progress, refusal).await,
            },
            None => None,
        };
        let mut head = Vec::new();
        if progress.staged_key.is_none() {
            match self.stage(routed, kind, media).await? {
                Ok((key, bytes, mime, staged_head)) => {
                    progress.staged_key = Some(key);
                    progress.bytes = bytes;
                    progress.mime = Some(mime.to_owned());
                    head = staged_head;
                    self.store
                        .save_progress(&routed.key, &progress, unix_now())
                        .await?;
                }
                Err(refusal) => return self.refuse(routed, progress, refusal).await,
            }
        }
        if progress.asset.is_none() {
            let staged_key = progress.staged_key.clone().unwrap_or_default();
            if self.settings.malware_scan {
                match self.scan(&staged_key).await? {
                    ScanVerdict::Clean => {}
                    ScanVerdict::Threat => {
                        return self.refuse(routed, progress, Refusal::Threat).await;
                    }
                    _ => return self.refuse(routed, progress, Refusal::ScanIncomplete).await,
                }
            }
            let mime = progress.mime.clone().unwrap_or_default();
            let caption = media.caption.as_deref().unwrap_or("");
            let tag = rules::caption_tag(caption).or_else(|| {
                contact
                    .as_ref()
                    .and_then(|c| c.project_tag.as_deref())
                    .and_then(ProjectTag::parse)
            });
            let placement = rules::place(tag.as_ref(), &self.settings.routing);
            let mut location = self.pin_near(routed, sent_at_ms).await?;
            if location.is_none() && mime == "image/jpeg" {
                if head.is_empty() {
                    head = self.staging.head_bytes(&staged_key, HEAD_BYTES).await?;
                }
                location = rules::exif_gps(&head);
            }
            let fields = &self.settings.fields;
            let mut metadata = vec![
                (fields.sender.clone(), routed.user.as_str().to_owned()),
                (fields.received_at.clone(), iso(sent_at_ms)),
                (fields.message_id.clone(), routed.key.clone()),
            ];
            if let Some(name) = contact.as_ref().and_then(|c| c.name.clone()) {
                metadata.push((fields.contributor.clone(), name));
            }
            if !caption.is_empty() {
                metadata.push((fields.caption.clone(), caption.to_owned()));
            }
            if let Some(point) = location {
                metadata.push((fields.location.clone(), point.to_field()));
            }
            if let Some(tag) = &tag {
                metadata.push((self.settings.project_field.clone(), tag.as_str().to_owned()));
            }
            if let Some(workflow) = &placement.workflow {
                metadata.push((self.settings.status_field.clone(), workflow.clone()));
            }
            if let Some(name) = &original_name {
                metadata.push((fields.original_file_name.clone(), name.clone()));
            }
            let digest = crate::crypto::sha256_hex(&[routed.key.as_bytes()]);
            let file_name = format!("wa-{}.{}", &digest[..20], rules::extension(&mime));
            // An earlier attempt may have stored the file and lost the answer: look first.
            let found = if progress.upload_started {
                self.find_upload(routed).await?
            } else {
                None
            };
            let uploaded = match found {
                Some(found) => {
                    tracing::info!(user = %routed.user, "an earlier upload of this media was found in the DAM");
                    found
                }
                None => {
                    progress.upload_started = true;
                    progress.folder = Some(placement.folder.clone());
                    self.store
                        .save_progress(&routed.key, &progress, unix_now())
                        .await?;
                    let folder = self.dam.folder_record_id(&placement.folder).await?;
                    let uploaded = self
                        .dam
                        .upload_new_media(
                            &NewMedia {
                                folder,
                                file_name,
                                metadata,
                                upload_mode: self.settings.upload_mode.clone(),
                            },
                            self.staging.open(&staged_key, progress.bytes),
                        )
                        .await?;
                    (uploaded.identifier, uploaded.record_id)
                }
            };
            progress.located = location.is_some();
            progress.asset = Some(uploaded.0);
            progress.record_id = uploaded.1;
            progress.folder = Some(placement.folder.clone());
            self.store
                .save_progress(&routed.key, &progress, unix_now())
                .await?;
            tracing::info!(user = %routed.user, folder = %placement.folder, "field media filed in the DAM");
            crate::metrics::count(
                crate::domain::outbound::MessageFlow::FieldIngest,
                crate::metrics::Outcome::AssetIngested,
                1,
            );
            // The DAM holds it now; the lifecycle rule would remove it anyway.
            if let Err(error) = self.staging.delete(&staged_key).await {
                tracing::warn!(error = %crate::error::chain(&error), "a filed object stays staged until lifecycle expiry");
            }
        }
        let asset = progress.asset.clone().unwrap_or_default();
        let mime = progress.mime.clone().unwrap_or_default();
        let entry = BurstEntry {
            item: FiledItem {
                asset: asset.clone(),
                folder: progress.folder.clone().unwrap_or_default(),
                kind: rules::kind_word(&mime).to_owned(),
            },
            record_id: progress.record_id.clone(),
            located: progress.located,
            at_ms: sent_at_ms,
        };
        let burst = self
            .store
            .join_burst(
                routed.user.as_str(),
                &routed.number,
                &routed.key,
                &entry,
                unix_now() * 1000,
            )
            .await?;
        self.receipts
            .schedule(
                &ReceiptDue {
                    burst,
                    user: routed.user.clone(),
                    reply_address: routed.reply_address.clone(),
                    number: routed.number.clone(),
                },
                self.settings.receipt_window,
            )
            .await?;
        Ok(Outcome::Filed(asset))
    }

    /// Streams the media into the staging bucket and checks it; a refusal leaves nothing staged.
    #[allow(clippy::type_complexity)]
    async fn stage(
        &self,
        routed: &RoutedMessage,
        kind: MediaKind,
        media: &InboundMedia,
    ) -> Result<Result<(String, u64, &'static str, Vec<u8>), Refusal>, IngestError> {
        let digest = crate::crypto::sha256_hex(&[routed.key.as_bytes()]);
        let key = format!("field/{}/{}", routed.user.as_str(), &digest[..32]);
        stage_media(
            &self.graph,
            &self.staging,
            &key,
            kind,
            media,
            self.settings.routing.max_file_mb,
            &self.settings.routing.allowed_types,
        )
        .await
    }

    /// Waits for the scan's verdict; fails closed when `scan_wait` passes without one.
    async fn scan(&self, key: &str) -> Result<ScanVerdict, IngestError> {
        let started = tokio::time::Instant::now();
        loop {
            let verdict = self.staging.scan_verdict(key).await?;
            if verdict != ScanVerdict::Pending {
                return Ok(verdict);
            }
            if started.elapsed() >= self.settings.scan_wait {
                return Ok(verdict);
            }
            // Leave room for the upload: come back in a later invocation rather than time out.
            if !crate::lambda::deadline::fits(self.settings.scan_poll, Duration::from_secs(20)) {
                return Err(IngestError::ScanPending);
            }
            tokio::time::sleep(self.settings.scan_poll).await;
        }
    }

    async fn pin_near(
        &self,
        routed: &RoutedMessage,
        at_ms: i64,
    ) -> Result<Option<GeoPoint>, IngestError> {
        Ok(self
            .store
            .location(routed.user.as_str(), &routed.number)
            .await?
            .filter(|(_, pinned)| (pinned - at_ms).abs() <= self.settings.location_window_ms)
            .map(|(point, _)| point))
    }

    /// An asset already uploaded for this wamid (an earlier attempt whose answer was lost).
    async fn find_upload(
        &self,
        routed: &RoutedMessage,
    ) -> Result<Option<(String, Option<String>)>, IngestError> {
        Ok(find_uploaded(&self.dam, &self.settings.fields.message_id, &routed.key).await?)
    }

    /// Sends the receipt of a burst: closes it, writes late location pins to its assets, and
    /// queues one message listing every item.
    pub async fn send_receipt(&self, due: &ReceiptDue) -> Result<usize, IngestError> {
        let Some(burst) = self.store.close_burst(&due.burst).await? else {
            return Ok(0);
        };
        if burst.entries.is_empty() {
            return Ok(0);
        }
        let pin = self.store.location(&burst.user, &burst.number).await?;
        for (_, entry) in &burst.entries {
            if let (false, Some(record_id), Some((point, pinned))) =
                (entry.located, &entry.record_id, pin)
                && (pinned - entry.at_ms).abs() <= self.settings.location_window_ms
            {
                self.dam
                    .update_record(
                        record_id,
                        &[FieldUpdate::set(
                            self.settings.fields.location.clone(),
                            point.to_field(),
                        )],
                    )
                    .await?;
            }
        }
        let items: Vec<FiledItem> = burst.entries.iter().map(|(_, e)| e.item.clone()).collect();
        let values = rules::receipt_template_values(&items);
        self.outbound
            .enqueue(&[OutboundRequest {
                v: OUTBOUND_VERSION,
                key: SendKey {
                    flow: MessageFlow::FieldIngest,
                    subject: format!("burst:{}", due.burst),
                    version: "receipt".into(),
                    recipient: due.user.clone(),
                },
                to: due.reply_address.clone(),
                from: SendFrom::Number(due.number.clone()),
                content: Some(Content::Text {
                    body: rules::receipt_text(&items),
                    preview_url: false,
                }),
                template: Some(TemplateMessage {
                    template: TemplateUse::Receipt,
                    header: None,
                    body: values.into_iter().map(TemplateParam::text).collect(),
                    buttons: Vec::new(),
                }),
                reply_to: None,
                actor: Some("system".into()),
                requested_at_ms: unix_now() * 1000,
            }])
            .await?;
        tracing::info!(user = %due.user, items = items.len(), "field media receipt queued");
        Ok(items.len())
    }
}

/// Streams WhatsApp media into the staging bucket as `key` and checks it (size cap, the
/// webhook's sha256, the sniffed type against the declared one and `allowed_types`): flows 2 and
/// 6 stage through it. A refusal leaves nothing staged. `Ok(Ok(key, bytes, type, head))`.
#[allow(clippy::type_complexity)]
pub async fn stage_media(
    graph: &WhatsAppClient,
    staging: &S3Staging,
    key: &str,
    kind: MediaKind,
    media: &InboundMedia,
    max_file_mb: u64,
    allowed_types: &[String],
) -> Result<Result<(String, u64, &'static str, Vec<u8>), Refusal>, IngestError> {
    let cap = max_file_mb * 1024 * 1024;
    let caps = MediaCaps {
        image: cap,
        video: cap,
        audio: cap,
        document: cap,
        sticker: cap,
    };
    let mut sink = staging.sink(key);
    let expected = ExpectedMedia {
        media_id: media.id.clone(),
        kind,
        sha256_base64: media.sha256.clone(),
    };
    let downloaded = graph.download_media(&expected, &caps, &mut sink).await;
    let refusal = match &downloaded {
        Ok(_) => None,
        Err(MediaError::TooLarge { .. }) => Some(Refusal::TooLarge {
            cap_mb: max_file_mb,
        }),
        Err(MediaError::ChecksumMismatch | MediaError::MalformedChecksum) => {
            Some(Refusal::ChecksumMismatch)
        }
        Err(MediaError::SizeMismatch { declared, received }) if received > declared => {
            Some(Refusal::ChecksumMismatch)
        }
        Err(_) => None,
    };
    let verdict = match (downloaded, refusal) {
        (_, Some(refusal)) => Err(refusal),
        (Err(error), None) => {
            sink.abort().await;
            return Err(IngestError::Media(error));
        }
        (Ok(_), None) => rules::check_type(
            media.mime_type.as_deref(),
            rules::sniff(sink.head()),
            allowed_types,
        ),
    };
    match verdict {
        Err(refusal) => {
            sink.abort().await;
            Ok(Err(refusal))
        }
        Ok(mime) => {
            let staged = sink.finish().await?;
            Ok(Ok((key.to_owned(), staged.bytes, mime, staged.head)))
        }
    }
}

/// The asset (identifier, RecordID) an earlier upload of the message `wamid` made, searched by
/// the message id field: flows 2 and 6 look before uploading again after a lost answer.
pub async fn find_uploaded(
    dam: &OrangeLogicClient,
    message_id_field: &str,
    wamid: &str,
) -> Result<Option<(String, Option<String>)>, OrangeLogicError> {
    let query = SearchQuery {
        query: format!("{message_id_field}:\"{wamid}\""),
        fields: vec!["CoreField.Identifier".into(), "RecordID".into()],
        per_page: 2,
        sort: None,
    };
    let mut pages = std::pin::pin!(dam.search(query));
    if let Some(page) = pages.next().await {
        let page = page?;
        if let Some(record) = page.items.first()
            && let Some(identifier) = field_text(record, "CoreField.Identifier")
            && !identifier.is_empty()
        {
            return Ok(Some((identifier, field_text(record, "RecordID"))));
        }
    }
    Ok(None)
}

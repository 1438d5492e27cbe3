//! Flow 5, governed sharing: a rep in the directory writes `share <asset id or words> to <number>`
//! on a sharing number (or calls `POST /share`). Words matching several assets get a list; the
//! pick comes back as a button id. Only an approved, current, unexpired, brand-compliant asset
//! cleared for external use goes, to a recipient who opted in; otherwise the rep is told which
//! rule failed. The recipient gets the file (a link when it passes WhatsApp's media limits) with
//! a note naming the rep; the share is appended to the audit (track-delivery adds sent,
//! delivered and read), and written on the asset's comment log as a usage entry. The rules are
//! `domain::sharing`.

use crate::adapters::orange_logic::{OrangeLogicClient, Record, SearchQuery, field_text};
use crate::connector_config::{ConnectorConfig, DamConcept, TemplateUse};
use crate::domain::contact::{Contact, Role, WhatsAppAddress};
use crate::domain::dam::DamDates;
use crate::domain::outbound::{
    ButtonId, FlowQueueMessage, MessageFlow, OUTBOUND_VERSION, OutboundRequest, RoutedMessage,
    SendFrom, SendKey, TemplateMessage,
};
use crate::domain::sharing::{
    self, AssetFacts, AssetRef, AuditRecord, MAX_CHOICES, PICK, Refusal, Rules, ShareCommand,
};
use crate::flows::dam_log;
use crate::flows::review_request::TITLE_FIELD;
use crate::metrics::{self, Outcome};
use crate::ports::{
    BusinessNumberId, ContactDirectory, ConversationStore, IdempotencyStore, OutboundQueue,
    SharingAudit,
};
use crate::pseudonym::{Pseudonymizer, UserPseudonym};
use crate::whatsapp::messages::{
    Content, ListMessage, ListRow, ListSection, MediaKind, MediaMessage, MediaSource, TemplateParam,
};
use crate::whatsapp::webhook_types::{InboundMessage, MessageContent};
use futures::StreamExt;
use std::sync::Arc;

/// The conversation state holding the recipient of a request answered with a list:
/// `share-to:<request wamid>:<address>`.
const PENDING: &str = "share-to:";

/// Fields and values the rules read, from the connector configuration.
#[derive(Debug, Clone)]
pub struct ShareSettings {
    /// Status field.
    pub status_field: String,
    /// File version field.
    pub version_field: String,
    /// Expiry date field.
    pub expiry_field: String,
    /// Brand-compliance field.
    pub brand_field: String,
    /// The newer-asset field (old versions).
    pub superseded_field: String,
    /// External-use clearance field.
    pub external_field: String,
    /// Words are matched against this field.
    pub keywords_field: String,
    /// File size in bytes.
    pub size_field: String,
    /// Comment log (the usage entry).
    pub comments_field: String,
    /// GetLink format.
    pub link_format: String,
    /// Links stay valid this long, seconds.
    pub link_seconds: i64,
    /// The rules' values.
    pub rules: Rules,
    /// How the instance writes dates.
    pub dates: DamDates,
}

impl ShareSettings {
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
        let sharing = &config.sharing;
        let lower = |values: &[String]| values.iter().map(|v| v.trim().to_lowercase()).collect();
        Self {
            status_field: field(DamConcept::Status),
            version_field: config.dam.version_field.clone(),
            expiry_field: field(DamConcept::ExpiryDate),
            brand_field: field(DamConcept::BrandCompliance),
            superseded_field: sharing.superseded_by_field.clone(),
            external_field: sharing.external_use_field.clone(),
            keywords_field: sharing.keywords_field.clone(),
            size_field: sharing.file_size_field.clone(),
            comments_field: field(DamConcept::Comments),
            link_format: sharing.link_format.clone(),
            link_seconds: i64::from(sharing.link_hours.max(1)) * 3600,
            rules: Rules {
                approved: config.dam.status_values.approved.clone(),
                brand_non_compliant: lower(&config.dam.brand_non_compliant_values),
                external_cleared: lower(&sharing.external_use_values),
            },
            dates: DamDates::from_settings(&config.dam.dates).unwrap_or_default(),
        }
    }
}

/// What the flow needs.
#[derive(Debug)]
pub struct ShareFlow<D, C, A, O, L> {
    /// The contact directory (reps, recipients' opt-in).
    pub directory: D,
    /// Conversation state (a list's pending recipient).
    pub conversations: C,
    /// The sharing audit.
    pub audit: A,
    /// `outbound.fifo`.
    pub outbound: O,
    /// Per-asset comment leases.
    pub leases: L,
    /// The DAM.
    pub dam: Arc<OrangeLogicClient>,
    /// Pseudonyms of recipients.
    pub pseudonyms: Pseudonymizer,
    /// Fields and values.
    pub settings: ShareSettings,
}

/// What handling one request did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Handled {
    /// The asset was queued for the recipient and audited.
    Shared,
    /// The same request again: nothing new was sent.
    AlreadyShared,
    /// A list of matching assets was sent to the rep.
    Choices(usize),
    /// Refused; the rep was told why (the rule's code).
    Refused(&'static str),
    /// Nothing to do, and why.
    Ignored(&'static str),
}

/// A share that could not be handled: the same failures as a review answer's (a DAM call, a
/// table, `outbound.fifo`, the comment log, an unknown business number).
pub type ShareError = crate::flows::review_request::ReviewError;

/// A share request from either edge, already authenticated.
#[derive(Debug, Clone)]
pub struct ShareRequest {
    /// The rep.
    pub rep: UserPseudonym,
    /// Where answers to the rep go (`None` for an API call: the answer is the response).
    pub reply: Option<Reply>,
    /// The request's own id (the wamid, or the API's idempotency key): the same id shares once.
    pub request_id: String,
    /// The sending number (`phone_number_id`).
    pub number: String,
    /// When it was received, Unix ms.
    pub at_ms: i64,
}

/// Where and how the rep is answered on WhatsApp.
#[derive(Debug, Clone)]
pub struct Reply {
    /// The rep's address.
    pub address: WhatsAppAddress,
}

/// The outcome of a request, with what the rep is told.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Answer {
    /// What happened.
    pub handled: Handled,
    /// The text the rep gets.
    pub text: String,
}

impl<D, C, A, O, L> ShareFlow<D, C, A, O, L>
where
    D: ContactDirectory,
    C: ConversationStore,
    A: SharingAudit,
    O: OutboundQueue,
    L: IdempotencyStore,
{
    /// Handles one message of the sharing queue: a rep's command, or their pick from a list.
    pub async fn handle(&self, message: &FlowQueueMessage) -> Result<Handled, ShareError> {
        let FlowQueueMessage::Answer(routed) = message else {
            return Ok(Handled::Ignored("not a message from a rep"));
        };
        let request = ShareRequest {
            rep: routed.user.clone(),
            reply: Some(Reply {
                address: routed.reply_address.clone(),
            }),
            request_id: routed.key.clone(),
            number: routed.number.clone(),
            at_ms: routed.received_at_ms,
        };
        if let Some(button) = routed.button.as_deref().and_then(ButtonId::decode) {
            if button.flow != MessageFlow::Sharing || button.action != PICK {
                return Ok(Handled::Ignored("a button this flow does not make"));
            }
            return self.pick(routed, &request, &button).await;
        }
        let message: Option<InboundMessage> = serde_json::from_str(routed.item.get()).ok();
        let Some(MessageContent::Text(text)) = message.as_ref().map(|m| &m.content) else {
            return Ok(Handled::Ignored("not a text"));
        };
        let answer = self.command(&request, &text.body).await?;
        self.tell(&request, &answer).await?;
        Ok(answer.handled)
    }

    /// A share command's text (from WhatsApp or the API): the share, a list, or a refusal.
    pub async fn command(&self, request: &ShareRequest, text: &str) -> Result<Answer, ShareError> {
        let Some(rep) = self.rep(&request.rep).await? else {
            return Ok(refused(
                "not_a_rep",
                "Only reps in the directory may share assets.".into(),
            ));
        };
        let command = match sharing::parse_command(text) {
            Ok(command) => command,
            Err(error) => return Ok(refused("bad_command", error.text().into())),
        };
        let ShareCommand { asset, to } = command;
        let words = match asset {
            AssetRef::IdOrWord(token) => match self.dam.read_asset(&token).await? {
                Some(record) => return self.share(request, &rep, &record, &token, &to).await,
                None => vec![token],
            },
            AssetRef::Words(words) => words,
        };
        let found = self.search(&words).await?;
        match found.as_slice() {
            [] => Ok(refused(
                Refusal::NotFound.code(),
                Refusal::NotFound.text("", &words.join(" ")),
            )),
            [(id, _)] => match self.dam.read_asset(id).await? {
                Some(record) => self.share(request, &rep, &record, id, &to).await,
                None => Ok(refused(
                    Refusal::NotFound.code(),
                    Refusal::NotFound.text("", id),
                )),
            },
            several => self.offer(request, several, &to).await,
        }
    }

    async fn rep(&self, who: &UserPseudonym) -> Result<Option<Contact>, ShareError> {
        Ok(self
            .directory
            .get(who)
            .await?
            .filter(|c| c.has_role(Role::Rep) && !c.is_opted_out()))
    }

    /// Assets whose keywords hold every word: (RecordID, title), at most one more than a list holds.
    async fn search(&self, words: &[String]) -> Result<Vec<(String, String)>, ShareError> {
        let query = words
            .iter()
            .map(|w| {
                format!(
                    "{}:\"{}\"",
                    self.settings.keywords_field,
                    w.replace('"', "")
                )
            })
            .collect::<Vec<_>>()
            .join(" AND ");
        let search = SearchQuery {
            query,
            fields: vec!["RecordID".into(), TITLE_FIELD.into()],
            per_page: (MAX_CHOICES + 1) as u8,
            sort: None,
        };
        let mut pages = std::pin::pin!(self.dam.search(search));
        let Some(page) = pages.next().await else {
            return Ok(Vec::new());
        };
        Ok(page?
            .items
            .iter()
            .filter_map(|item| {
                let id = field_text(item, "RecordID")?;
                Some((id, text_of(item, TITLE_FIELD)))
            })
            .collect())
    }

    /// Several matches: a list to pick from; the recipient waits in the conversation state.
    async fn offer(
        &self,
        request: &ShareRequest,
        found: &[(String, String)],
        to: &WhatsAppAddress,
    ) -> Result<Answer, ShareError> {
        let Some(reply) = &request.reply else {
            let ids: Vec<&str> = found.iter().map(|(id, _)| id.as_str()).collect();
            return Ok(Answer {
                handled: Handled::Choices(found.len()),
                text: format!("Several assets match; share one by id: {}", ids.join(", ")),
            });
        };
        let number = BusinessNumberId::parse(&request.number).ok_or(ShareError::BadNumber)?;
        let state = format!("{PENDING}{}:{}", request.request_id, to.expose());
        self.conversations
            .set_state(&request.rep, &number, Some(&state))
            .await?;
        let rows: Vec<ListRow> = found
            .iter()
            .take(MAX_CHOICES)
            .filter_map(|(id, title)| {
                let row_id = ButtonId {
                    flow: MessageFlow::Sharing,
                    action: PICK.into(),
                    subject: id.clone(),
                    version: request.request_id.clone(),
                }
                .encode()?;
                Some(ListRow {
                    id: row_id,
                    title: title.chars().take(24).collect(),
                    description: Some(id.chars().take(72).collect()),
                })
            })
            .collect();
        let count = rows.len();
        let list = Content::List(ListMessage {
            header: None,
            body: format!(
                "{count} assets match. Which one should go?{}",
                if found.len() > MAX_CHOICES {
                    " (the first 10 are shown; use more words to narrow it down)"
                } else {
                    ""
                }
            ),
            footer: None,
            button: "Choose an asset".into(),
            sections: vec![ListSection { title: None, rows }],
        });
        let send = self.to_rep(
            request,
            reply,
            "choices",
            format!("#list:{}", request.request_id),
            list,
        );
        self.outbound.enqueue(&[send]).await?;
        tracing::info!(
            matches = count,
            "several assets match a share request; a list was sent"
        );
        Ok(Answer {
            handled: Handled::Choices(count),
            text: String::new(),
        })
    }

    /// The rep picked an asset from the list.
    async fn pick(
        &self,
        routed: &RoutedMessage,
        request: &ShareRequest,
        button: &ButtonId,
    ) -> Result<Handled, ShareError> {
        let number = BusinessNumberId::parse(&routed.number).ok_or(ShareError::BadNumber)?;
        let state = self
            .conversations
            .get(&routed.user, &number)
            .await?
            .and_then(|c| c.state);
        let pending = state
            .as_deref()
            .and_then(|s| s.strip_prefix(PENDING))
            .and_then(|s| s.split_once(':'))
            .filter(|(request_id, _)| *request_id == button.version)
            .and_then(|(_, address)| WhatsAppAddress::parse(address).ok());
        // The pick shares under the original request's id: a second tap is the same share.
        let request = ShareRequest {
            request_id: button.version.clone(),
            ..request.clone()
        };
        let answer = match pending {
            None => refused(
                "stale_pick",
                "That list is no longer open; please send the share command again.".into(),
            ),
            Some(to) => match self.rep(&routed.user).await? {
                None => refused(
                    "not_a_rep",
                    "Only reps in the directory may share assets.".into(),
                ),
                Some(rep) => match self.dam.read_asset(&button.subject).await? {
                    Some(record) => {
                        self.share(&request, &rep, &record, &button.subject, &to)
                            .await?
                    }
                    None => refused(
                        Refusal::NotFound.code(),
                        Refusal::NotFound.text("", &button.subject),
                    ),
                },
            },
        };
        self.tell(&request, &answer).await?;
        Ok(answer.handled)
    }

    fn facts(&self, id: &str, record: &Record) -> AssetFacts {
        let value = |field: &str| {
            if field.is_empty() {
                String::new()
            } else {
                field_text(record, field)
                    .map(|v| v.trim().to_owned())
                    .unwrap_or_default()
            }
        };
        let expiry = value(&self.settings.expiry_field);
        let expires = (!expiry.is_empty()).then(|| self.settings.dates.parse(&expiry));
        AssetFacts {
            id: id.to_owned(),
            title: text_of(record, TITLE_FIELD),
            status: value(&self.settings.status_field),
            version: Some(value(&self.settings.version_field))
                .filter(|v| !v.is_empty())
                .unwrap_or_else(|| "current".into())
                .replace('|', "/"),
            superseded_by: value(&self.settings.superseded_field),
            expires_at_s: expires.flatten().map(|at| at.unix_seconds()),
            unreadable_expiry: matches!(expires, Some(None)).then(|| expiry.clone()),
            brand: value(&self.settings.brand_field),
            external_use: value(&self.settings.external_field),
            size_bytes: value(&self.settings.size_field).parse().ok(),
        }
    }

    /// The rules, the recipient's consent, then the send, the audit record and the usage entry.
    async fn share(
        &self,
        request: &ShareRequest,
        rep: &Contact,
        record: &Record,
        id: &str,
        to: &WhatsAppAddress,
    ) -> Result<Answer, ShareError> {
        let asset = self.facts(id, record);
        if let Err(refusal) = sharing::check(&asset, &self.settings.rules, request.at_ms / 1000) {
            metrics::count_reason(MessageFlow::Sharing, Outcome::Failed, refusal.code(), 1);
            return Ok(refused(refusal.code(), refusal.text(&asset.title, id)));
        }
        let recipient = self.pseudonyms.pseudonym(to.expose());
        let consent = self.directory.get(&recipient).await?;
        let refusal = match &consent {
            Some(c) if c.is_opted_out() => Some(Refusal::RecipientOptedOut),
            Some(c) if c.opted_in.is_some() => None,
            _ => Some(Refusal::RecipientNotOptedIn),
        };
        if let Some(refusal) = refusal {
            metrics::count_reason(MessageFlow::Sharing, Outcome::Failed, refusal.code(), 1);
            return Ok(refused(refusal.code(), refusal.text(&asset.title, id)));
        }
        let rep_name = rep
            .name
            .clone()
            .filter(|n| !n.trim().is_empty())
            .unwrap_or_else(|| "A colleague".into());
        let key = SendKey {
            flow: MessageFlow::Sharing,
            subject: id.to_owned(),
            version: format!("{}#{}", asset.version, request.request_id),
            recipient: recipient.clone(),
        };
        let audit = AuditRecord {
            send_key: key.encode(),
            asset: id.to_owned(),
            version: asset.version.clone(),
            rep: rep_name.clone(),
            rep_pseudonym: request.rep.as_str().to_owned(),
            recipient: recipient.as_str().to_owned(),
            requested_at_ms: request.at_ms,
            message_id: None,
            sent_at_ms: None,
            delivered_at_ms: None,
            read_at_ms: None,
        };
        // The record first, so track-delivery always finds it; a redelivery finds it there and
        // the same send key is sent once by the sender.
        let new = self.audit.append(&audit).await?;
        let until_s = request.at_ms / 1000 + self.settings.link_seconds;
        let until = jiff::Timestamp::from_second(until_s).unwrap_or(jiff::Timestamp::MAX);
        let link = self
            .dam
            .share_link(
                id,
                &self.settings.link_format,
                &until.strftime("%Y-%m-%dT%H:%M:%S").to_string(),
            )
            .await?
            .url;
        let until_text = until.strftime("%Y-%m-%d %H:%M UTC").to_string();
        let content = if sharing::send_as_link(asset.size_bytes) {
            Content::Text {
                body: sharing::link_note(
                    &rep_name,
                    &asset.title,
                    &asset.version,
                    &link,
                    &until_text,
                ),
                preview_url: false,
            }
        } else {
            Content::Media(MediaMessage {
                kind: MediaKind::Document,
                source: MediaSource::Link(link.clone()),
                caption: Some(sharing::note(&rep_name, &asset.title, &asset.version)),
                filename: Some(file_name(&asset.title)),
            })
        };
        let send = OutboundRequest {
            v: OUTBOUND_VERSION,
            key,
            to: to.clone(),
            from: SendFrom::Number(request.number.clone()),
            content: Some(content),
            template: Some(TemplateMessage {
                template: TemplateUse::AssetShare,
                header: None,
                body: vec![
                    TemplateParam::text(rep_name.clone()),
                    TemplateParam::text(asset.title.clone()),
                    TemplateParam::text(asset.version.clone()),
                    TemplateParam::text(link),
                    TemplateParam::text(until_text),
                ],
                buttons: Vec::new(),
            }),
            reply_to: None,
            actor: Some(request.rep.as_str().to_owned()),
            requested_at_ms: request.at_ms,
        };
        self.outbound.enqueue(&[send]).await?;
        let line =
            sharing::usage_line(&rep_name, recipient.as_str(), &asset.version, request.at_ms);
        if !self.settings.comments_field.is_empty() {
            dam_log::with_lease(&self.leases, id, || async {
                self.dam
                    .append_to_field(id, &self.settings.comments_field, &line)
                    .await
            })
            .await?;
        }
        tracing::info!(asset = id, new, "asset shared");
        Ok(Answer {
            handled: if new {
                Handled::Shared
            } else {
                Handled::AlreadyShared
            },
            text: sharing::confirmation(&asset.title, &asset.version),
        })
    }

    /// Sends the answer's text to the rep on WhatsApp (nothing for an API call or a list).
    async fn tell(&self, request: &ShareRequest, answer: &Answer) -> Result<(), ShareError> {
        let Some(reply) = &request.reply else {
            return Ok(());
        };
        if answer.text.is_empty() {
            return Ok(());
        }
        let tag = match &answer.handled {
            Handled::Refused(code) => *code,
            _ => "done",
        };
        let send = self.to_rep(
            request,
            reply,
            "answer",
            format!("#{tag}:{}", request.request_id),
            Content::Text {
                body: answer.text.clone(),
                preview_url: false,
            },
        );
        self.outbound.enqueue(&[send]).await?;
        Ok(())
    }

    fn to_rep(
        &self,
        request: &ShareRequest,
        reply: &Reply,
        subject: &str,
        version: String,
        content: Content,
    ) -> OutboundRequest {
        OutboundRequest {
            v: OUTBOUND_VERSION,
            key: SendKey {
                flow: MessageFlow::Sharing,
                subject: subject.to_owned(),
                version,
                recipient: request.rep.clone(),
            },
            to: reply.address.clone(),
            from: SendFrom::Number(request.number.clone()),
            content: Some(content),
            template: None,
            reply_to: Some(request.request_id.clone()).filter(|id| id.starts_with("wamid.")),
            actor: Some(request.rep.as_str().to_owned()),
            requested_at_ms: request.at_ms,
        }
    }
}

fn refused(code: &'static str, text: String) -> Answer {
    Answer {
        handled: Handled::Refused(code),
        text,
    }
}

fn text_of(record: &Record, field: &str) -> String {
    field_text(record, field)
        .map(|v| v.trim().to_owned())
        .filter(|v| !v.is_empty())
        .unwrap_or_else(|| "-".into())
}

fn file_name(title: &str) -> String {
    let stem: String = title
        .chars()
        .map(|c| if c.is_alphanumeric() { c } else { '-' })
        .collect();
    let stem = stem.trim_matches('-');
    if stem.is_empty() {
        "asset".into()
    } else {
        stem.to_owned()
    }
}

//! Flow 6's table: pending submissions (`pending#<wamid>`: the staged media waiting for consent),
//! the append-only consent records (`consent#<user>#<campaign>#<answer wamid>`, each written once
//! by a conditional put) and each sender's current consent per campaign (`current#<user>#<campaign>`).

use crate::adapters::dynamodb::{Failure, classify, n, s, store_error};
use crate::domain::contact::WhatsAppAddress;
use crate::domain::ugc::{ConsentAnswer, safe_part};
use crate::ports::StoreError;
use crate::pseudonym::UserPseudonym;
use aws_sdk_dynamodb::types::AttributeValue;
use std::collections::HashMap;

/// Pending items outlive the staged media a little; consent records are kept for years (they
/// prove the right to use the asset) and are never updated.
const PENDING_KEEP_SECONDS: i64 = 30 * 24 * 3600;

/// Where a pending submission stands.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PendingStatus {
    /// Staged, consent asked (or being filed for a consenting sender).
    Asked,
    /// Filed in the DAM.
    Filed,
    /// The sender said No: the media is deleted.
    Declined,
    /// No answer: the media is deleted.
    Expired,
}

impl PendingStatus {
    fn as_str(self) -> &'static str {
        match self {
            Self::Asked => "asked",
            Self::Filed => "filed",
            Self::Declined => "declined",
            Self::Expired => "expired",
        }
    }

    fn parse(text: &str) -> Option<Self> {
        [Self::Asked, Self::Filed, Self::Declined, Self::Expired]
            .into_iter()
            .find(|s| s.as_str() == text)
    }
}

/// A submission held in staging.
#[derive(Clone, PartialEq, Eq)]
pub struct Pending {
    /// The submission's wamid.
    pub wamid: String,
    /// The sender.
    pub user: UserPseudonym,
    /// Where replies go (personal data: the table is encrypted, logs show the pseudonym).
    pub reply_address: WhatsAppAddress,
    /// The number written to.
    pub number: String,
    /// The campaign.
    pub campaign: String,
    /// The DAM's source value.
    pub source: String,
    /// The staged object.
    pub staged_key: String,
    /// Its size.
    pub bytes: u64,
    /// Its sniffed type.
    pub mime: String,
    /// The caption.
    pub caption: String,
    /// When WhatsApp received it, Unix milliseconds.
    pub sent_at_ms: i64,
    /// When consent was asked, Unix seconds.
    pub asked_at: i64,
    /// When the one reminder went, Unix seconds.
    pub reminded_at: Option<i64>,
    /// Where it stands.
    pub status: PendingStatus,
    /// An upload was started (a retry searches the DAM first).
    pub upload_started: bool,
    /// The asset, once filed.
    pub asset: Option<String>,
}

impl std::fmt::Debug for Pending {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Pending")
            .field("wamid", &self.wamid)
            .field("user", &self.user)
            .field("campaign", &self.campaign)
            .field("status", &self.status)
            .finish_non_exhaustive()
    }
}

/// One consent answer, as recorded.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ConsentRecord {
    /// Who (pseudonym).
    pub user: UserPseudonym,
    /// For which campaign.
    pub campaign: String,
    /// The terms version they were shown.
    pub terms_version: String,
    /// The submission asked about.
    pub submission: String,
    /// Our question's wamid (the tap's `context.id`).
    pub asked_message: String,
    /// The tap's wamid.
    pub answer_message: String,
    /// Yes or No.
    pub answer: ConsentAnswer,
    /// When, Unix milliseconds.
    pub at_ms: i64,
}

/// The table.
#[derive(Debug, Clone)]
pub struct DynamoUgcStore {
    client: aws_sdk_dynamodb::Client,
    table: String,
}

fn text(item: &HashMap<String, AttributeValue>, name: &str) -> Option<String> {
    item.get(name)?.as_s().ok().cloned()
}

fn number(item: &HashMap<String, AttributeValue>, name: &str) -> Option<i64> {
    item.get(name)?.as_n().ok()?.parse().ok()
}

fn rejected(reason: impl Into<String>) -> StoreError {
    StoreError::Rejected {
        reason: reason.into(),
    }
}

fn pending_key(wamid: &str) -> AttributeValue {
    s(format!("pending#{wamid}"))
}

fn current_key(user: &UserPseudonym, campaign: &str) -> AttributeValue {
    s(format!("current#{}#{}", user.as_str(), safe_part(campaign)))
}

fn pseudonym(value: String) -> Result<UserPseudonym, StoreError> {
    serde_json::from_value(serde_json::Value::String(value))
        .map_err(|e| rejected(format!("unreadable pseudonym: {e}")))
}

fn from_item(item: &HashMap<String, AttributeValue>) -> Result<Pending, StoreError> {
    let get =
        |name: &str| text(item, name).ok_or_else(|| rejected(format!("pending without {name}")));
    Ok(Pending {
        wamid: get("wamid")?,
        user: pseudonym(get("user")?)?,
        reply_address: WhatsAppAddress::parse(&get("reply_address")?)
            .map_err(|_| rejected("unreadable reply address"))?,
        number: get("number")?,
        campaign: get("campaign")?,
        source: get("source")?,
        staged_key: get("staged_key")?,
        bytes: number(item, "bytes")
            .and_then(|b| u64::try_from(b).ok())
            .unwrap_or(0),
        mime: get("mime")?,
        caption: text(item, "caption").unwrap_or_default(),
        sent_at_ms: number(item, "sent_at_ms").unwrap_or(0),
        asked_at: number(item, "asked_at").unwrap_or(0),
        reminded_at: number(item, "reminded_at"),
        status: PendingStatus::parse(&get("status")?)
            .ok_or_else(|| rejected("unknown pending status"))?,
        upload_started: item.contains_key("upload_started"),
        asset: text(item, "asset"),
    })
}

impl DynamoUgcStore {
    /// Wraps a client and the table name.
    pub fn new(client: aws_sdk_dynamodb::Client, table: impl Into<String>) -> Self {
        Self {
            client,
            table: table.into(),
        }
    }

    /// The pending submission `wamid`.
    pub async fn pending(&self, wamid: &str) -> Result<Option<Pending>, StoreError> {
        let item = self
            .client
            .get_item()
            .table_name(&self.table)
            .key("pk", pending_key(wamid))
            .consistent_read(true)
            .send()
            .await
            .map_err(store_error)?
            .item;
        item.map(|item| from_item(&item)).transpose()
    }

    /// Records a new pending submission; when one is there already (a redelivery), returns it.
    pub async fn create_pending(&self, pending: &Pending) -> Result<Pending, StoreError> {
        let result = self
            .client
            .put_item()
            .table_name(&self.table)
            .item("pk", pending_key(&pending.wamid))
            .item("kind", s("pending"))
            .item("wamid", s(&pending.wamid))
            .item("user", s(pending.user.as_str()))
            .item("reply_address", s(pending.reply_address.expose()))
            .item("number", s(&pending.number))
            .item("campaign", s(&pending.campaign))
            .item("source", s(&pending.source))
            .item("staged_key", s(&pending.staged_key))
            .item("bytes", n(pending.bytes))
            .item("mime", s(&pending.mime))
            .item("caption", s(&pending.caption))
            .item("sent_at_ms", n(pending.sent_at_ms))
            .item("asked_at", n(pending.asked_at))
            .item("status", s(pending.status.as_str()))
            .item("expires_at", n(pending.asked_at + PENDING_KEEP_SECONDS))
            .condition_expression("attribute_not_exists(pk)")
            .send()
            .await;
        match result {
            Ok(_) => Ok(pending.clone()),
            Err(error) => match classify(error) {
                Failure::Store(e) => Err(e),
                Failure::ConditionFailed => self
                    .pending(&pending.wamid)
                    .await?
                    .ok_or_else(|| StoreError::Unavailable("a pending submission vanished".into())),
            },
        }
    }

    /// Moves a pending submission from `asked` to `status`; `false` when it had moved already.
    pub async fn settle(
        &self,
        wamid: &str,
        status: PendingStatus,
        asset: Option<&str>,
    ) -> Result<bool, StoreError> {
        let mut update = self
            .client
            .update_item()
            .table_name(&self.table)
            .key("pk", pending_key(wamid))
            .update_expression(if asset.is_some() {
                "SET #status = :to, asset = :asset"
            } else {
                "SET #status = :to"
            })
            .condition_expression("#status = :asked")
            .expression_attribute_names("#status", "status")
            .expression_attribute_values(":to", s(status.as_str()))
            .expression_attribute_values(":asked", s(PendingStatus::Asked.as_str()));
        if let Some(asset) = asset {
            update = update.expression_attribute_values(":asset", s(asset));
        }
        match update.send().await {
            Ok(_) => Ok(true),
            Err(error) => match classify(error) {
                Failure::Store(e) => Err(e),
                Failure::ConditionFailed => Ok(false),
            },
        }
    }

    /// Notes that an upload of `wamid` is about to start.
    pub async fn mark_upload_started(&self, wamid: &str) -> Result<(), StoreError> {
        self.client
            .update_item()
            .table_name(&self.table)
            .key("pk", pending_key(wamid))
            .update_expression("SET upload_started = :t")
            .expression_attribute_values(":t", AttributeValue::Bool(true))
            .send()
            .await
            .map_err(store_error)?;
        Ok(())
    }

    /// Claims the one reminder of `wamid`; `false` when it was reminded already or settled.
    pub async fn mark_reminded(&self, wamid: &str, now: i64) -> Result<bool, StoreError> {
        let result = self
            .client
            .update_item()
            .table_name(&self.table)
            .key("pk", pending_key(wamid))
            .update_expression("SET reminded_at = :now")
            .condition_expression("#status = :asked AND attribute_not_exists(reminded_at)")
            .expression_attribute_names("#status", "status")
            .expression_attribute_values(":now", n(now))
            .expression_attribute_values(":asked", s(PendingStatus::Asked.as_str()))
            .send()
            .await;
        match result {
            Ok(_) => Ok(true),
            Err(error) => match classify(error) {
                Failure::Store(e) => Err(e),
                Failure::ConditionFailed => Ok(false),
            },
        }
    }

    /// Every submission still waiting for an answer.
    pub async fn waiting(&self) -> Result<Vec<Pending>, StoreError> {
        let mut found = Vec::new();
        let mut start: Option<HashMap<String, AttributeValue>> = None;
        loop {
            let page = self
                .client
                .scan()
                .table_name(&self.table)
                .filter_expression("kind = :pending AND #status = :asked")
                .expression_attribute_names("#status", "status")
                .expression_attribute_values(":pending", s("pending"))
                .expression_attribute_values(":asked", s(PendingStatus::Asked.as_str()))
                .set_exclusive_start_key(start.take())
                .send()
                .await
                .map_err(store_error)?;
            for item in page.items() {
                found.push(from_item(item)?);
            }
            match page.last_evaluated_key {
                Some(next) if !next.is_empty() => start = Some(next),
                _ => break,
            }
        }
        Ok(found)
    }

    /// Appends a consent record (once per answering message: a redelivered tap finds it there,
    /// `false`) and makes it the sender's current consent for the campaign.
    pub async fn record_consent(&self, record: &ConsentRecord) -> Result<bool, StoreError> {
        let key = format!(
            "consent#{}#{}#{}",
            record.user.as_str(),
            safe_part(&record.campaign),
            record.answer_message
        );
        let appended = self
            .client
            .put_item()
            .table_name(&self.table)
            .item("pk", s(key))
            .item("kind", s("consent"))
            .item("user", s(record.user.as_str()))
            .item("campaign", s(&record.campaign))
            .item("terms_version", s(&record.terms_version))
            .item("submission", s(&record.submission))
            .item("asked_message", s(&record.asked_message))
            .item("answer_message", s(&record.answer_message))
            .item("answer", s(record.answer.as_str()))
            .item("at_ms", n(record.at_ms))
            .condition_expression("attribute_not_exists(pk)")
            .send()
            .await;
        let appended = match appended {
            Ok(_) => true,
            Err(error) => match classify(error) {
                Failure::Store(e) => return Err(e),
                Failure::ConditionFailed => false,
            },
        };
        // The newest answer is the current one; an older answer delivered late does not win.
        let current = self
            .client
            .put_item()
            .table_name(&self.table)
            .item("pk", current_key(&record.user, &record.campaign))
            .item("kind", s("current"))
            .item("answer", s(record.answer.as_str()))
            .item("terms_version", s(&record.terms_version))
            .item("answer_message", s(&record.answer_message))
            .item("at_ms", n(record.at_ms))
            .condition_expression("attribute_not_exists(pk) OR at_ms <= :at")
            .expression_attribute_values(":at", n(record.at_ms))
            .send()
            .await;
        match current {
            Ok(_) => {}
            Err(error) => match classify(error) {
                Failure::Store(e) => return Err(e),
                Failure::ConditionFailed => {}
            },
        }
        Ok(appended)
    }

    /// The sender's current consent for the campaign: the answer, its terms version and message.
    pub async fn current_consent(
        &self,
        user: &UserPseudonym,
        campaign: &str,
    ) -> Result<Option<(ConsentAnswer, String, String, i64)>, StoreError> {
        let item = self
            .client
            .get_item()
            .table_name(&self.table)
            .key("pk", current_key(user, campaign))
            .consistent_read(true)
            .send()
            .await
            .map_err(store_error)?
            .item;
        Ok(item.and_then(|item| {
            Some((
                ConsentAnswer::from_action(&text(&item, "answer")?)?,
                text(&item, "terms_version").unwrap_or_default(),
                text(&item, "answer_message").unwrap_or_default(),
                number(&item, "at_ms").unwrap_or_default(),
            ))
        }))
    }
}

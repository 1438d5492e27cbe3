//! The one sender's tables on DynamoDB: `SendsTable` (a claim and an outcome per send key),
//! `SentMessagesTable` (wamid → what it was, how far it got) and `SendRateTable` (pacing buckets
//! shared by every concurrent sender, with a TTL).

use crate::adapters::dynamodb::{Failure, classify, n, s, store_error};
use crate::domain::outbound::{OutboundRequest, SendKey, SentMessageRef};
use crate::domain::sending::{DeliveryState, Pace, PaceDecision};
use crate::ports::{
    BusinessNumberId, OwnerToken, PricingInfo, SendClaim, SendEntry, SendLedger, SendOutcome,
    SendPacer, SendRecord, SendState, SentMessage, SentMessageLookup, SentMessageStore,
    StatusUpdate, StoreError, TrackedMessage,
};
use aws_sdk_dynamodb::types::{AttributeValue, ReturnValue};
use serde::{Deserialize, Serialize};
use std::collections::HashMap;

type Item = HashMap<String, AttributeValue>;

/// Sends and their outcomes are kept this long (a redelivery or a late status finds them).
const SEND_TTL_SECONDS: i64 = 30 * 24 * 3600;
/// Pacing buckets outlive their last use by this long.
const PACE_TTL_SECONDS: i64 = 24 * 3600;

fn rejected(reason: impl std::fmt::Display) -> StoreError {
    StoreError::Rejected {
        reason: reason.to_string(),
    }
}

fn text<'a>(item: &'a Item, name: &str) -> Option<&'a str> {
    item.get(name)
        .and_then(|v| v.as_s().ok())
        .map(String::as_str)
}

fn number(item: &Item, name: &str) -> Option<i64> {
    item.get(name)
        .and_then(|v| v.as_n().ok())
        .and_then(|v| v.parse().ok())
}

async fn get(
    client: &aws_sdk_dynamodb::Client,
    table: &str,
    pk: &str,
) -> Result<Option<Item>, StoreError> {
    Ok(client
        .get_item()
        .table_name(table)
        .key("pk", s(pk))
        .consistent_read(true)
        .send()
        .await
        .map_err(store_error)?
        .item)
}

fn unix_seconds() -> i64 {
    time::OffsetDateTime::now_utc().unix_timestamp()
}

const IN_PROGRESS: &str = "in_progress";
const UNKNOWN: &str = "unknown";
const SENT: &str = "sent";
const SUPPRESSED: &str = "suppressed";
const FAILED: &str = "failed";

#[derive(Serialize, Deserialize)]
struct StoredRecord {
    key: SendKey,
    number: String,
    #[serde(default)]
    actor: Option<String>,
    what: String,
    #[serde(default)]
    fallback: Option<OutboundRequest>,
}

fn state_of(name: &str) -> Option<SendState> {
    Some(match name {
        IN_PROGRESS => SendState::InProgress,
        UNKNOWN => SendState::Unknown,
        SENT => SendState::Sent,
        SUPPRESSED => SendState::Suppressed,
        FAILED => SendState::Failed,
        _ => return None,
    })
}

fn entry_of(item: &Item) -> Result<SendEntry, StoreError> {
    let stored: StoredRecord = serde_json::from_str(text(item, "record").unwrap_or_default())
        .map_err(|e| rejected(format!("a send record is unreadable: {e}")))?;
    let number = BusinessNumberId::parse(&stored.number)
        .ok_or_else(|| rejected("a send record has no business number"))?;
    let state = text(item, "state")
        .and_then(state_of)
        .ok_or_else(|| rejected("a send record has no state"))?;
    Ok(SendEntry {
        record: SendRecord {
            key: stored.key,
            number,
            actor: stored.actor,
            what: stored.what,
            fallback: stored.fallback,
        },
        state,
        message_id: text(item, "message_id").map(str::to_owned),
        reason: text(item, "reason").map(str::to_owned),
    })
}

/// `SendsTable`: pk = the encoded send key (what travels in `biz_opaque_callback_data`).
#[derive(Debug, Clone)]
pub struct DynamoSendLedger {
    client: aws_sdk_dynamodb::Client,
    table: String,
}

impl DynamoSendLedger {
    /// Wraps a client and the table name.
    pub fn new(client: aws_sdk_dynamodb::Client, table: impl Into<String>) -> Self {
        Self {
            client,
            table: table.into(),
        }
    }

    async fn owned_update(
        &self,
        key: &SendKey,
        owner: &OwnerToken,
        set: &str,
        values: Vec<(&str, AttributeValue)>,
    ) -> Result<(), StoreError> {
        let mut request = self
            .client
            .update_item()
            .table_name(&self.table)
            .key("pk", s(key.encode()))
            .update_expression(set)
            .condition_expression("#owner = :owner AND #state IN (:in_progress, :unknown)")
            .expression_attribute_names("#owner", "owner")
            .expression_attribute_names("#state", "state")
            .expression_attribute_values(":owner", s(&owner.0))
            .expression_attribute_values(":in_progress", s(IN_PROGRESS))
            .expression_attribute_values(":unknown", s(UNKNOWN));
        for (name, value) in values {
            request = request.expression_attribute_values(name, value);
        }
        match request.send().await {
            Ok(_) => Ok(()),
            Err(error) => match classify(error) {
                Failure::ConditionFailed => Err(StoreError::NotOwner),
                Failure::Store(e) => Err(e),
            },
        }
    }
}

impl SendLedger for DynamoSendLedger {
    async fn claim(
        &self,
        record: &SendRecord,
        owner: &OwnerToken,
        now_ms: i64,
        deadline_ms: i64,
        resend_after_ms: i64,
    ) -> Result<SendClaim, StoreError> {
        let stored = serde_json::to_string(&StoredRecord {
            key: record.key.clone(),
            number: record.number.as_str().to_owned(),
            actor: record.actor.clone(),
            what: record.what.clone(),
            fallback: record.fallback.clone(),
        })
        .map_err(rejected)?;
        let pk = record.key.encode();
        for _ in 0..2 {
            let result = self
                .client
                .put_item()
                .table_name(&self.table)
                .item("pk", s(&pk))
                .item("state", s(IN_PROGRESS))
                .item("owner", s(&owner.0))
                .item("deadline_ms", n(deadline_ms))
                .item("since_ms", n(now_ms))
                .item("record", s(&stored))
                .item("expires_at", n(unix_seconds() + SEND_TTL_SECONDS))
                .condition_expression(
                    "attribute_not_exists(pk) \
                     OR (#state = :in_progress AND deadline_ms < :now AND since_ms <= :stale) \
                     OR (#state = :unknown AND since_ms <= :stale)",
                )
                .expression_attribute_names("#state", "state")
                .expression_attribute_values(":in_progress", s(IN_PROGRESS))
                .expression_attribute_values(":unknown", s(UNKNOWN))
                .expression_attribute_values(":now", n(now_ms))
                .expression_attribute_values(":stale", n(now_ms - resend_after_ms))
                .send()
                .await;
            match result {
                Ok(_) => return Ok(SendClaim::Acquired),
                Err(error) => match classify(error) {
                    Failure::ConditionFailed => {}
                    Failure::Store(e) => return Err(e),
                },
            }
            let Some(item) = get(&self.client, &self.table, &pk).await? else {
                // Released between the two calls: claim again.
                continue;
            };
            if text(&item, "owner") == Some(owner.0.as_str())
                && text(&item, "state") == Some(IN_PROGRESS)
            {
                // Our own put, retried by the SDK after a lost answer: the claim is ours.
                return Ok(SendClaim::Acquired);
            }
            return Ok(match text(&item, "state").and_then(state_of) {
                Some(SendState::Sent | SendState::Suppressed | SendState::Failed) => {
                    SendClaim::Done
                }
                Some(SendState::InProgress)
                    if number(&item, "deadline_ms").unwrap_or(i64::MAX) >= now_ms =>
                {
                    SendClaim::HeldElsewhere
                }
                Some(SendState::InProgress | SendState::Unknown) => SendClaim::AwaitingStatus,
                None => return Err(rejected("a send record has no state")),
            });
        }
        Ok(SendClaim::HeldElsewhere)
    }

    async fn complete(
        &self,
        key: &SendKey,
        owner: &OwnerToken,
        outcome: &SendOutcome,
    ) -> Result<(), StoreError> {
        let expires = n(unix_seconds() + SEND_TTL_SECONDS);
        match outcome {
            SendOutcome::Sent { message_id } => {
                self.owned_update(
                    key,
                    owner,
                    "SET #state = :done, message_id = :id, expires_at = :expires",
                    vec![
                        (":done", s(SENT)),
                        (":id", s(message_id)),
                        (":expires", expires),
                    ],
                )
                .await
            }
            SendOutcome::Suppressed(reason) => {
                self.owned_update(
                    key,
                    owner,
                    "SET #state = :done, reason = :reason, expires_at = :expires",
                    vec![
                        (":done", s(SUPPRESSED)),
                        (":reason", s(reason.as_str())),
                        (":expires", expires),
                    ],
                )
                .await
            }
            SendOutcome::Failed { code, reason } => {
                let reason = match code {
                    Some(code) => format!("{code}: {reason}"),
                    None => reason.clone(),
                };
                self.owned_update(
                    key,
                    owner,
                    "SET #state = :done, reason = :reason, expires_at = :expires",
                    vec![
                        (":done", s(FAILED)),
                        (":reason", s(reason)),
                        (":expires", expires),
                    ],
                )
                .await
            }
        }
    }

    async fn mark_unknown(
        &self,
        key: &SendKey,
        owner: &OwnerToken,
        at_ms: i64,
    ) -> Result<(), StoreError> {
        self.owned_update(
            key,
            owner,
            "SET #state = :unknown_now, since_ms = :at",
            vec![(":unknown_now", s(UNKNOWN)), (":at", n(at_ms))],
        )
        .await
    }

    async fn release(&self, key: &SendKey, owner: &OwnerToken) -> Result<(), StoreError> {
        let result = self
            .client
            .delete_item()
            .table_name(&self.table)
            .key("pk", s(key.encode()))
            .condition_expression("#owner = :owner AND #state = :in_progress")
            .expression_attribute_names("#owner", "owner")
            .expression_attribute_names("#state", "state")
            .expression_attribute_values(":owner", s(&owner.0))
            .expression_attribute_values(":in_progress", s(IN_PROGRESS))
            .send()
            .await;
        match result {
            Ok(_) => Ok(()),
            Err(error) => match classify(error) {
                Failure::ConditionFailed => Err(StoreError::NotOwner),
                Failure::Store(e) => Err(e),
            },
        }
    }

    async fn settle(
        &self,
        encoded_key: &str,
        message_id: &str,
    ) -> Result<Option<SendEntry>, StoreError> {
        let result = self
            .client
            .update_item()
            .table_name(&self.table)
            .key("pk", s(encoded_key))
            .update_expression("SET #state = :sent, message_id = :id")
            .condition_expression("attribute_exists(pk) AND #state IN (:in_progress, :unknown)")
            .expression_attribute_names("#state", "state")
            .expression_attribute_values(":sent", s(SENT))
            .expression_attribute_values(":id", s(message_id))
            .expression_attribute_values(":in_progress", s(IN_PROGRESS))
            .expression_attribute_values(":unknown", s(UNKNOWN))
            .return_values(ReturnValue::AllNew)
            .send()
            .await;
        match result {
            Ok(output) => output.attributes.as_ref().map(entry_of).transpose(),
            Err(error) => match classify(error) {
                Failure::ConditionFailed => self.find(encoded_key).await,
                Failure::Store(e) => Err(e),
            },
        }
    }

    async fn find(&self, encoded_key: &str) -> Result<Option<SendEntry>, StoreError> {
        get(&self.client, &self.table, encoded_key)
            .await?
            .as_ref()
            .map(entry_of)
            .transpose()
    }
}

/// `SentMessagesTable`: pk = the wamid.
#[derive(Debug, Clone)]
pub struct DynamoSentMessages {
    client: aws_sdk_dynamodb::Client,
    table: String,
}

impl DynamoSentMessages {
    /// Wraps a client and the table name.
    pub fn new(client: aws_sdk_dynamodb::Client, table: impl Into<String>) -> Self {
        Self {
            client,
            table: table.into(),
        }
    }
}

fn tracked_of(item: &Item) -> Result<TrackedMessage, StoreError> {
    let message_id = text(item, "pk").unwrap_or_default().to_owned();
    let key: SendKey = serde_json::from_str(text(item, "send_key").unwrap_or_default())
        .map_err(|e| rejected(format!("a sent message has no readable send key: {e}")))?;
    let number = text(item, "number")
        .and_then(BusinessNumberId::parse)
        .ok_or_else(|| rejected("a sent message has no business number"))?;
    let history = item
        .get("history")
        .and_then(|v| v.as_l().ok())
        .map(|entries| {
            entries
                .iter()
                .filter_map(|e| e.as_m().ok())
                .filter_map(|m| m.get("state")?.as_s().ok())
                .filter_map(|name| DeliveryState::parse(name))
                .collect()
        })
        .unwrap_or_default();
    Ok(TrackedMessage {
        message: SentMessage {
            message_id,
            key,
            number,
            actor: text(item, "actor").map(str::to_owned),
            what: text(item, "what").unwrap_or_default().to_owned(),
            at_ms: number_attr(item, "at_ms").unwrap_or(0),
        },
        state: text(item, "state")
            .and_then(DeliveryState::parse)
            .unwrap_or(DeliveryState::Accepted),
        error_code: number_attr(item, "error_code"),
        error_title: text(item, "error_title").map(str::to_owned),
        pricing: PricingInfo {
            category: text(item, "pricing_category").map(str::to_owned),
            model: text(item, "pricing_model").map(str::to_owned),
            kind: text(item, "pricing_type").map(str::to_owned),
            billable: item.get("billable").and_then(|v| v.as_bool().ok()).copied(),
        },
        history,
    })
}

/// `YYYY-MM-DD` of a Unix-ms instant, UTC.
fn utc_day(at_ms: i64) -> String {
    jiff::Timestamp::from_millisecond(at_ms)
        .unwrap_or(jiff::Timestamp::UNIX_EPOCH)
        .to_zoned_datetime(jiff::tz::TimeZone::UTC)
        .date()
        .to_string()
}

fn number_attr(item: &Item, name: &str) -> Option<i64> {
    number(item, name)
}

impl SentMessageLookup for DynamoSentMessages {
    async fn find(&self, message_id: &str) -> Result<Option<SentMessageRef>, StoreError> {
        Ok(self.get(message_id).await?.map(|t| SentMessageRef {
            message_id: t.message.message_id,
            key: t.message.key,
        }))
    }
}

impl SentMessageStore for DynamoSentMessages {
    async fn record(&self, message: &SentMessage) -> Result<(), StoreError> {
        let key = serde_json::to_string(&message.key).map_err(rejected)?;
        let mut set = String::from(
            "SET send_key = :key, callback_key = :encoded, flow = :flow, subject = :subject, \
             version = :version, recipient = :recipient, #number = :number, what = :what, \
             at_ms = :at, #day = :day, #state = if_not_exists(#state, :accepted), \
             state_rank = if_not_exists(state_rank, :zero), \
             history = if_not_exists(history, :empty)",
        );
        if message.actor.is_some() {
            set.push_str(", actor = :actor");
        }
        let mut request = self
            .client
            .update_item()
            .table_name(&self.table)
            .key("pk", s(&message.message_id))
            .update_expression(set)
            .expression_attribute_names("#number", "number")
            .expression_attribute_names("#state", "state")
            .expression_attribute_names("#day", "day")
            .expression_attribute_values(":key", s(key))
            // The operator page's `by-day` index: the UTC day of the send.
            .expression_attribute_values(":day", s(utc_day(message.at_ms)))
            .expression_attribute_values(":encoded", s(message.key.encode()))
            .expression_attribute_values(":flow", s(message.key.flow.code()))
            .expression_attribute_values(":subject", s(&message.key.subject))
            .expression_attribute_values(":version", s(&message.key.version))
            .expression_attribute_values(":recipient", s(message.key.recipient.as_str()))
            .expression_attribute_values(":number", s(message.number.as_str()))
            .expression_attribute_values(":what", s(&message.what))
            .expression_attribute_values(":at", n(message.at_ms))
            .expression_attribute_values(":accepted", s(DeliveryState::Accepted.as_str()))
            .expression_attribute_values(":zero", n(0))
            .expression_attribute_values(":empty", AttributeValue::L(Vec::new()));
        if let Some(actor) = &message.actor {
            request = request.expression_attribute_values(":actor", s(actor));
        }
        request.send().await.map_err(store_error)?;
        Ok(())
    }

    async fn apply_status(
        &self,
        message_id: &str,
        update: &StatusUpdate,
    ) -> Result<Option<TrackedMessage>, StoreError> {
        let entry = AttributeValue::L(vec![AttributeValue::M(HashMap::from([
            ("state".to_owned(), s(update.state.as_str())),
            ("at_ms".to_owned(), n(update.at_ms)),
        ]))]);
        let mut common =
            String::from("history = list_append(if_not_exists(history, :empty), :entry)");
        let mut values: Vec<(&str, AttributeValue)> =
            vec![(":empty", AttributeValue::L(Vec::new())), (":entry", entry)];
        if let Some(pricing) = &update.pricing {
            for (attribute, placeholder, value) in [
                ("pricing_category", ":pc", &pricing.category),
                ("pricing_model", ":pm", &pricing.model),
                ("pricing_type", ":pt", &pricing.kind),
            ] {
                if let Some(value) = value {
                    common.push_str(&format!(", {attribute} = {placeholder}"));
                    values.push((placeholder, s(value)));
                }
            }
            if let Some(billable) = pricing.billable {
                common.push_str(", billable = :billable");
                values.push((":billable", AttributeValue::Bool(billable)));
            }
        }
        // First the advancing write (state, rank, error); if the record is already further on,
        // only the history and pricing.
        let mut advancing = format!("SET {common}, #state = :state, state_rank = :rank");
        let mut advancing_values = values.clone();
        advancing_values.push((":state", s(update.state.as_str())));
        advancing_values.push((":rank", n(update.state.rank())));
        if let Some((code, title)) = &update.error {
            advancing.push_str(", error_code = :code, error_title = :title");
            advancing_values.push((":code", n(code)));
            advancing_values.push((":title", s(title)));
        }
        let attempts = [
            (
                advancing,
                "attribute_exists(pk) AND state_rank < :rank",
                advancing_values,
                true,
            ),
            (
                format!("SET {common}"),
                "attribute_exists(pk)",
                values,
                false,
            ),
        ];
        for (expression, condition, values, uses_state) in attempts {
            let mut request = self
                .client
                .update_item()
                .table_name(&self.table)
                .key("pk", s(message_id))
                .update_expression(expression)
                .condition_expression(condition)
                .return_values(ReturnValue::AllNew);
            if uses_state {
                request = request.expression_attribute_names("#state", "state");
            }
            for (name, value) in values {
                request = request.expression_attribute_values(name, value);
            }
            match request.send().await {
                Ok(output) => return output.attributes.as_ref().map(tracked_of).transpose(),
                Err(error) => match classify(error) {
                    Failure::ConditionFailed => {}
                    Failure::Store(e) => return Err(e),
                },
            }
        }
        Ok(None)
    }

    async fn get(&self, message_id: &str) -> Result<Option<TrackedMessage>, StoreError> {
        get(&self.client, &self.table, message_id)
            .await?
            .as_ref()
            .map(tracked_of)
            .transpose()
    }
}

/// `SendRateTable`: one item per pacing bucket holding its theoretical arrival time (GCRA), moved
/// on with conditional updates, so every concurrent sender shares it without a lock.
#[derive(Debug, Clone)]
pub struct DynamoSendPacer {
    client: aws_sdk_dynamodb::Client,
    table: String,
}

impl DynamoSendPacer {
    /// Wraps a client and the table name.
    pub fn new(client: aws_sdk_dynamodb::Client, table: impl Into<String>) -> Self {
        Self {
            client,
            table: table.into(),
        }
    }
}

impl SendPacer for DynamoSendPacer {
    async fn reserve(
        &self,
        bucket: &str,
        pace: Pace,
        now_us: i64,
        horizon_us: i64,
    ) -> Result<PaceDecision, StoreError> {
        let expires = n(unix_seconds() + PACE_TTL_SECONDS);
        let limit = now_us
            .saturating_add(pace.tolerance_us)
            .saturating_add(horizon_us);
        for _ in 0..4 {
            // An idle bucket: send now.
            let idle = self
                .client
                .update_item()
                .table_name(&self.table)
                .key("pk", s(bucket))
                .update_expression("SET tat = :next, expires_at = :expires")
                .condition_expression("attribute_not_exists(tat) OR tat <= :now")
                .expression_attribute_values(":next", n(now_us + pace.interval_us))
                .expression_attribute_values(":now", n(now_us))
                .expression_attribute_values(":expires", expires.clone())
                .send()
                .await;
            match idle {
                Ok(_) => {
                    return Ok(PaceDecision::Reserve {
                        at: now_us,
                        tat: now_us + pace.interval_us,
                    });
                }
                Err(error) => match classify(error) {
                    Failure::ConditionFailed => {}
                    Failure::Store(e) => return Err(e),
                },
            }
            // A busy bucket: take the next slot if it is within the horizon.
            let next = self
                .client
                .update_item()
                .table_name(&self.table)
                .key("pk", s(bucket))
                .update_expression("SET tat = tat + :interval, expires_at = :expires")
                .condition_expression("tat > :now AND tat <= :limit")
                .expression_attribute_values(":interval", n(pace.interval_us))
                .expression_attribute_values(":now", n(now_us))
                .expression_attribute_values(":limit", n(limit))
                .expression_attribute_values(":expires", expires.clone())
                .return_values(ReturnValue::UpdatedNew)
                .send()
                .await;
            match next {
                Ok(output) => {
                    let tat = output
                        .attributes
                        .as_ref()
                        .and_then(|a| number(a, "tat"))
                        .ok_or_else(|| rejected("the pacing bucket returned no time"))?;
                    let at = (tat - pace.interval_us - pace.tolerance_us).max(now_us);
                    return Ok(PaceDecision::Reserve { at, tat });
                }
                Err(error) => match classify(error) {
                    Failure::ConditionFailed => {}
                    Failure::Store(e) => return Err(e),
                },
            }
            let tat = get(&self.client, &self.table, bucket)
                .await?
                .and_then(|item| number(&item, "tat"));
            if let Some(tat) = tat
                && tat > limit
            {
                return Ok(PaceDecision::Busy {
                    retry_at: tat - pace.tolerance_us - horizon_us,
                });
            }
            // The bucket moved between the calls: try again.
        }
        Ok(PaceDecision::Busy {
            retry_at: now_us + pace.interval_us,
        })
    }
}

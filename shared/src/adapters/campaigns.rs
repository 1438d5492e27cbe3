//! Campaign rollouts in DynamoDB (`CampaignRolloutsTable`, key `pk` + `sk`):
//! - `package#<id>` / `rollout`: the current version and who was notified (JSON);
//! - `package#<id>` / `r#<pseudonym>`: one recipient's answers on that version;
//! - `campaign#<campaign, lower case>` / `<package id>`: the packages of a campaign.
//!
//! A new version replaces the rollout and starts each of its recipients afresh; the same version
//! again (a redelivery) keeps what is stored. Every write is safe to repeat.

use crate::adapters::dynamodb::{Failure, classify, n, s, store_error};
use crate::domain::campaign::{Mark, RecipientStatus, Rollout};
use crate::ports::{CampaignStore, RolloutOpened, StoreError};
use crate::pseudonym::UserPseudonym;
use aws_sdk_dynamodb::types::AttributeValue;
use std::collections::HashMap;

/// Rollouts are kept this long (the DAM comment log keeps the history).
const KEEP_SECONDS: i64 = 365 * 24 * 3600;
const ROLLOUT: &str = "rollout";

/// The campaign rollouts table.
#[derive(Debug, Clone)]
pub struct DynamoCampaignStore {
    client: aws_sdk_dynamodb::Client,
    table: String,
}

type Item = HashMap<String, AttributeValue>;

impl DynamoCampaignStore {
    /// Wraps a client and the table name.
    pub fn new(client: aws_sdk_dynamodb::Client, table: impl Into<String>) -> Self {
        Self {
            client,
            table: table.into(),
        }
    }

    async fn query(&self, pk: String, prefix: Option<&str>) -> Result<Vec<Item>, StoreError> {
        let mut items = Vec::new();
        let mut start: Option<Item> = None;
        loop {
            let mut query = self
                .client
                .query()
                .table_name(&self.table)
                .consistent_read(true)
                .expression_attribute_values(":pk", s(&pk))
                .set_exclusive_start_key(start.take());
            query = match prefix {
                Some(prefix) => query
                    .key_condition_expression("pk = :pk AND begins_with(sk, :prefix)")
                    .expression_attribute_values(":prefix", s(prefix)),
                None => query.key_condition_expression("pk = :pk"),
            };
            let page = query.send().await.map_err(store_error)?;
            items.extend(page.items().iter().cloned());
            match page.last_evaluated_key {
                Some(next) if !next.is_empty() => start = Some(next),
                _ => return Ok(items),
            }
        }
    }

    /// Puts a recipient's item for `version` unless it is already there (answers kept).
    async fn ensure_recipient(
        &self,
        rollout: &Rollout,
        who: &UserPseudonym,
        expires: i64,
    ) -> Result<(), StoreError> {
        let put = self
            .client
            .put_item()
            .table_name(&self.table)
            .item("pk", package_key(&rollout.package))
            .item("sk", recipient_key(who))
            .item("who", s(who.as_str()))
            .item("version", s(&rollout.version))
            .item("notified_at_ms", n(rollout.at_ms))
            .item("expires_at", n(expires))
            .condition_expression("attribute_not_exists(pk) OR version <> :v")
            .expression_attribute_values(":v", s(&rollout.version));
        match put.send().await {
            Ok(_) => Ok(()),
            Err(error) => match classify(error) {
                Failure::Store(e) => Err(e),
                Failure::ConditionFailed => Ok(()),
            },
        }
    }
}

fn package_key(package: &str) -> AttributeValue {
    s(format!("package#{package}"))
}

fn recipient_key(who: &UserPseudonym) -> AttributeValue {
    s(format!("r#{who}"))
}

fn campaign_key(campaign: &str) -> String {
    format!("campaign#{}", campaign.trim().to_lowercase())
}

fn text(item: &Item, name: &str) -> Option<String> {
    item.get(name)?.as_s().ok().cloned()
}

fn number(item: &Item, name: &str) -> Option<i64> {
    item.get(name)?.as_n().ok()?.parse().ok()
}

fn rejected(reason: impl Into<String>) -> StoreError {
    StoreError::Rejected {
        reason: reason.into(),
    }
}

fn rollout_of(item: &Item) -> Result<Rollout, StoreError> {
    serde_json::from_str(&text(item, "rollout").ok_or_else(|| rejected("a rollout without body"))?)
        .map_err(|e| rejected(format!("unreadable rollout: {e}")))
}

fn status_of(item: &Item) -> Result<RecipientStatus, StoreError> {
    let who = text(item, "who")
        .map(|p| serde_json::from_value(serde_json::Value::String(p)))
        .transpose()
        .map_err(|e| rejected(format!("unreadable recipient: {e}")))?;
    let paired = |value: &str, at: &str| Some((text(item, value)?, number(item, at)?));
    Ok(RecipientStatus {
        who,
        notified_at_ms: number(item, "notified_at_ms"),
        confirmed_at_ms: number(item, "confirmed_at_ms"),
        format_requested: paired("format", "format_at_ms"),
        flagged: paired("flag", "flag_at_ms"),
    })
}

impl CampaignStore for DynamoCampaignStore {
    async fn open(&self, rollout: &Rollout) -> Result<RolloutOpened, StoreError> {
        let body = serde_json::to_string(rollout)
            .map_err(|e| rejected(format!("cannot encode the rollout: {e}")))?;
        let expires = jiff::Timestamp::now().as_second() + KEEP_SECONDS;
        let put = self
            .client
            .put_item()
            .table_name(&self.table)
            .item("pk", package_key(&rollout.package))
            .item("sk", s(ROLLOUT))
            .item("version", s(&rollout.version))
            .item("rollout", s(body))
            .item("expires_at", n(expires))
            .condition_expression("attribute_not_exists(pk) OR version <> :v")
            .expression_attribute_values(":v", s(&rollout.version));
        let opened = match put.send().await {
            Ok(_) => RolloutOpened::New,
            Err(error) => match classify(error) {
                Failure::Store(e) => return Err(e),
                Failure::ConditionFailed => match self.get(&rollout.package).await? {
                    Some(stored) => RolloutOpened::Existing(stored),
                    None => {
                        return Err(StoreError::Unavailable(
                            "the rollout vanished while it was opened".into(),
                        ));
                    }
                },
            },
        };
        // Finished on every delivery: a crash after the rollout item leaves none of these missing.
        let stored = match &opened {
            RolloutOpened::New => rollout,
            RolloutOpened::Existing(stored) => stored,
        };
        for recipient in &stored.recipients {
            self.ensure_recipient(stored, &recipient.who, expires)
                .await?;
        }
        self.client
            .put_item()
            .table_name(&self.table)
            .item("pk", s(campaign_key(&stored.campaign)))
            .item("sk", s(&stored.package))
            .item("at_ms", n(stored.at_ms))
            .item("expires_at", n(expires))
            .condition_expression("attribute_not_exists(pk)")
            .send()
            .await
            .map_or_else(
                |error| match classify(error) {
                    Failure::Store(e) => Err(e),
                    Failure::ConditionFailed => Ok(()),
                },
                |_| Ok(()),
            )?;
        Ok(opened)
    }

    async fn get(&self, package: &str) -> Result<Option<Rollout>, StoreError> {
        let item = self
            .client
            .get_item()
            .table_name(&self.table)
            .key("pk", package_key(package))
            .key("sk", s(ROLLOUT))
            .consistent_read(true)
            .send()
            .await
            .map_err(store_error)?
            .item;
        item.as_ref().map(rollout_of).transpose()
    }

    async fn record(
        &self,
        package: &str,
        version: &str,
        who: &UserPseudonym,
        mark: &Mark,
        at_ms: i64,
    ) -> Result<bool, StoreError> {
        let update = self
            .client
            .update_item()
            .table_name(&self.table)
            .key("pk", package_key(package))
            .key("sk", recipient_key(who))
            .condition_expression("version = :v")
            .expression_attribute_values(":v", s(version))
            .expression_attribute_values(":at", n(at_ms));
        let update = match mark {
            Mark::Confirmed => update
                .update_expression("SET confirmed_at_ms = if_not_exists(confirmed_at_ms, :at)"),
            Mark::FormatRequested(format) => update
                .update_expression("SET #format = :value, format_at_ms = :at")
                .expression_attribute_names("#format", "format")
                .expression_attribute_values(":value", s(format)),
            Mark::Flagged(description) => update
                .update_expression("SET flag = :value, flag_at_ms = :at")
                .expression_attribute_values(":value", s(description)),
        };
        match update.send().await {
            Ok(_) => Ok(true),
            Err(error) => match classify(error) {
                Failure::Store(e) => Err(e),
                Failure::ConditionFailed => Ok(false),
            },
        }
    }

    async fn statuses(&self, package: &str) -> Result<Vec<RecipientStatus>, StoreError> {
        let Some(rollout) = self.get(package).await? else {
            return Ok(Vec::new());
        };
        let items = self.query(format!("package#{package}"), Some("r#")).await?;
        items
            .iter()
            .filter(|item| text(item, "version").as_deref() == Some(rollout.version.as_str()))
            .map(status_of)
            .collect()
    }

    async fn packages_of(&self, campaign: &str) -> Result<Vec<String>, StoreError> {
        let mut items: Vec<(i64, String)> = self
            .query(campaign_key(campaign), None)
            .await?
            .iter()
            .filter_map(|item| Some((number(item, "at_ms").unwrap_or(0), text(item, "sk")?)))
            .collect();
        items.sort();
        Ok(items.into_iter().map(|(_, p)| p).collect())
    }
}

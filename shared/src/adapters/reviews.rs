//! Review requests in DynamoDB: one item per asset (`review#<asset>`) holding its current version,
//! the approvers asked and, once, the decision. The decision is a conditional write: the first
//! answer for the current version wins, every other one finds it there.

use crate::adapters::dynamodb::{Failure, classify, n, s, store_error};
use crate::domain::review::{Approver, Decision, ReviewRequest, Verdict};
use crate::ports::{Decided, Opened, ReviewStore, StoreError};
use aws_sdk_dynamodb::types::AttributeValue;
use std::collections::HashMap;

/// Requests are kept this long after they are opened (the DAM comment log keeps the history).
const KEEP_SECONDS: i64 = 180 * 24 * 3600;

/// The reviews table.
#[derive(Debug, Clone)]
pub struct DynamoReviewStore {
    client: aws_sdk_dynamodb::Client,
    table: String,
}

impl DynamoReviewStore {
    /// Wraps a client and the table name.
    pub fn new(client: aws_sdk_dynamodb::Client, table: impl Into<String>) -> Self {
        Self {
            client,
            table: table.into(),
        }
    }

    async fn read(&self, asset: &str) -> Result<Option<ReviewRequest>, StoreError> {
        let item = self
            .client
            .get_item()
            .table_name(&self.table)
            .key("pk", key(asset))
            .consistent_read(true)
            .send()
            .await
            .map_err(store_error)?
            .item;
        item.map(|item| from_item(&item)).transpose()
    }
}

fn key(asset: &str) -> AttributeValue {
    s(format!("review#{asset}"))
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

fn from_item(item: &HashMap<String, AttributeValue>) -> Result<ReviewRequest, StoreError> {
    let approvers: Vec<Approver> = serde_json::from_str(
        &text(item, "approvers").ok_or_else(|| rejected("a review without approvers"))?,
    )
    .map_err(|e| rejected(format!("unreadable approvers: {e}")))?;
    let decision = match text(item, "verdict").as_deref() {
        None => None,
        Some(verdict) => Some(Decision {
            verdict: match verdict {
                "approved" => Verdict::Approved,
                "rejected" => Verdict::Rejected {
                    reason: text(item, "reason").unwrap_or_default(),
                },
                other => return Err(rejected(format!("unknown verdict {other:?}"))),
            },
            // Empty: decided in the DAM.
            by: text(item, "decided_by")
                .filter(|p| !p.is_empty())
                .map(|p| serde_json::from_value(serde_json::Value::String(p)))
                .transpose()
                .map_err(|e| rejected(format!("unreadable decider: {e}")))?,
            by_name: text(item, "decided_by_name").unwrap_or_default(),
            at_ms: number(item, "decided_at_ms").unwrap_or_default(),
            message: text(item, "decided_message").filter(|m| !m.is_empty()),
        }),
    };
    Ok(ReviewRequest {
        asset: text(item, "asset").ok_or_else(|| rejected("a review without asset"))?,
        version: text(item, "version").ok_or_else(|| rejected("a review without version"))?,
        approvers,
        deadline: number(item, "deadline"),
        decision,
        reminded: item.contains_key("reminded_at"),
    })
}

impl ReviewStore for DynamoReviewStore {
    async fn open(&self, request: &ReviewRequest) -> Result<Opened, StoreError> {
        let approvers = serde_json::to_string(&request.approvers)
            .map_err(|e| rejected(format!("cannot encode approvers: {e}")))?;
        let now = jiff::Timestamp::now().as_second();
        let mut put = self
            .client
            .put_item()
            .table_name(&self.table)
            .item("pk", key(&request.asset))
            .item("asset", s(&request.asset))
            .item("version", s(&request.version))
            .item("approvers", s(approvers))
            .item("state", s("open"))
            .item("expires_at", n(now + KEEP_SECONDS))
            .condition_expression("attribute_not_exists(pk) OR version <> :v")
            .expression_attribute_values(":v", s(&request.version));
        if let Some(deadline) = request.deadline {
            put = put.item("deadline", n(deadline));
        }
        match put.send().await {
            Ok(_) => Ok(Opened::New),
            Err(error) => match classify(error) {
                Failure::Store(e) => Err(e),
                Failure::ConditionFailed => match self.read(&request.asset).await? {
                    Some(stored) => Ok(Opened::Existing(stored)),
                    // Replaced and deleted in between: nothing to keep.
                    None => Err(StoreError::Unavailable(
                        "the review request vanished while it was opened".into(),
                    )),
                },
            },
        }
    }

    async fn get(&self, asset: &str) -> Result<Option<ReviewRequest>, StoreError> {
        self.read(asset).await
    }

    async fn decide(
        &self,
        asset: &str,
        version: &str,
        decision: &Decision,
    ) -> Result<Decided, StoreError> {
        let (verdict, reason) = match &decision.verdict {
            Verdict::Approved => ("approved", None),
            Verdict::Rejected { reason } => ("rejected", Some(reason.as_str())),
        };
        let update = self
            .client
            .update_item()
            .table_name(&self.table)
            .key("pk", key(asset))
            .update_expression(
                "SET verdict = :verdict, decided_by_name = :name, decided_at_ms = :at, \
                 #state = :decided, reason = :reason, decided_by = :by, decided_message = :message \
                 REMOVE deadline",
            )
            .condition_expression("version = :v AND attribute_not_exists(verdict)")
            .expression_attribute_names("#state", "state")
            .expression_attribute_values(":verdict", s(verdict))
            .expression_attribute_values(":name", s(&decision.by_name))
            .expression_attribute_values(":at", n(decision.at_ms))
            .expression_attribute_values(":decided", s("decided"))
            .expression_attribute_values(":v", s(version))
            .expression_attribute_values(":reason", s(reason.unwrap_or("")))
            .expression_attribute_values(":by", s(decision.by.as_ref().map_or("", |p| p.as_str())))
            .expression_attribute_values(":message", s(decision.message.as_deref().unwrap_or("")));
        match update.send().await {
            Ok(_) => Ok(Decided::Written),
            Err(error) => match classify(error) {
                Failure::Store(e) => Err(e),
                Failure::ConditionFailed => Ok(Decided::Lost(self.read(asset).await?)),
            },
        }
    }

    async fn due_for_reminder(&self, before: i64) -> Result<Vec<ReviewRequest>, StoreError> {
        // Open requests keep `deadline`; a decision removes it, so the scan reads open ones only.
        let mut due = Vec::new();
        let mut start: Option<HashMap<String, AttributeValue>> = None;
        loop {
            let page = self
                .client
                .scan()
                .table_name(&self.table)
                .filter_expression(
                    "deadline <= :before AND attribute_not_exists(verdict) \
                     AND attribute_not_exists(reminded_at)",
                )
                .expression_attribute_values(":before", n(before))
                .set_exclusive_start_key(start.take())
                .send()
                .await
                .map_err(store_error)?;
            for item in page.items() {
                due.push(from_item(item)?);
            }
            match page.last_evaluated_key {
                Some(next) if !next.is_empty() => start = Some(next),
                _ => break,
            }
        }
        Ok(due)
    }

    async fn mark_reminded(&self, asset: &str, version: &str) -> Result<bool, StoreError> {
        let result = self
            .client
            .update_item()
            .table_name(&self.table)
            .key("pk", key(asset))
            .update_expression("SET reminded_at = :now")
            .condition_expression("version = :v AND attribute_not_exists(reminded_at)")
            .expression_attribute_values(":now", n(jiff::Timestamp::now().as_second()))
            .expression_attribute_values(":v", s(version))
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
}

//! What the operator page reads, straight from the stack's records: sent messages of a range of
//! days (the sent-messages table's `by-day` index, projected to flow and state), the depth of every
//! dead-letter queue of the stack, the last rights-expiry scan and the DAM poll's watermark.
//! Read-only: the page's policy allows Query, GetItem, ListQueues and GetQueueAttributes.

use crate::adapters::dynamodb::store_error;
use crate::domain::operations::DayRange;
use crate::domain::outbound::MessageFlow;
use crate::domain::sending::DeliveryState;
use crate::ports::StoreError;
use aws_sdk_dynamodb::types::AttributeValue;
use aws_sdk_sqs::types::QueueAttributeName;
use serde::Serialize;
use std::collections::HashMap;

/// The sent-messages index by UTC day (`day` = `YYYY-MM-DD`, sorted by `at_ms`).
pub const BY_DAY_INDEX: &str = "by-day";

/// One dead-letter queue and what it holds.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct DeadLetters {
    /// The queue it serves (`Outbound`, `Review`).
    pub queue: String,
    /// Records held (visible and in flight).
    pub depth: u64,
}

/// The scans and polls the page reports.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct Scans {
    /// The last rights-expiry scan that finished (Unix ms).
    pub rights_expiry_finished_ms: Option<i64>,
    /// A scan checkpointed mid-way (Unix ms of the checkpoint).
    pub rights_expiry_checkpoint_ms: Option<i64>,
    /// The DAM poll's watermark (the latest edit already polled, UTC as the DAM writes it).
    pub dam_poll_watermark: Option<String>,
}

/// The page's reader of the stack.
#[derive(Debug, Clone)]
pub struct OperationsReader {
    /// DynamoDB.
    pub dynamodb: aws_sdk_dynamodb::Client,
    /// SQS.
    pub sqs: aws_sdk_sqs::Client,
    /// `SentMessagesTable`.
    pub sent_messages_table: String,
    /// `ExpiryAlertsTable` (its `cursor`/`scan` item).
    pub expiry_alerts_table: String,
    /// `AssetStateTable` (its `poll#watermark` item).
    pub asset_state_table: String,
    /// The stack's name: its queues are named `<stack>-…`.
    pub stack: String,
}

fn number(item: &HashMap<String, AttributeValue>, name: &str) -> Option<i64> {
    item.get(name)?.as_n().ok()?.parse().ok()
}

impl OperationsReader {
    /// Flow and latest state of every message sent in `range`, of `flow` only when given.
    pub async fn deliveries(
        &self,
        range: &DayRange,
        flow: Option<MessageFlow>,
    ) -> Result<Vec<(MessageFlow, DeliveryState)>, StoreError> {
        let mut found = Vec::new();
        for day in range.days() {
            let mut start: Option<HashMap<String, AttributeValue>> = None;
            loop {
                let mut query = self
                    .dynamodb
                    .query()
                    .table_name(&self.sent_messages_table)
                    .index_name(BY_DAY_INDEX)
                    .key_condition_expression("#day = :day")
                    .expression_attribute_names("#day", "day")
                    .expression_attribute_names("#state", "state")
                    .expression_attribute_values(":day", AttributeValue::S(day.to_string()))
                    .projection_expression("flow, #state")
                    .set_exclusive_start_key(start.take());
                if let Some(flow) = flow {
                    query = query
                        .filter_expression("flow = :flow")
                        .expression_attribute_values(
                            ":flow",
                            AttributeValue::S(flow.code().into()),
                        );
                }
                let page = query.send().await.map_err(store_error)?;
                for item in page.items() {
                    let flow = item
                        .get("flow")
                        .and_then(|v| v.as_s().ok())
                        .and_then(|c| MessageFlow::from_code(c));
                    let state = item
                        .get("state")
                        .and_then(|v| v.as_s().ok())
                        .and_then(|s| DeliveryState::parse(s))
                        .unwrap_or(DeliveryState::Accepted);
                    if let Some(flow) = flow {
                        found.push((flow, state));
                    }
                }
                match page.last_evaluated_key {
                    Some(key) if !key.is_empty() => start = Some(key),
                    _ => break,
                }
            }
        }
        Ok(found)
    }

    /// Every dead-letter queue of the stack (`<stack>-<Queue>-dlq[.fifo]`), sorted by queue.
    pub async fn dead_letters(&self) -> Result<Vec<DeadLetters>, StoreError> {
        let prefix = format!("{}-", self.stack);
        let mut urls = Vec::new();
        let mut token = None;
        loop {
            let page = self
                .sqs
                .list_queues()
                .queue_name_prefix(&prefix)
                .max_results(1000)
                .set_next_token(token)
                .send()
                .await
                .map_err(store_error)?;
            urls.extend(page.queue_urls().iter().cloned());
            match page.next_token {
                Some(next) => token = Some(next),
                None => break,
            }
        }
        let mut held = Vec::new();
        for url in urls {
            let name = url.rsplit('/').next().unwrap_or(&url);
            let name = name.strip_suffix(".fifo").unwrap_or(name);
            let Some(queue) = name
                .strip_prefix(&prefix)
                .and_then(|n| n.strip_suffix("-dlq"))
            else {
                continue;
            };
            let attributes = self
                .sqs
                .get_queue_attributes()
                .queue_url(&url)
                .attribute_names(QueueAttributeName::ApproximateNumberOfMessages)
                .attribute_names(QueueAttributeName::ApproximateNumberOfMessagesNotVisible)
                .send()
                .await
                .map_err(store_error)?
                .attributes
                .unwrap_or_default();
            let count = |name: QueueAttributeName| -> u64 {
                attributes
                    .get(&name)
                    .and_then(|v| v.parse().ok())
                    .unwrap_or(0)
            };
            held.push(DeadLetters {
                queue: queue.to_owned(),
                depth: count(QueueAttributeName::ApproximateNumberOfMessages)
                    + count(QueueAttributeName::ApproximateNumberOfMessagesNotVisible),
            });
        }
        held.sort_by(|a, b| a.queue.cmp(&b.queue));
        Ok(held)
    }

    /// The last rights-expiry scan and the DAM poll's watermark.
    pub async fn scans(&self) -> Result<Scans, StoreError> {
        let scan = self
            .dynamodb
            .get_item()
            .table_name(&self.expiry_alerts_table)
            .key("pk", AttributeValue::S("cursor".into()))
            .key("sk", AttributeValue::S("scan".into()))
            .send()
            .await
            .map_err(store_error)?
            .item
            .unwrap_or_default();
        let watermark = self
            .dynamodb
            .get_item()
            .table_name(&self.asset_state_table)
            .key("pk", AttributeValue::S("poll#watermark".into()))
            .send()
            .await
            .map_err(store_error)?
            .item
            .and_then(|i| i.get("edited_at")?.as_s().ok().cloned());
        let checkpointed = scan.contains_key("cursor");
        Ok(Scans {
            rights_expiry_finished_ms: number(&scan, "finished_at_ms"),
            rights_expiry_checkpoint_ms: checkpointed
                .then(|| number(&scan, "saved_at_ms"))
                .flatten(),
            dam_poll_watermark: watermark,
        })
    }
}

//! Where a consumer puts records it does not hand back to SQS: its dead-letter queue (with the
//! reason, for records that can never succeed) and its own queue (records it had no time to try).

use crate::lambda::sqs_batch::{RecordQueues, receive_count};
use crate::ports::QueueError;
use aws_lambda_events::sqs::SqsMessage;
use aws_sdk_sqs::types::MessageAttributeValue;

/// Longest failure reason kept on a dead letter (SQS attributes share the 256 KiB message limit).
const MAX_REASON_CHARS: usize = 1_000;

/// A consumer's dead-letter queue and the queues its records come from.
#[derive(Debug, Clone)]
pub struct SqsRecordQueues {
    client: aws_sdk_sqs::Client,
    dead_letter_url: String,
    /// The function that failed the records, for operators reading the DLQ.
    function: String,
}

impl SqsRecordQueues {
    /// Wraps a client, the DLQ's URL and the consuming function's name.
    pub fn new(
        client: aws_sdk_sqs::Client,
        dead_letter_url: impl Into<String>,
        function: impl Into<String>,
    ) -> Self {
        Self {
            client,
            dead_letter_url: dead_letter_url.into(),
            function: function.into(),
        }
    }
}

fn text(value: impl Into<String>) -> Result<MessageAttributeValue, QueueError> {
    MessageAttributeValue::builder()
        .data_type("String")
        .string_value(value)
        .build()
        .map_err(|e| QueueError::Rejected {
            reason: e.to_string(),
        })
}

/// The queue URL of an SQS ARN (`arn:aws:sqs:REGION:ACCOUNT:NAME`); the SDK sends it to its
/// configured endpoint, so this works against AWS and the local stack alike.
pub fn queue_url_of_arn(arn: &str) -> Option<String> {
    let mut parts = arn.split(':');
    let (Some("arn"), Some(_partition), Some("sqs"), Some(region), Some(account), Some(name)) = (
        parts.next(),
        parts.next(),
        parts.next(),
        parts.next(),
        parts.next(),
        parts.next(),
    ) else {
        return None;
    };
    Some(format!(
        "https://sqs.{region}.amazonaws.com/{account}/{name}"
    ))
}

fn unavailable(error: impl std::error::Error + Send + Sync + 'static) -> QueueError {
    QueueError::Unavailable(Box::new(error))
}

impl RecordQueues for SqsRecordQueues {
    async fn dead_letter(&self, record: &SqsMessage, reason: &str) -> Result<(), QueueError> {
        let id = record.message_id.clone().unwrap_or_default();
        let reason: String = reason.chars().take(MAX_REASON_CHARS).collect();
        let mut request = self
            .client
            .send_message()
            .queue_url(&self.dead_letter_url)
            .message_body(record.body.clone().unwrap_or_default())
            .message_attributes("failure_reason", text(reason)?)
            .message_attributes("failed_by", text(self.function.clone())?)
            .message_attributes("source_message_id", text(id.clone())?)
            .message_attributes("receive_count", text(receive_count(record).to_string())?);
        if let Some(source) = &record.event_source_arn {
            request = request.message_attributes("source_queue", text(source.clone())?);
        }
        if self.dead_letter_url.ends_with(".fifo") {
            let group = record
                .attributes
                .get("MessageGroupId")
                .cloned()
                .unwrap_or_else(|| "dead-letters".into());
            request = request
                .message_group_id(group)
                .message_deduplication_id(format!("dl-{id}"));
        }
        request.send().await.map_err(unavailable)?;
        Ok(())
    }

    async fn requeue(&self, record: &SqsMessage) -> Result<(), QueueError> {
        let url = record
            .event_source_arn
            .as_deref()
            .and_then(queue_url_of_arn)
            .ok_or_else(|| QueueError::Rejected {
                reason: "the record names no SQS queue it came from".into(),
            })?;
        let id = record.message_id.clone().unwrap_or_default();
        let mut request = self
            .client
            .send_message()
            .queue_url(&url)
            .message_body(record.body.clone().unwrap_or_default());
        if let Some(group) = record.attributes.get("MessageGroupId") {
            request = request
                .message_group_id(group)
                .message_deduplication_id(format!("rq-{id}"));
        }
        request.send().await.map_err(unavailable)?;
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_queue_arn_becomes_its_url() {
        assert_eq!(
            queue_url_of_arn("arn:aws:sqs:eu-west-1:123456789012:local-inbound.fifo").as_deref(),
            Some("https://sqs.eu-west-1.amazonaws.com/123456789012/local-inbound.fifo")
        );
        assert_eq!(queue_url_of_arn("arn:aws:sns:eu-west-1:1:topic"), None);
    }
}

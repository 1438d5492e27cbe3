//! Runs an SQS batch record by record and reports exactly the records worth retrying.

use crate::error::{Retryable, chain};
use aws_lambda_events::sqs::{BatchItemFailure, SqsBatchResponse, SqsEvent, SqsMessage};
use std::collections::HashSet;
use std::future::Future;

/// Handles each record in order. Retryable failures are reported (SQS redelivers them, and after
/// `maxReceiveCount` moves them to the DLQ); permanent ones are logged with their cause and
/// acknowledged. On FIFO queues, once a record fails, the later records of its message group are
/// reported without being handled, so a conversation is never processed out of order.
pub async fn process_records<F, Fut, E>(event: SqsEvent, mut handle: F) -> SqsBatchResponse
where
    F: FnMut(SqsMessage) -> Fut,
    Fut: Future<Output = Result<(), E>>,
    E: std::error::Error + Retryable + 'static,
{
    let mut response = SqsBatchResponse::default();
    let mut blocked_groups: HashSet<String> = HashSet::new();
    for record in event.records {
        let id = record.message_id.clone().unwrap_or_default();
        let group = record.attributes.get("MessageGroupId").cloned();
        if group.as_ref().is_some_and(|g| blocked_groups.contains(g)) {
            response.batch_item_failures.push(failure(id));
            continue;
        }
        match handle(record).await {
            Ok(()) => {}
            Err(error) if error.is_retryable() => {
                tracing::warn!(message_id = %id, error = %chain(&error), "record failed; SQS will redeliver it");
                if let Some(group) = group {
                    blocked_groups.insert(group);
                }
                response.batch_item_failures.push(failure(id));
            }
            Err(error) => {
                tracing::error!(message_id = %id, error = %chain(&error), outcome = "rejected",
                    "record can never succeed; acknowledged and dropped from the queue");
            }
        }
    }
    response
}

fn failure(id: String) -> BatchItemFailure {
    let mut failure = BatchItemFailure::default();
    failure.item_identifier = id;
    failure
}

#[cfg(test)]
mod tests {
    use super::*;

    #[derive(Debug, thiserror::Error)]
    #[error("{0}")]
    struct TestError(&'static str, bool);

    impl Retryable for TestError {
        fn is_retryable(&self) -> bool {
            self.1
        }
    }

    fn record(id: &str, group: Option<&str>, body: &str) -> SqsMessage {
        let mut record = SqsMessage::default();
        record.message_id = Some(id.to_owned());
        record.body = Some(body.to_owned());
        if let Some(group) = group {
            record
                .attributes
                .insert("MessageGroupId".into(), group.into());
        }
        record
    }

    fn event(records: Vec<SqsMessage>) -> SqsEvent {
        let mut event = SqsEvent::default();
        event.records = records;
        event
    }

    fn failed_ids(response: &SqsBatchResponse) -> Vec<&str> {
        response
            .batch_item_failures
            .iter()
            .map(|f| f.item_identifier.as_str())
            .collect()
    }

    async fn handle(record: SqsMessage) -> Result<(), TestError> {
        match record.body.as_deref() {
            Some("retry") => Err(TestError("busy", true)),
            Some("poison") => Err(TestError("never", false)),
            _ => Ok(()),
        }
    }

    #[tokio::test]
    async fn only_the_retryable_record_is_reported() {
        let records = (0..10)
            .map(|n| record(&format!("m{n}"), None, if n == 4 { "retry" } else { "ok" }))
            .collect();
        let response = process_records(event(records), handle).await;
        assert_eq!(failed_ids(&response), ["m4"]);
    }

    #[tokio::test]
    async fn a_permanent_failure_is_acknowledged() {
        let response = process_records(event(vec![record("m1", None, "poison")]), handle).await;
        assert!(response.batch_item_failures.is_empty());
    }

    #[tokio::test]
    async fn later_records_of_a_failed_fifo_group_wait_for_it() {
        let records = vec![
            record("a1", Some("A"), "retry"),
            record("b1", Some("B"), "ok"),
            record("a2", Some("A"), "ok"),
        ];
        let mut handled = Vec::new();
        let response = process_records(event(records), |r| {
            handled.push(r.message_id.clone().unwrap_or_default());
            handle(r)
        })
        .await;
        assert_eq!(failed_ids(&response), ["a1", "a2"]);
        assert_eq!(handled, ["a1", "b1"]);
    }
}

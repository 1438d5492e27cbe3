//! Runs an SQS batch within the invocation's time and reports exactly the records worth retrying.

use crate::error::{Retryable, chain};
use crate::lambda::deadline;
use crate::ports::QueueError;
use aws_lambda_events::sqs::{BatchItemFailure, SqsBatchResponse, SqsEvent, SqsMessage};
use futures::StreamExt as _;
use std::future::Future;
use std::time::Duration;
use tokio::time::Instant;

/// Receives after which an untried record is put back as a new message rather than reported:
/// every queue of the template has a `maxReceiveCount` above this, so no record reaches its DLQ
/// without having been tried.
pub const RETURN_UNTRIED_AFTER_RECEIVES: u32 = 3;

/// How a consumer spends its invocation.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct BatchPolicy {
    /// Records handled at once. Records of one FIFO message group always run one after another,
    /// in order; records of a standard queue are each their own group.
    pub concurrency: usize,
    /// The longest one record may take (its calls' timeouts and retries). A record is started only
    /// while this much time is left before the deadline, so an invocation never times out mid-batch.
    pub record_worst_case: Duration,
    /// Kept free at the end for returning records and answering.
    pub answer_margin: Duration,
}

impl Default for BatchPolicy {
    fn default() -> Self {
        Self {
            concurrency: 10,
            record_worst_case: Duration::from_secs(25),
            answer_margin: Duration::from_secs(2),
        }
    }
}

/// Where the runner puts records it does not hand back to SQS as failures.
pub trait RecordQueues: Send + Sync {
    /// Moves a record that can never succeed to its dead-letter queue, with the reason.
    fn dead_letter(
        &self,
        record: &SqsMessage,
        reason: &str,
    ) -> impl Future<Output = Result<(), QueueError>> + Send;

    /// Puts an untried record back on its queue as a new message (its receive count starts again).
    fn requeue(&self, record: &SqsMessage) -> impl Future<Output = Result<(), QueueError>> + Send;
}

/// What became of one record.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Outcome {
    Done,
    Retry,
    Untried,
}

/// Handles the records of `event` before `deadline`, each with [`deadline::scope`] set.
///
/// Retryable failures are reported (SQS redelivers them, and after `maxReceiveCount` moves them to
/// the DLQ). Permanent failures go to the dead-letter queue with their reason and are acknowledged;
/// if that move fails they are reported, so nothing is lost. On FIFO queues, once a record fails,
/// the later records of its message group are reported without being handled, so a conversation is
/// never processed out of order. Records not started for lack of time are reported, or put back as
/// new messages once they have been received [`RETURN_UNTRIED_AFTER_RECEIVES`] times.
pub async fn process_records<F, Fut, E, Q>(
    event: SqsEvent,
    deadline: Instant,
    policy: &BatchPolicy,
    queues: &Q,
    handle: F,
) -> SqsBatchResponse
where
    F: Fn(SqsMessage) -> Fut,
    Fut: Future<Output = Result<(), E>>,
    E: std::error::Error + Retryable + 'static,
    Q: RecordQueues,
{
    let work_deadline = deadline
        .checked_sub(policy.answer_margin)
        .unwrap_or(deadline);
    let groups = in_groups(event.records);
    let handle = &handle;
    let outcomes: Vec<(SqsMessage, Outcome)> = futures::stream::iter(groups)
        .map(|group| async move {
            let mut outcomes = Vec::with_capacity(group.len());
            let mut blocked = false;
            for record in group {
                let left = work_deadline.saturating_duration_since(Instant::now());
                let outcome = if blocked {
                    Outcome::Retry
                } else if left < policy.record_worst_case {
                    Outcome::Untried
                } else {
                    handle_one(record.clone(), work_deadline, queues, handle).await
                };
                blocked |= outcome != Outcome::Done;
                outcomes.push((record, outcome));
            }
            outcomes
        })
        .buffer_unordered(policy.concurrency.max(1))
        .flat_map(futures::stream::iter)
        .collect()
        .await;

    let mut response = SqsBatchResponse::default();
    let mut untried = 0;
    for (record, outcome) in outcomes {
        let id = record.message_id.clone().unwrap_or_default();
        match outcome {
            Outcome::Done => {}
            Outcome::Retry => response.batch_item_failures.push(failure(id)),
            Outcome::Untried => {
                untried += 1;
                if receive_count(&record) >= RETURN_UNTRIED_AFTER_RECEIVES {
                    match queues.requeue(&record).await {
                        Ok(()) => continue,
                        Err(error) => {
                            tracing::warn!(message_id = %id, error = %chain(&error), "could not put an untried record back; SQS will redeliver it");
                        }
                    }
                }
                response.batch_item_failures.push(failure(id));
            }
        }
    }
    if untried > 0 {
        tracing::warn!(
            untried,
            "the invocation ran out of time; records not started come back later"
        );
    }
    response
}

async fn handle_one<F, Fut, E, Q>(
    record: SqsMessage,
    deadline: Instant,
    queues: &Q,
    handle: &F,
) -> Outcome
where
    F: Fn(SqsMessage) -> Fut,
    Fut: Future<Output = Result<(), E>>,
    E: std::error::Error + Retryable + 'static,
    Q: RecordQueues,
{
    let id = record.message_id.clone().unwrap_or_default();
    let work = deadline::scope(deadline, handle(record.clone()));
    match tokio::time::timeout_at(deadline, work).await {
        Ok(Ok(())) => Outcome::Done,
        Ok(Err(error)) if error.is_retryable() => {
            tracing::warn!(message_id = %id, error = %chain(&error), "record failed; SQS will redeliver it");
            Outcome::Retry
        }
        Ok(Err(error)) => {
            let reason = chain(&error);
            match queues.dead_letter(&record, &reason).await {
                Ok(()) => {
                    tracing::error!(message_id = %id, error = %reason, outcome = "dead_lettered",
                        "record can never succeed; moved to the dead-letter queue with its reason");
                    Outcome::Done
                }
                Err(dlq) => {
                    tracing::error!(message_id = %id, error = %reason, dlq_error = %chain(&dlq),
                        "record can never succeed and the dead-letter queue refused it; SQS will redeliver it");
                    Outcome::Retry
                }
            }
        }
        Err(_) => {
            tracing::warn!(message_id = %id, "record overran the invocation's deadline; SQS will redeliver it");
            Outcome::Retry
        }
    }
}

/// Records grouped by FIFO message group, in order; records without a group stand alone.
fn in_groups(records: Vec<SqsMessage>) -> Vec<Vec<SqsMessage>> {
    let mut groups: Vec<(Option<String>, Vec<SqsMessage>)> = Vec::new();
    for record in records {
        let group = record.attributes.get("MessageGroupId").cloned();
        match groups
            .iter_mut()
            .find(|(g, _)| group.is_some() && *g == group)
        {
            Some((_, members)) => members.push(record),
            None => groups.push((group, vec![record])),
        }
    }
    groups.into_iter().map(|(_, members)| members).collect()
}

/// `ApproximateReceiveCount` of a record (1 on its first delivery).
pub fn receive_count(record: &SqsMessage) -> u32 {
    record
        .attributes
        .get("ApproximateReceiveCount")
        .and_then(|n| n.parse().ok())
        .unwrap_or(1)
}

fn failure(id: String) -> BatchItemFailure {
    let mut failure = BatchItemFailure::default();
    failure.item_identifier = id;
    failure
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::testing::InMemoryRecordQueues;
    use std::sync::Mutex;

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
        let mut ids: Vec<&str> = response
            .batch_item_failures
            .iter()
            .map(|f| f.item_identifier.as_str())
            .collect();
        ids.sort_unstable();
        ids
    }

    async fn handle(record: SqsMessage) -> Result<(), TestError> {
        match record.body.as_deref() {
            Some("retry") => Err(TestError("busy", true)),
            Some("poison") => Err(TestError("never", false)),
            Some("slow") => {
                // A DAM that answers after 20 s.
                tokio::time::sleep(Duration::from_secs(20)).await;
                Ok(())
            }
            _ => Ok(()),
        }
    }

    fn far() -> Instant {
        Instant::now() + Duration::from_secs(900)
    }

    #[tokio::test]
    async fn only_the_retryable_record_is_reported() {
        let records = (0..10)
            .map(|n| record(&format!("m{n}"), None, if n == 4 { "retry" } else { "ok" }))
            .collect();
        let queues = InMemoryRecordQueues::default();
        let response = process_records(
            event(records),
            far(),
            &BatchPolicy::default(),
            &queues,
            handle,
        )
        .await;
        assert_eq!(failed_ids(&response), ["m4"]);
    }

    #[tokio::test]
    async fn a_permanent_failure_is_dead_lettered_with_its_reason_and_acknowledged() {
        let queues = InMemoryRecordQueues::default();
        let response = process_records(
            event(vec![record("m1", None, "poison")]),
            far(),
            &BatchPolicy::default(),
            &queues,
            handle,
        )
        .await;
        assert!(response.batch_item_failures.is_empty());
        assert_eq!(
            queues.dead_letters(),
            [("m1".to_owned(), "never".to_owned())]
        );
    }

    #[tokio::test]
    async fn a_permanent_failure_the_dlq_refuses_is_reported_not_lost() {
        let queues = InMemoryRecordQueues::default();
        queues.refuse_dead_letters();
        let response = process_records(
            event(vec![record("m1", None, "poison")]),
            far(),
            &BatchPolicy::default(),
            &queues,
            handle,
        )
        .await;
        assert_eq!(failed_ids(&response), ["m1"]);
    }

    #[tokio::test]
    async fn later_records_of_a_failed_fifo_group_wait_for_it() {
        let records = vec![
            record("a1", Some("A"), "retry"),
            record("b1", Some("B"), "ok"),
            record("a2", Some("A"), "ok"),
        ];
        let handled = Mutex::new(Vec::new());
        let queues = InMemoryRecordQueues::default();
        let response = process_records(
            event(records),
            far(),
            &BatchPolicy::default(),
            &queues,
            |r| {
                handled
                    .lock()
                    .expect("lock")
                    .push(r.message_id.clone().unwrap_or_default());
                handle(r)
            },
        )
        .await;
        assert_eq!(failed_ids(&response), ["a1", "a2"]);
        let mut handled = handled.into_inner().expect("lock");
        handled.sort();
        assert_eq!(handled, ["a1", "b1"]);
    }

    #[tokio::test(start_paused = true)]
    async fn a_slow_dam_batch_ends_in_time_and_the_untried_records_come_back() {
        // Ten records, one FIFO group (so one after another), 20 s each, a 60 s function.
        let records: Vec<_> = (0..10)
            .map(|n| record(&format!("m{n}"), Some("asset-1"), "slow"))
            .collect();
        let policy = BatchPolicy {
            concurrency: 10,
            record_worst_case: Duration::from_secs(21),
            answer_margin: Duration::from_secs(2),
        };
        let queues = InMemoryRecordQueues::default();
        let started = Instant::now();
        let deadline = started + Duration::from_secs(60);
        let response = process_records(event(records), deadline, &policy, &queues, handle).await;
        assert!(Instant::now() <= deadline, "the invocation ended in time");
        // 58 s of work time fits two 21 s worst cases: m0 and m1 done, m2..m9 come back.
        assert_eq!(
            failed_ids(&response),
            ["m2", "m3", "m4", "m5", "m6", "m7", "m8", "m9"]
        );
        assert!(queues.requeued().is_empty());
    }

    #[tokio::test(start_paused = true)]
    async fn records_of_different_groups_share_the_invocation_time() {
        let records: Vec<_> = (0..10)
            .map(|n| record(&format!("m{n}"), None, "slow"))
            .collect();
        let queues = InMemoryRecordQueues::default();
        let policy = BatchPolicy {
            record_worst_case: Duration::from_secs(21),
            ..BatchPolicy::default()
        };
        let deadline = Instant::now() + Duration::from_secs(60);
        let response = process_records(event(records), deadline, &policy, &queues, handle).await;
        assert!(response.batch_item_failures.is_empty());
    }

    #[tokio::test(start_paused = true)]
    async fn an_untried_record_received_many_times_is_put_back_rather_than_dead_lettered() {
        let mut tired = record("m1", Some("G"), "ok");
        tired.attributes.insert(
            "ApproximateReceiveCount".into(),
            RETURN_UNTRIED_AFTER_RECEIVES.to_string(),
        );
        let fresh = record("m2", Some("H"), "ok");
        let queues = InMemoryRecordQueues::default();
        // Less time left than one record's worst case: nothing is started.
        let deadline = Instant::now() + Duration::from_secs(10);
        let response = process_records(
            event(vec![tired, fresh]),
            deadline,
            &BatchPolicy::default(),
            &queues,
            handle,
        )
        .await;
        assert_eq!(failed_ids(&response), ["m2"]);
        assert_eq!(queues.requeued(), ["m1"]);
    }

    #[tokio::test(start_paused = true)]
    async fn a_record_that_overruns_the_deadline_is_reported_for_retry() {
        let queues = InMemoryRecordQueues::default();
        let policy = BatchPolicy {
            record_worst_case: Duration::from_secs(1),
            ..BatchPolicy::default()
        };
        let deadline = Instant::now() + Duration::from_secs(10);
        let response = process_records(
            event(vec![record("m1", None, "slow")]),
            deadline,
            &policy,
            &queues,
            handle,
        )
        .await;
        assert_eq!(failed_ids(&response), ["m1"]);
        assert!(Instant::now() <= deadline);
    }
}

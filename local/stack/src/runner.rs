//! The local queue runner: plays Lambda's SQS event source mappings. It receives up to the batch
//! size, invokes the consumer with a real `SqsEvent`, deletes only the records not reported failed,
//! and leaves the failed ones to SQS, whose redrive policy moves them to the DLQ after
//! `maxReceiveCount` receives.
//!
//! As Lambda does, it runs several batches of one queue at once, each in its own instance of the
//! function (its own cold start and memory): one poller per instance. On a FIFO queue SQS hands
//! out no message of a group while another of that group is in flight, so at most one batch per
//! message group is in flight, which is Lambda's guarantee too.

use crate::functions::SqsFn;
use aws_lambda_events::sqs::{SqsEvent, SqsMessage};
use aws_sdk_sqs::types::{DeleteMessageBatchRequestEntry, MessageSystemAttributeName};
use std::sync::Arc;
use std::time::Duration;

/// A queue and the function consuming it.
#[derive(Clone)]
pub struct Consumer {
    /// Logical id of the queue in the template.
    pub queue: String,
    /// Queue URL.
    pub url: String,
    /// Queue ARN (the records' `eventSourceARN`).
    pub arn: String,
    /// Batch size of the event source mapping.
    pub batch_size: u16,
    /// Whether the mapping honours `batchItemFailures` (`ReportBatchItemFailures`).
    pub report_batch_item_failures: bool,
    /// The function (the first instance).
    pub handler: SqsFn,
    /// Every instance, one poller each (`ScalingConfig.MaximumConcurrency`, else
    /// [`DEFAULT_POLLERS`]); `handler` is the first of them.
    pub instances: Vec<SqsFn>,
}

/// Concurrent batches per queue when the template sets no `MaximumConcurrency` (Lambda starts
/// with five pollers; two cores here make four the useful most).
pub const DEFAULT_POLLERS: u16 = 4;

impl std::fmt::Debug for Consumer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Consumer")
            .field("queue", &self.queue)
            .field("batch_size", &self.batch_size)
            .field("instances", &self.instances.len())
            .finish()
    }
}

/// What one poll did.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct BatchReport {
    /// Records received and passed to the function.
    pub received: usize,
    /// Message ids the function reported failed (left on the queue).
    pub failed: Vec<String>,
    /// Records deleted after success.
    pub deleted: usize,
}

/// Polls queues and invokes their consumers.
#[derive(Debug, Clone)]
pub struct QueueRunner {
    sqs: aws_sdk_sqs::Client,
    /// Seconds before a failed record may be received again (Lambda waits the visibility timeout;
    /// locally a short delay keeps retries quick).
    retry_after_seconds: i32,
}

impl QueueRunner {
    /// A runner on `sqs`.
    pub fn new(sqs: aws_sdk_sqs::Client) -> Self {
        Self {
            sqs,
            retry_after_seconds: 0,
        }
    }

    /// One receive / invoke / delete cycle on `consumer`'s queue, by its first instance.
    pub async fn poll_once(
        &self,
        consumer: &Consumer,
        wait_seconds: i32,
    ) -> anyhow::Result<BatchReport> {
        self.poll_with(consumer, &consumer.handler, wait_seconds)
            .await
    }

    /// One receive / invoke / delete cycle on `consumer`'s queue, by the instance `handler`.
    async fn poll_with(
        &self,
        consumer: &Consumer,
        handler: &SqsFn,
        wait_seconds: i32,
    ) -> anyhow::Result<BatchReport> {
        let received = self
            .sqs
            .receive_message()
            .queue_url(&consumer.url)
            .max_number_of_messages(i32::from(consumer.batch_size.clamp(1, 10)))
            .wait_time_seconds(wait_seconds)
            .message_system_attribute_names(MessageSystemAttributeName::All)
            .send()
            .await?
            .messages
            .unwrap_or_default();
        if received.is_empty() {
            return Ok(BatchReport::default());
        }
        let mut event = SqsEvent::default();
        event.records = received
            .iter()
            .map(|m| to_record(m, &consumer.arn))
            .collect();
        let response = handler(event).await;
        let reported: Vec<String> = response
            .batch_item_failures
            .into_iter()
            .map(|f| f.item_identifier)
            .collect();
        let ids: Vec<&str> = received
            .iter()
            .filter_map(|m| m.message_id.as_deref())
            .collect();
        // As Lambda does: without ReportBatchItemFailures a returned batch is done; an identifier
        // that is not in the batch fails the whole batch.
        let failed: Vec<String> = if !consumer.report_batch_item_failures {
            Vec::new()
        } else if reported.iter().any(|id| !ids.contains(&id.as_str())) {
            tracing::warn!(queue = %consumer.queue, "batchItemFailures names a record not in the batch: the whole batch fails");
            ids.iter().map(|id| (*id).to_owned()).collect()
        } else {
            reported
        };
        let done: Vec<_> = received
            .iter()
            .filter(|m| {
                !failed
                    .iter()
                    .any(|f| Some(f.as_str()) == m.message_id.as_deref())
            })
            .enumerate()
            .filter_map(|(i, m)| {
                DeleteMessageBatchRequestEntry::builder()
                    .id(i.to_string())
                    .set_receipt_handle(m.receipt_handle.clone())
                    .build()
                    .ok()
            })
            .collect();
        let deleted = done.len();
        if !done.is_empty() {
            self.sqs
                .delete_message_batch()
                .queue_url(&consumer.url)
                .set_entries(Some(done))
                .send()
                .await?;
        }
        for message in received.iter().filter(|m| {
            failed
                .iter()
                .any(|f| Some(f.as_str()) == m.message_id.as_deref())
        }) {
            if let Some(handle) = &message.receipt_handle {
                let changed = self
                    .sqs
                    .change_message_visibility()
                    .queue_url(&consumer.url)
                    .receipt_handle(handle)
                    .visibility_timeout(self.retry_after_seconds)
                    .send()
                    .await;
                match changed {
                    Ok(_) => {}
                    // The batch outlived the visibility timeout and the record was received
                    // again: as with Lambda, it simply comes back (the consumers' claims hold).
                    Err(error)
                        if aws_sdk_sqs::error::ProvideErrorMetadata::code(&error)
                            == Some("ReceiptHandleIsInvalid") =>
                    {
                        tracing::warn!(queue = %consumer.queue, "a failed record's receipt expired before it was returned");
                    }
                    Err(error) => return Err(error.into()),
                }
            }
        }
        tracing::info!(queue = %consumer.queue, received = received.len(), failed = failed.len(), "local event source mapping invoked the consumer");
        Ok(BatchReport {
            received: received.len(),
            failed,
            deleted,
        })
    }

    /// Polls `consumer` until its queue yields nothing (or `max_rounds` polls).
    pub async fn drain(
        &self,
        consumer: &Consumer,
        max_rounds: usize,
    ) -> anyhow::Result<Vec<BatchReport>> {
        let mut reports = Vec::new();
        for _ in 0..max_rounds {
            let report = self.poll_once(consumer, 0).await?;
            if report.received == 0 {
                break;
            }
            reports.push(report);
        }
        Ok(reports)
    }

    /// Polls `consumer` with every instance at once until the queue holds nothing, visible, in
    /// flight or delayed (or each poller made `max_rounds` polls). Reports are in completion order.
    pub async fn drain_concurrently(
        &self,
        consumer: &Consumer,
        max_rounds: usize,
    ) -> anyhow::Result<Vec<BatchReport>> {
        let pollers = consumer.instances.iter().map(|handler| async move {
            let mut reports = Vec::new();
            for _ in 0..max_rounds {
                let report = self.poll_with(consumer, handler, 0).await?;
                if report.received > 0 {
                    reports.push(report);
                } else if self.is_empty(consumer).await? {
                    break;
                } else {
                    // Other pollers hold the remaining groups; look again shortly.
                    tokio::time::sleep(Duration::from_millis(20)).await;
                }
            }
            Ok::<_, anyhow::Error>(reports)
        });
        let mut all = Vec::new();
        for reports in futures::future::try_join_all(pollers).await? {
            all.extend(reports);
        }
        Ok(all)
    }

    /// Whether the queue holds no message at all (visible, in flight or delayed).
    async fn is_empty(&self, consumer: &Consumer) -> anyhow::Result<bool> {
        use aws_sdk_sqs::types::QueueAttributeName as A;
        let counts = [
            A::ApproximateNumberOfMessages,
            A::ApproximateNumberOfMessagesNotVisible,
            A::ApproximateNumberOfMessagesDelayed,
        ];
        let attributes = self
            .sqs
            .get_queue_attributes()
            .queue_url(&consumer.url)
            .set_attribute_names(Some(counts.to_vec()))
            .send()
            .await?
            .attributes
            .unwrap_or_default();
        Ok(counts.iter().all(|name| {
            attributes
                .get(name)
                .is_none_or(|count| count.parse::<u64>().is_ok_and(|n| n == 0))
        }))
    }

    /// Polls every consumer in the background with all its instances, as deployed event source
    /// mappings do.
    pub fn spawn(self: Arc<Self>, consumers: Vec<Consumer>) -> Vec<tokio::task::JoinHandle<()>> {
        consumers
            .into_iter()
            .flat_map(|consumer| {
                let consumer = Arc::new(consumer);
                let runner = Arc::clone(&self);
                consumer
                    .instances
                    .clone()
                    .into_iter()
                    .map(move |handler| {
                        let (runner, consumer) = (Arc::clone(&runner), Arc::clone(&consumer));
                        tokio::spawn(async move {
                            loop {
                                if let Err(error) = runner.poll_with(&consumer, &handler, 1).await
                                {
                                    tracing::warn!(queue = %consumer.queue, error = %error, "local poll failed");
                                    tokio::time::sleep(Duration::from_secs(1)).await;
                                }
                            }
                        })
                    })
            })
            .collect()
    }
}

fn to_record(message: &aws_sdk_sqs::types::Message, arn: &str) -> SqsMessage {
    let mut record = SqsMessage::default();
    record.message_id = message.message_id.clone();
    record.receipt_handle = message.receipt_handle.clone();
    record.body = message.body.clone();
    record.md5_of_body = message.md5_of_body.clone();
    record.attributes = message
        .attributes
        .iter()
        .flatten()
        .map(|(k, v)| (k.as_str().to_owned(), v.clone()))
        .collect();
    record.event_source = Some("aws:sqs".into());
    record.event_source_arn = Some(arn.to_owned());
    record.aws_region = Some("us-east-1".into());
    record
}

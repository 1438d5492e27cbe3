//! `track-delivery`: consumes the `DeliveryStatus` FIFO queue (status items route-inbound puts
//! there) and applies each to its sent-message record through the delivery-tracking flow.

use aws_lambda_events::sqs::{SqsBatchResponse, SqsEvent, SqsMessage};
use shared::adapters::sending::{DynamoSendLedger, DynamoSentMessages};
use shared::adapters::sharing_audit::DynamoSharingAudit;
use shared::adapters::sqs_json::{SqsJsonQueue, SqsOutboundQueue};
use shared::adapters::sqs_records::SqsRecordQueues;
use shared::config::{ConfigError, Env};
use shared::domain::inbound::{ENVELOPE_VERSION, InboundItem};
use shared::error::Retryable;
use shared::flows::track_delivery::{DeliveryTracker, TrackError};
use shared::lambda::sqs_batch::{BatchPolicy, RecordQueues, process_records};
use shared::ports::{OutboundQueue, SendLedger, SentMessageStore, SharingAudit};
use std::time::Duration;
use tokio::time::Instant;

/// Settings read at cold start.
#[derive(Debug, Clone)]
pub struct Config {
    /// Send-key claims and outcomes.
    pub sends_table: String,
    /// wamid → what was sent.
    pub sent_messages_table: String,
    /// `outbound.fifo`, for template versions.
    pub outbound_queue_url: String,
    /// The sharing audit (flow 5), marked sent / delivered / read.
    pub sharing_audit_table: String,
    /// The dead-letter queue of `DeliveryStatus`.
    pub dead_letter_queue_url: String,
}

impl Config {
    /// Reads the environment, reporting every missing variable at once.
    pub fn from_lookup(lookup: impl Fn(&str) -> Option<String>) -> Result<Self, ConfigError> {
        let mut env = Env::new(lookup);
        let config = Self {
            sends_table: env.required("SENDS_TABLE"),
            sent_messages_table: env.required("SENT_MESSAGES_TABLE"),
            outbound_queue_url: env.required("OUTBOUND_QUEUE_URL"),
            sharing_audit_table: env.required("SHARING_AUDIT_TABLE"),
            dead_letter_queue_url: env.required("DEAD_LETTER_QUEUE_URL"),
        };
        env.finish()?;
        Ok(config)
    }
}

/// The function's dependencies.
pub type Deps<
    L = DynamoSendLedger,
    M = DynamoSentMessages,
    Q = SqsOutboundQueue,
    A = DynamoSharingAudit,
> = DeliveryTracker<L, M, Q, A>;

/// The function as Lambda and the local stack start and invoke it.
#[derive(Debug)]
pub struct Lambda {
    /// Delivery tracking.
    pub tracker: Deps,
    /// The dead-letter queue and the source queue of `DeliveryStatus` records.
    pub records: SqsRecordQueues,
}

impl shared::lambda::function::Function for Lambda {
    const NAME: &'static str = "track-delivery";
    type Event = SqsEvent;
    type Response = SqsBatchResponse;
    type Error = std::convert::Infallible;

    async fn start(
        lookup: shared::lambda::function::Lookup<'_>,
        aws: &aws_config::SdkConfig,
    ) -> Result<Self, shared::lambda::function::StartError> {
        let config = Config::from_lookup(lookup)?;
        let dynamodb = aws_sdk_dynamodb::Client::new(aws);
        let sqs = aws_sdk_sqs::Client::new(aws);
        Ok(Self {
            tracker: DeliveryTracker {
                ledger: DynamoSendLedger::new(dynamodb.clone(), &config.sends_table),
                messages: DynamoSentMessages::new(dynamodb.clone(), &config.sent_messages_table),
                audit: DynamoSharingAudit::new(dynamodb, &config.sharing_audit_table),
                outbound: SqsOutboundQueue(SqsJsonQueue::new(
                    sqs.clone(),
                    &config.outbound_queue_url,
                )),
            },
            records: SqsRecordQueues::new(sqs, &config.dead_letter_queue_url, Self::NAME),
        })
    }

    async fn handle(
        &self,
        event: SqsEvent,
        deadline: Instant,
    ) -> Result<SqsBatchResponse, std::convert::Infallible> {
        Ok(handle_batch(&self.tracker, &self.records, event, deadline).await)
    }
}

/// One record that could not be applied.
#[derive(Debug, thiserror::Error)]
pub enum RecordError {
    /// Not an inbound item of a version this code reads.
    #[error("the record is not a status item")]
    Malformed(#[source] Option<serde_json::Error>),
    /// Tracking failed.
    #[error(transparent)]
    Track(#[from] TrackError),
}

impl Retryable for RecordError {
    fn is_retryable(&self) -> bool {
        match self {
            Self::Malformed(_) => false,
            Self::Track(e) => e.is_retryable(),
        }
    }
}

/// The most one status takes: a few table round trips and one enqueue.
pub const RECORD_WORST_CASE: Duration = Duration::from_secs(5);

/// Applies a `DeliveryStatus` batch before `deadline`; only what must come back is reported.
pub async fn handle_batch<L, M, Q, A, R>(
    tracker: &Deps<L, M, Q, A>,
    records: &R,
    event: SqsEvent,
    deadline: Instant,
) -> SqsBatchResponse
where
    L: SendLedger,
    M: SentMessageStore,
    Q: OutboundQueue,
    A: SharingAudit,
    R: RecordQueues,
{
    let policy = BatchPolicy {
        record_worst_case: RECORD_WORST_CASE,
        ..BatchPolicy::default()
    };
    process_records(event, deadline, &policy, records, |record| {
        handle_record(tracker, record)
    })
    .await
}

async fn handle_record<L, M, Q, A>(
    tracker: &Deps<L, M, Q, A>,
    record: SqsMessage,
) -> Result<(), RecordError>
where
    L: SendLedger,
    M: SentMessageStore,
    Q: OutboundQueue,
    A: SharingAudit,
{
    let item: InboundItem = serde_json::from_str(record.body.as_deref().unwrap_or(""))
        .map_err(|e| RecordError::Malformed(Some(e)))?;
    if item.v != ENVELOPE_VERSION {
        return Err(RecordError::Malformed(None));
    }
    tracker.track(&item).await?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use shared::domain::outbound::{MessageFlow, SendKey};
    use shared::domain::sending::DeliveryState;
    use shared::ports::{BusinessNumberId, SentMessage};
    use shared::testing::{
        InMemoryOutboundQueue, InMemoryRecordQueues, InMemorySendLedger, InMemorySentMessageStore,
        InMemorySharingAudit,
    };

    #[tokio::test]
    async fn a_batch_of_read_then_delivered_leaves_the_record_read_and_dead_letters_the_malformed_item()
     {
        let tracker = DeliveryTracker {
            ledger: InMemorySendLedger::default(),
            messages: InMemorySentMessageStore::default(),
            outbound: InMemoryOutboundQueue::default(),
            audit: InMemorySharingAudit::default(),
        };
        let wamid = "wamid.HBgLMTU1NTEyMzQ1NjcVAgARGBI5QTNDQTVCM0Q0Q0Q2RTY3RTcA";
        let recipient: shared::pseudonym::UserPseudonym =
            serde_json::from_str("\"u_3f9a0c1d2e4b5a6978812345\"").expect("pseudonym");
        tracker
            .messages
            .record(&SentMessage {
                message_id: wamid.into(),
                key: SendKey {
                    flow: MessageFlow::Review,
                    subject: "2RLQZBQ84U".into(),
                    version: "3".into(),
                    recipient,
                },
                number: BusinessNumberId::parse("109876543210987").expect("digits"),
                actor: Some("dam:jdoe".into()),
                what: "template:asset_review_request".into(),
                at_ms: 0,
            })
            .await
            .expect("recorded");
        let records = InMemoryRecordQueues::default();
        let event: SqsEvent = serde_json::from_str(include_str!(
            "../../../events/track-delivery/status-batch.json"
        ))
        .expect("event file");
        let response = handle_batch(
            &tracker,
            &records,
            event,
            Instant::now() + Duration::from_secs(30),
        )
        .await;
        assert!(response.batch_item_failures.is_empty(), "{response:?}");
        let record = tracker
            .messages
            .get(wamid)
            .await
            .expect("read")
            .expect("record");
        assert_eq!(record.state, DeliveryState::Read);
        assert_eq!(records.dead_letters().len(), 1);
    }

    #[test]
    fn every_missing_variable_is_named_at_once() {
        let err = Config::from_lookup(|_| None).expect_err("missing");
        for name in [
            "SENDS_TABLE",
            "SENT_MESSAGES_TABLE",
            "OUTBOUND_QUEUE_URL",
            "DEAD_LETTER_QUEUE_URL",
        ] {
            assert!(err.to_string().contains(name), "{err}");
        }
    }
}

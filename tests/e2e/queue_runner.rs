use aws_lambda_events::sqs::SqsEvent;
use e2e::TestEnv;
use futures::FutureExt as _;
use shared::error::Retryable;
use shared::lambda::sqs_batch::process_records;
use std::collections::HashMap;
use std::sync::{Arc, Mutex};

#[derive(Debug, thiserror::Error)]
#[error("downstream keeps failing for this record")]
struct StillFailing;

impl Retryable for StillFailing {
    fn is_retryable(&self) -> bool {
        true
    }
}

#[tokio::test]
async fn a_poison_record_is_the_only_failure_and_ends_in_the_dlq_after_max_receives() {
    let env = TestEnv::start().await;
    let sqs = env.stack.sqs();
    let url = env
        .stack
        .resources
        .queue_url("InboundQueue")
        .expect("queue")
        .to_owned();
    for n in 0..10 {
        let body = if n == 6 {
            "poison".to_owned()
        } else {
            format!("record {n}")
        };
        sqs.send_message()
            .queue_url(&url)
            .message_body(body)
            .message_group_id(format!("group-{n}"))
            .message_deduplication_id(format!("dedup-{n}"))
            .send()
            .await
            .expect("send");
    }

    let attempts: Arc<Mutex<HashMap<String, usize>>> = Arc::default();
    let seen = Arc::clone(&attempts);
    let handler = Arc::new(move |event: SqsEvent| {
        let seen = Arc::clone(&seen);
        async move {
            let deadline = tokio::time::Instant::now() + std::time::Duration::from_secs(60);
            let queues = shared::testing::InMemoryRecordQueues::default();
            let policy = shared::lambda::sqs_batch::BatchPolicy::default();
            process_records(event, deadline, &policy, &queues, |record| {
                let body = record.body.unwrap_or_default();
                *seen.lock().expect("lock").entry(body.clone()).or_default() += 1;
                async move {
                    if body == "poison" {
                        Err(StillFailing)
                    } else {
                        Ok(())
                    }
                }
            })
            .await
        }
        .boxed()
    });
    let consumer = env
        .stack
        .consumer_with("InboundQueue", 10, handler)
        .expect("consumer");

    let first = env
        .stack
        .runner
        .poll_once(&consumer, 0)
        .await
        .expect("poll");
    assert_eq!(first.received, 10);
    assert_eq!(first.deleted, 9);
    assert_eq!(first.failed.len(), 1, "only the poison record is reported");

    env.stack.runner.drain(&consumer, 20).await.expect("drain");
    assert_eq!(env.queue_depth("InboundQueue").await, 0);
    assert_eq!(env.receive_all("InboundDLQ").await, ["poison"]);
    let attempts = attempts.lock().expect("lock");
    assert_eq!(
        attempts.get("poison"),
        Some(&5),
        "tried maxReceiveCount times"
    );
    assert!(
        attempts
            .iter()
            .filter(|(b, _)| *b != "poison")
            .all(|(_, n)| *n == 1)
    );
}

#[tokio::test]
async fn a_failure_naming_a_record_outside_the_batch_fails_the_whole_batch_as_lambda_does() {
    let env = TestEnv::start().await;
    let sqs = env.stack.sqs();
    let url = env
        .stack
        .resources
        .queue_url("InboundQueue")
        .expect("queue")
        .to_owned();
    for n in 0..3 {
        sqs.send_message()
            .queue_url(&url)
            .message_body(format!("record {n}"))
            .message_group_id(format!("group-{n}"))
            .message_deduplication_id(format!("dedup-{n}"))
            .send()
            .await
            .expect("send");
    }
    let handler = Arc::new(|_event: SqsEvent| {
        async {
            let mut response = aws_lambda_events::sqs::SqsBatchResponse::default();
            let mut failure = aws_lambda_events::sqs::BatchItemFailure::default();
            failure.item_identifier = "not-a-message-of-this-batch".into();
            response.batch_item_failures.push(failure);
            response
        }
        .boxed()
    });
    let consumer = env
        .stack
        .consumer_with("InboundQueue", 10, handler)
        .expect("consumer");
    let report = env
        .stack
        .runner
        .poll_once(&consumer, 0)
        .await
        .expect("poll");
    assert_eq!(
        (report.received, report.failed.len(), report.deleted),
        (3, 3, 0)
    );
    assert_eq!(
        env.queue_depth("InboundQueue").await,
        3,
        "every record stays for a retry"
    );
}

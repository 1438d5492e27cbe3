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

/// What the concurrent instances saw: batches in flight now, the most ever, groups in flight, and
/// each group's bodies in the order they were handled.
#[derive(Debug, Default)]
struct Observed {
    in_flight: usize,
    most_in_flight: usize,
    groups_in_flight: Vec<String>,
    group_overlaps: usize,
    order: HashMap<String, Vec<usize>>,
}

#[tokio::test]
async fn the_runner_runs_batches_concurrently_but_never_two_of_one_fifo_group_at_once() {
    let env = TestEnv::start().await;
    let sqs = env.stack.sqs();
    let url = env
        .stack
        .resources
        .queue_url("InboundQueue")
        .expect("queue")
        .to_owned();
    // 8 conversations of 6 messages each, interleaved as they would arrive.
    for n in 0..6 {
        for group in 0..8 {
            sqs.send_message()
                .queue_url(&url)
                .message_body(format!("{group}:{n}"))
                .message_group_id(format!("user-{group}"))
                .message_deduplication_id(format!("{group}-{n}"))
                .send()
                .await
                .expect("send");
        }
    }
    let observed: Arc<Mutex<Observed>> = Arc::default();
    let instance = |observed: Arc<Mutex<Observed>>| -> local::functions::SqsFn {
        Arc::new(move |event: SqsEvent| {
            let observed = Arc::clone(&observed);
            async move {
                let records: Vec<(String, usize)> = event
                    .records
                    .iter()
                    .filter_map(|r| {
                        let (group, n) = r.body.as_deref()?.split_once(':')?;
                        Some((group.to_owned(), n.parse().ok()?))
                    })
                    .collect();
                let groups: Vec<String> = records.iter().map(|(g, _)| g.clone()).collect();
                {
                    let mut o = observed.lock().expect("lock");
                    o.in_flight += 1;
                    o.most_in_flight = o.most_in_flight.max(o.in_flight);
                    let overlaps = groups
                        .iter()
                        .filter(|g| o.groups_in_flight.contains(g))
                        .count();
                    o.group_overlaps += overlaps;
                    o.groups_in_flight.extend(groups.iter().cloned());
                    for (group, n) in &records {
                        o.order.entry(group.clone()).or_default().push(*n);
                    }
                }
                // Long enough for the other pollers to receive while this batch is in flight.
                tokio::time::sleep(std::time::Duration::from_millis(100)).await;
                let mut o = observed.lock().expect("lock");
                o.in_flight -= 1;
                o.groups_in_flight.retain(|g| !groups.contains(g));
                aws_lambda_events::sqs::SqsBatchResponse::default()
            }
            .boxed()
        })
    };
    let mut consumer = env
        .stack
        .consumer_with("InboundQueue", 2, instance(Arc::clone(&observed)))
        .expect("consumer");
    consumer.instances = (0..4).map(|_| instance(Arc::clone(&observed))).collect();

    env.stack
        .runner
        .drain_concurrently(&consumer, 200)
        .await
        .expect("drain");

    assert_eq!(
        env.queue_depth("InboundQueue").await,
        0,
        "everything handled"
    );
    let o = observed.lock().expect("lock");
    assert!(
        o.most_in_flight > 1,
        "several batches ran at once (most in flight: {})",
        o.most_in_flight
    );
    assert_eq!(o.group_overlaps, 0, "no group had two batches in flight");
    for group in 0..8 {
        assert_eq!(
            o.order[&group.to_string()],
            (0..6).collect::<Vec<_>>(),
            "conversation {group} was handled in order, each message once"
        );
    }
}

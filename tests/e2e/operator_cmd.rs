//! `connector dlq | sent | health` against the local stack: a message that could not be sent while
//! Graph refused the token lands in the outbound DLQ after its receives; `dlq list`, `dlq show`
//! (redacted) and `health` show it; once the token is renewed, `dlq redrive` puts it back, the
//! sender sends it, and it reaches the simulated phone exactly once; `sent` then tells its story.
//! Redrive by id and by age moves only the records selected, FIFO groups kept.

use crate::sender_support::{bench, pseudonym, text_request};
use connector::dlq_cmd::{self, Selection};
use connector::target::{Target, TargetOptions};
use connector::{health_cmd, sent_cmd};
use shared::config::Env;
use whatsapp_sim::Fault;

fn target(env: &e2e::TestEnv) -> Target {
    Target::new(
        &env.stack.aws,
        &TargetOptions {
            stack: Some(env.stack.resources.stack_name.clone()),
        },
        &Env::new(|_: &str| None),
    )
    .expect("target")
}

#[tokio::test]
async fn a_message_dead_lettered_while_the_token_was_refused_reaches_the_phone_once_after_redrive()
{
    let bench = bench(&[], |_| {}).await;
    let digits = "447700900611";
    bench.open_window(digits).await;
    bench.sim.fault_next(Fault::TokenInvalid, u32::MAX);
    let request = text_request(digits, "wamid.OPS-1", "Your photo of the bridge is filed");
    bench.enqueue(std::slice::from_ref(&request)).await;
    // Every receive fails while the token is refused; after maxReceiveCount (5) SQS moves it.
    for _ in 0..10 {
        if bench.env.queue_depth("OutboundQueue").await == 0 {
            break;
        }
        bench.send_once().await;
    }
    assert_eq!(bench.env.queue_depth("OutboundQueue").await, 0);
    assert_eq!(bench.dead_letters("OutboundDLQ").await, 1);
    assert_eq!(bench.sim.accepted_messages(), 0);
    let target = target(&bench.env);

    let list = dlq_cmd::list(&target).await.expect("dlq list");
    assert!(!list.ok, "a DLQ holds a record: exit status 1");
    let row = list
        .lines
        .iter()
        .find(|l| l.starts_with("Outbound-dlq "))
        .unwrap_or_else(|| panic!("no Outbound-dlq row: {:#?}", list.lines));
    assert_eq!(row.split_whitespace().nth(1), Some("1"), "depth 1: {row}");
    assert!(
        list.lines
            .iter()
            .filter(|l| l.starts_with("Inbound-dlq ") || l.starts_with("DamEvents-dlq "))
            .all(|l| l.split_whitespace().nth(1) == Some("0"))
    );

    let show = dlq_cmd::show(&target, "Outbound", 10)
        .await
        .expect("dlq show");
    let text = show.text();
    assert!(text.contains("1 record(s), showing 1"), "{text}");
    assert!(text.contains("  receives "), "{text}");
    assert!(
        text.contains(r#""flow":"field_ingest""#),
        "the key stays readable: {text}"
    );
    assert!(text.contains(pseudonym(digits).as_str()), "{text}");
    assert!(
        !text.contains(digits),
        "the phone number is redacted: {text}"
    );
    assert!(
        !text.contains("bridge"),
        "the message text is redacted: {text}"
    );
    // `show` hands the record back: it is still there to redrive.
    assert_eq!(bench.dead_letters("OutboundDLQ").await, 1);

    let health = health_cmd::health(&target).await.expect("health");
    assert!(!health.ok);
    let health_text = health.text();
    assert!(
        health_text.contains("dead letters in Outbound-dlq"),
        "{health_text}"
    );
    assert!(
        health_text.contains("DAM poll watermark: none yet"),
        "{health_text}"
    );
    assert!(
        health_text.contains("rights-expiry scan: none recorded yet"),
        "{health_text}"
    );

    // The cause is fixed (the token renewed); the record goes back and is sent once.
    bench.sim.clear_fault();
    let redriven = dlq_cmd::redrive(&target, "Outbound", &Selection::All)
        .await
        .expect("redrive");
    assert!(redriven.ok, "{:#?}", redriven.lines);
    assert_eq!(
        redriven.lines,
        ["Outbound-dlq: 1 record(s) sent back to Outbound, 0 left in the DLQ"]
    );
    assert_eq!(bench.dead_letters("OutboundDLQ").await, 0);
    bench.drain_outbound().await;
    let again = dlq_cmd::redrive(&target, "Outbound", &Selection::All)
        .await
        .expect("second redrive");
    assert_eq!(
        again.lines,
        ["Outbound-dlq: 0 record(s) sent back to Outbound, 0 left in the DLQ"]
    );
    bench.drain_outbound().await;
    let lines = bench.outbound_lines(digits);
    assert_eq!(
        lines
            .iter()
            .filter(|(_, summary)| summary.contains("bridge"))
            .count(),
        1,
        "exactly one message on the phone: {lines:?}"
    );
    assert_eq!(bench.sim.accepted_messages(), 1);
    assert!(bench.track_statuses().await >= 1, "the statuses came back");

    // `sent` by send key, then by the wamid it names.
    let by_key = sent_cmd::lookup(&target, &request.key.encode())
        .await
        .expect("sent by key");
    assert!(by_key.ok, "{:#?}", by_key.lines);
    assert!(
        by_key.lines.iter().any(|l| l == "outcome    sent"),
        "{:#?}",
        by_key.lines
    );
    let wamid = by_key
        .lines
        .iter()
        .find_map(|l| l.strip_prefix("message    "))
        .unwrap_or_else(|| panic!("no message id: {:#?}", by_key.lines))
        .to_owned();
    let by_wamid = sent_cmd::lookup(&target, &wamid)
        .await
        .expect("sent by wamid");
    let story = by_wamid.text();
    assert!(story.contains("flow       FieldIngest (fi)"), "{story}");
    assert!(story.contains("subject    wamid.OPS-1"), "{story}");
    assert!(
        story.contains(&format!("recipient  {}", pseudonym(digits))),
        "{story}"
    );
    assert!(story.contains("delivered"), "the status history: {story}");
    assert!(!story.contains(digits), "{story}");

    let missing = sent_cmd::lookup(&target, "wamid.NEVER")
        .await
        .expect("lookup");
    assert!(!missing.ok, "nothing sent under that id: exit status 1");

    let healthy = health_cmd::health(&target).await.expect("health");
    assert!(healthy.ok, "{}", healthy.text());
}

async fn put_dead_letters(env: &e2e::TestEnv, count: usize) -> Vec<String> {
    let url = env
        .stack
        .resources
        .queue_url("InboundDLQ")
        .expect("inbound dlq")
        .to_owned();
    let mut ids = Vec::new();
    for i in 0..count {
        let sent = env
            .stack
            .sqs()
            .send_message()
            .queue_url(&url)
            .message_body(format!(r#"{{"v":1,"key":"wamid.D{i}","n":{i}}}"#))
            .message_group_id(format!("u_group{}", i % 2))
            .message_deduplication_id(format!("d{i}"))
            .send()
            .await
            .expect("sent");
        ids.push(sent.message_id.expect("id"));
    }
    ids
}

/// Receives and deletes every message of `queue`: (message group, body), in the order received.
async fn take_all(env: &e2e::TestEnv, queue: &str) -> Vec<(String, String)> {
    use aws_sdk_sqs::types::MessageSystemAttributeName as A;
    let sqs = env.stack.sqs();
    let url = env.stack.resources.queue_url(queue).expect("url");
    let mut taken = Vec::new();
    loop {
        let batch = sqs
            .receive_message()
            .queue_url(url)
            .max_number_of_messages(10)
            .message_system_attribute_names(A::All)
            .send()
            .await
            .expect("receive")
            .messages
            .unwrap_or_default();
        if batch.is_empty() {
            return taken;
        }
        for m in batch {
            let group = m
                .attributes
                .as_ref()
                .and_then(|a| a.get(&A::MessageGroupId))
                .cloned()
                .unwrap_or_default();
            taken.push((group, m.body.clone().unwrap_or_default()));
            sqs.delete_message()
                .queue_url(url)
                .set_receipt_handle(m.receipt_handle)
                .send()
                .await
                .expect("delete");
        }
    }
}

#[tokio::test]
async fn redrive_by_id_or_by_age_moves_only_the_records_selected_and_keeps_their_groups() {
    let env = e2e::TestEnv::start().await;
    let ids = put_dead_letters(&env, 4).await;
    let target = target(&env);

    // Record 0 heads group 0: `--id` reaches it and moves it alone.
    let one = dlq_cmd::redrive(&target, "InboundDLQ", &Selection::Id(ids[0].clone()))
        .await
        .expect("redrive one");
    assert!(one.ok, "{:#?}", one.lines);
    assert_eq!(env.queue_depth("InboundDLQ").await, 3);
    let moved = take_all(&env, "InboundQueue").await;
    assert_eq!(
        moved,
        [(
            "u_group0".to_owned(),
            r#"{"v":1,"key":"wamid.D0","n":0}"#.to_owned()
        )]
    );

    // Nothing is an hour old.
    let old = dlq_cmd::redrive(
        &target,
        "Inbound",
        &Selection::OlderThan(std::time::Duration::from_secs(3_600)),
    )
    .await
    .expect("redrive by age");
    assert_eq!(
        old.lines,
        ["Inbound-dlq: 0 record(s) sent back to Inbound, 3 left in the DLQ"]
    );
    assert_eq!(env.queue_depth("InboundDLQ").await, 3);

    let unknown = dlq_cmd::redrive(&target, "Inbound", &Selection::Id("nope".into()))
        .await
        .expect("redrive unknown");
    assert!(!unknown.ok, "an id not found is a failure");

    let rest = dlq_cmd::redrive(&target, "Inbound-dlq", &Selection::All)
        .await
        .expect("redrive rest");
    assert!(rest.ok);
    assert_eq!(env.queue_depth("InboundDLQ").await, 0);
    let mut seen = take_all(&env, "InboundQueue").await;
    // Stable: the order within each group stays the order received.
    seen.sort_by(|a, b| a.0.cmp(&b.0));
    assert_eq!(
        seen,
        [
            (
                "u_group0".to_owned(),
                r#"{"v":1,"key":"wamid.D2","n":2}"#.to_owned()
            ),
            (
                "u_group1".to_owned(),
                r#"{"v":1,"key":"wamid.D1","n":1}"#.to_owned()
            ),
            (
                "u_group1".to_owned(),
                r#"{"v":1,"key":"wamid.D3","n":3}"#.to_owned()
            ),
        ]
    );

    let unknown_queue = dlq_cmd::show(&target, "Nowhere", 5).await;
    assert!(matches!(
        unknown_queue,
        Err(connector::AdminError::Usage(_))
    ));
}

//! The one sender end to end: the real send-whatsapp-message and track-delivery on the local
//! stack, the WhatsApp simulator enforcing Meta's rates, windows and faults.

use crate::sender_support::{bench, bench_alone, pseudonym, text_request};
use shared::domain::sending::DeliveryState;
use shared::ports::{ContactDirectory, SendLedger, SendState, SentMessageStore};
use std::collections::BTreeSet;
use std::time::Duration;
use whatsapp_sim::{Fault, Limits};

#[tokio::test]
async fn a_request_to_an_opted_out_user_is_suppressed_and_never_reaches_the_simulator() {
    let bench = bench(&[], |_| {}).await;
    let digits = "447700900201";
    bench.open_window(digits).await;
    bench
        .directory()
        .opt_out(&pseudonym(digits), 1)
        .await
        .expect("opted out");
    let request = text_request(digits, "wamid.IN-OPT", "Received 3 photos");
    bench.enqueue(std::slice::from_ref(&request)).await;
    assert!(bench.send_once().await.is_empty(), "acknowledged");
    assert_eq!(bench.sim.accepted_messages(), 0);
    let entry = bench
        .ledger()
        .find(&request.key.encode())
        .await
        .expect("read")
        .expect("recorded");
    assert_eq!(entry.state, SendState::Suppressed);
    assert_eq!(entry.reason.as_deref(), Some("opted_out"));
    assert_eq!(bench.env.queue_depth("OutboundQueue").await, 0);
}

#[tokio::test]
async fn a_free_form_message_outside_the_window_goes_as_the_template_and_a_late_131047_sends_the_template_once()
 {
    let bench = bench(&[], |_| {}).await;
    // Closed on both sides: the template goes out at once.
    let closed = "447700900202";
    bench
        .enqueue(&[text_request(closed, "wamid.IN-A", "Received 3 photos")])
        .await;
    bench.drain_outbound().await;
    assert_eq!(
        bench.outbound_lines(closed),
        [("template".to_owned(), "template content_receipt".to_owned())]
    );
    bench.track_statuses().await;

    // The connector still thinks the window is open; Meta knows better and fails it later.
    let late = "447700900203";
    bench.open_window(late).await;
    bench.sim.user(late).last_wrote(None);
    let request = text_request(late, "wamid.IN-B", "Received 2 videos");
    bench.enqueue(std::slice::from_ref(&request)).await;
    bench.drain_outbound().await;
    assert_eq!(bench.track_statuses().await, 1, "the failed status");
    bench.drain_outbound().await;
    bench.track_statuses().await;
    // The template version queued again past the queue's deduplication (a failure status
    // redelivered days later): the claim on its send key keeps it to one send.
    let again = shared::domain::sending::template_version(&request).expect("has a template");
    bench
        .env
        .stack
        .sqs()
        .send_message()
        .queue_url(
            bench
                .env
                .stack
                .resources
                .queue_url("OutboundQueue")
                .expect("queue"),
        )
        .message_body(serde_json::to_string(&again).expect("json"))
        .message_group_id(again.group_id())
        .message_deduplication_id("redelivered-later")
        .send()
        .await
        .expect("queued again");
    bench.drain_outbound().await;
    assert_eq!(bench.env.queue_depth("OutboundQueue").await, 0);
    let lines = bench.outbound_lines(late);
    assert_eq!(
        lines
            .iter()
            .map(|(kind, _)| kind.as_str())
            .collect::<Vec<_>>(),
        ["text", "template"],
        "{lines:?}"
    );
}

#[tokio::test]
async fn thirty_messages_to_one_recipient_are_paced_by_the_pair_rate_in_order_none_twice() {
    let bench = bench(&[("PAIR_BURST", "5"), ("PAIR_INTERVAL_MS", "200")], |c| {
        c.limits = Limits {
            pair_burst: 5,
            pair_interval: Duration::from_millis(200),
            ..Limits::default()
        };
    })
    .await;
    let digits = "447700900204";
    bench.open_window(digits).await;
    let requests: Vec<_> = (1..=30)
        .map(|i| text_request(digits, &format!("wamid.IN-{i:02}"), &format!("m{i:02}")))
        .collect();
    bench.enqueue(&requests).await;
    bench.drain_outbound().await;
    let bodies: Vec<String> = bench
        .outbound_lines(digits)
        .into_iter()
        .map(|(_, summary)| summary)
        .collect();
    let expected: Vec<String> = (1..=30).map(|i| format!("m{i:02}")).collect();
    assert_eq!(bodies, expected, "every message once, in order");
    assert_eq!(bench.dead_letters("OutboundDLQ").await, 0);
}

#[tokio::test]
async fn a_sender_killed_after_graph_accepted_leaves_one_message_settled_by_its_status() {
    let bench = bench(&[("WHATSAPP_GRAPH_TIMEOUT_MS", "400")], |_| {}).await;
    let digits = "447700900205";
    bench.open_window(digits).await;
    // Graph takes the message, then answers long after the sender gave up on it.
    bench.sim.stall_next_answers(1, Duration::from_secs(2));
    let request = text_request(digits, "wamid.IN-KILL", "Received 1 photo");
    bench.enqueue(std::slice::from_ref(&request)).await;
    assert_eq!(bench.send_once().await.len(), 1, "the outcome is unknown");
    let entry = bench
        .ledger()
        .find(&request.key.encode())
        .await
        .expect("read")
        .expect("claimed");
    assert_eq!(entry.state, SendState::Unknown);
    // The redelivery finds the send of unknown outcome and waits for its status.
    assert_eq!(bench.send_once().await.len(), 1, "awaiting the status");

    tokio::time::sleep(Duration::from_secs(2)).await;
    assert!(bench.track_statuses().await >= 1);
    let entry = bench
        .ledger()
        .find(&request.key.encode())
        .await
        .expect("read")
        .expect("settled");
    assert_eq!(entry.state, SendState::Sent);
    let message_id = entry.message_id.expect("the wamid from the status");
    let record = bench
        .sent_messages()
        .get(&message_id)
        .await
        .expect("read")
        .expect("the record exists");
    assert_eq!(record.message.key, request.key);
    assert_eq!(record.state, DeliveryState::Read);

    assert!(bench.send_once().await.is_empty(), "now acknowledged");
    assert_eq!(bench.env.queue_depth("OutboundQueue").await, 0);
    assert_eq!(bench.outbound_lines(digits).len(), 1, "exists once at Meta");
}

#[tokio::test]
async fn throttling_pair_rate_and_server_error_windows_deliver_every_message_once_with_an_empty_dlq()
 {
    let bench = bench(&[], |_| {}).await;
    let mut users = Vec::new();
    for (round, fault) in [Fault::Throughput, Fault::PairRate, Fault::ServerError]
        .into_iter()
        .enumerate()
    {
        bench.sim.fault_next(fault, 4);
        let requests: Vec<_> = (0..5)
            .map(|i| {
                let digits = format!("4477009003{round}{i}");
                users.push(digits.clone());
                text_request(&digits, &format!("wamid.F{round}{i}"), "Received")
            })
            .collect();
        for digits in users.iter().rev().take(5) {
            bench.open_window(digits).await;
        }
        bench.enqueue(&requests).await;
        bench.drain_outbound().await;
    }
    for digits in &users {
        assert_eq!(
            bench.outbound_lines(digits).len(),
            1,
            "{digits}: exactly once"
        );
    }
    assert_eq!(bench.sim.accepted_messages(), 15);
    assert_eq!(bench.dead_letters("OutboundDLQ").await, 0);
}

#[tokio::test]
async fn a_refused_token_acknowledges_nothing_and_emits_the_alarm_metric() {
    let bench = bench(&[], |_| {}).await;
    bench.sim.fault_next(Fault::TokenInvalid, u32::MAX);
    let requests: Vec<_> = (0..3)
        .map(|i| {
            let digits = format!("44770090040{i}");
            text_request(&digits, &format!("wamid.T{i}"), "Received")
        })
        .collect();
    for i in 0..3 {
        bench.open_window(&format!("44770090040{i}")).await;
    }
    bench.enqueue(&requests).await;
    assert_eq!(
        bench.send_once().await.len(),
        3,
        "every message stays on the queue"
    );
    assert_eq!(bench.env.queue_depth("OutboundQueue").await, 3);
    assert_eq!(bench.sim.accepted_messages(), 0);
    let logs = e2e::logs::captured();
    assert!(
        logs.lines()
            .any(|l| l.contains(r#""metric":"whatsapp_token_invalid""#)),
        "no alarm metric in the logs"
    );

    // Renewed: everything goes out once.
    bench.sim.clear_fault();
    bench.drain_outbound().await;
    assert_eq!(bench.sim.accepted_messages(), 3);
}

#[tokio::test]
async fn two_thousand_messages_to_two_thousand_recipients_never_pass_80_in_any_second_none_twice_none_lost()
 {
    let count: usize = std::env::var("SENDER_BENCH_MESSAGES")
        .ok()
        .and_then(|n| n.parse().ok())
        .unwrap_or(2_000);
    let bench = bench_alone(&[], |c| {
        // The sender must hold the rate itself: the simulator only counts here.
        c.limits.throughput_per_second = u32::MAX;
        c.auto_read = false;
        c.callback_url = None;
    })
    .await;
    let requests: Vec<_> = (0..count)
        .map(|i| {
            let digits = format!("4477101{i:05}");
            let mut request = text_request(&digits, &format!("wamid.B{i}"), "Your asset is ready");
            request.content = None;
            request
        })
        .collect();
    bench.enqueue(&requests).await;
    let started = std::time::Instant::now();
    bench.drain_outbound().await;
    let elapsed = started.elapsed();
    let most = bench.sim.max_accepted_per_second();
    eprintln!(
        "sender bench: {count} messages in {:.1} s (floor {:.1} s), at most {most} in any second",
        elapsed.as_secs_f64(),
        count as f64 / 80.0
    );
    assert!(most <= 80, "{most} messages in one second");
    assert_eq!(
        bench.sim.accepted_messages(),
        count,
        "none twice, none lost"
    );
    let recipients: BTreeSet<String> = bench
        .sim
        .users()
        .into_iter()
        .filter(|u| u.lines.len() == 1)
        .filter_map(|u| u.wa_id)
        .collect();
    assert_eq!(recipients.len(), count, "one message for each recipient");
    assert_eq!(bench.dead_letters("OutboundDLQ").await, 0);
}

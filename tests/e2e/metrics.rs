//! The flows' outcomes as CloudWatch Embedded Metric Format lines (`shared::metrics`), parsed from
//! what the in-process functions wrote: received at the webhook and routed by destination, sent,
//! suppressed by opt-out and failed by reason at the sender. (Assets ingested and alerts sent are
//! checked in the flows' own tests: field_ingest, review, rights_expiry.) No line carries a phone
//! number or a message text.

use crate::sender_support::{bench, pseudonym, text_request};
use e2e::emf;
use e2e::signed_body;
use shared::ports::ContactDirectory;

#[tokio::test]
async fn a_webhook_and_its_routing_count_each_item_received_and_where_it_went() {
    let env = e2e::TestEnv::start().await;
    let stack = env.stack.resources.stack_name.clone();
    let (body, signature) = signed_body("whatsapp-webhook/signed-post.json");
    let status = env
        .meta()
        .deliver_with(body.as_bytes(), Some(&signature))
        .await
        .expect("post");
    assert_eq!(status, 200);
    assert_eq!(env.queue_depth("InboundQueue").await, 5);
    assert_eq!(
        emf::total(&stack, "whatsapp-webhook", "inbound", "Received"),
        5
    );

    let router = env
        .stack
        .consumer("InboundQueue")
        .expect("route-inbound consumes inbound");
    env.stack.runner.drain(router, 20).await.expect("routed");
    let routed: u64 = emf::lines()
        .iter()
        .filter(|l| {
            l["_aws"]["CloudWatchMetrics"][0]["Namespace"] == emf::namespace(&stack).as_str()
        })
        .filter(|l| l["Function"] == "route-inbound")
        .filter_map(|l| l["Routed"].as_u64())
        .sum();
    assert_eq!(routed, 5, "every item counted once where it went");
    assert_eq!(
        emf::total(&stack, "route-inbound", "delivery-status", "Routed"),
        2,
        "the two statuses"
    );
    let definition = emf::lines()
        .into_iter()
        .find(|l| l["Function"] == "route-inbound" && l["Flow"] == "delivery-status")
        .expect("a routing line");
    assert_eq!(
        definition["_aws"]["CloudWatchMetrics"][0]["Dimensions"][0],
        serde_json::json!(["Function", "Flow"])
    );
    assert!(definition["_aws"]["Timestamp"].as_u64().is_some());
}

#[tokio::test]
async fn the_sender_counts_sent_suppressed_by_opt_out_and_failed_by_reason_per_flow() {
    let bench = bench(&[], |_| {}).await;
    let stack = bench.env.stack.resources.stack_name.clone();
    let (open, opted_out, closed) = ("447700900621", "447700900622", "447700900623");
    bench.open_window(open).await;
    bench.open_window(opted_out).await;
    bench
        .directory()
        .opt_out(&pseudonym(opted_out), 1)
        .await
        .expect("opted out");
    let mut no_template = text_request(closed, "wamid.M3", "Your photo is filed");
    no_template.template = None;
    bench
        .enqueue(&[
            text_request(open, "wamid.M1", "Your photo is filed"),
            text_request(opted_out, "wamid.M2", "Your photo is filed"),
            no_template,
        ])
        .await;
    bench.drain_outbound().await;
    assert_eq!(bench.sim.accepted_messages(), 1);

    let total = |metric: &str| emf::total(&stack, "send-whatsapp-message", "field-ingest", metric);
    assert_eq!(total("Sent"), 1);
    assert_eq!(total("SuppressedOptOut"), 1);
    assert_eq!(total("Failed"), 1);
    assert_eq!(total("Failed.window_closed_no_template"), 1);

    let written: Vec<String> = emf::lines()
        .iter()
        .filter(|l| {
            l["_aws"]["CloudWatchMetrics"][0]["Namespace"] == emf::namespace(&stack).as_str()
        })
        .map(serde_json::Value::to_string)
        .collect();
    assert!(!written.is_empty());
    for line in &written {
        for secret in [open, opted_out, closed, "Your photo"] {
            assert!(
                !line.contains(secret),
                "personal data in an EMF line: {line}"
            );
        }
    }
}

//! Delivery tracking end to end: status items on the `DeliveryStatus` queue, the real
//! track-delivery function, the sent-message records in DynamoDB.

use crate::sender_support::{NUMBER, bench, text_request};
use shared::domain::inbound::{ENVELOPE_VERSION, InboundItem, InboundKind};
use shared::domain::sending::DeliveryState;
use shared::ports::SentMessageStore;

fn status_item(message_id: &str, status: serde_json::Value) -> InboundItem {
    let state = status["status"].as_str().unwrap_or_default().to_owned();
    InboundItem {
        v: ENVELOPE_VERSION,
        kind: InboundKind::Status,
        key: format!("{message_id}:{state}"),
        user: None,
        phone_number_id: Some(NUMBER.into()),
        waba_id: None,
        received_at_ms: 0,
        item: serde_json::value::RawValue::from_string(status.to_string()).expect("json"),
        contact: None,
    }
}

#[tokio::test]
async fn statuses_arriving_read_delivered_sent_end_read_and_a_failed_status_keeps_its_error() {
    let bench = bench(&[], |c| c.callback_url = None).await;
    let (first, second) = ("447700900501", "447700900502");
    for digits in [first, second] {
        bench.open_window(digits).await;
    }
    let requests = [
        text_request(first, "wamid.S1", "Your asset"),
        text_request(second, "wamid.S2", "Your asset"),
    ];
    bench.enqueue(&requests).await;
    bench.drain_outbound().await;
    let ledger = bench.ledger();
    let mut ids = Vec::new();
    for request in &requests {
        let entry = shared::ports::SendLedger::find(&ledger, &request.key.encode())
            .await
            .expect("read")
            .expect("sent");
        ids.push(entry.message_id.expect("wamid"));
    }

    let sqs = bench.env.stack.sqs();
    let url = bench
        .env
        .stack
        .resources
        .queue_url("DeliveryStatusQueue")
        .expect("queue")
        .to_owned();
    let mut items = Vec::new();
    for (state, at) in [
        ("read", "1795703460"),
        ("delivered", "1795703450"),
        ("sent", "1795703440"),
    ] {
        items.push(status_item(
            &ids[0],
            serde_json::json!({"id": ids[0], "status": state, "timestamp": at,
                "pricing": {"billable": false, "pricing_model": "PMP", "type": "free_customer_service", "category": "service"}}),
        ));
    }
    items.push(status_item(
        &ids[1],
        serde_json::json!({"id": ids[1], "status": "failed", "timestamp": "1795703470",
            "errors": [{"code": 131026, "title": "Message undeliverable"}]}),
    ));
    for item in &items {
        sqs.send_message()
            .queue_url(&url)
            .message_body(serde_json::to_string(item).expect("json"))
            .message_group_id(item.group_id())
            .message_deduplication_id(item.deduplication_id())
            .send()
            .await
            .expect("queued");
    }
    let tracker = bench
        .env
        .stack
        .consumer("DeliveryStatusQueue")
        .expect("track-delivery");
    bench
        .env
        .stack
        .runner
        .drain(tracker, 20)
        .await
        .expect("tracked");

    let messages = bench.sent_messages();
    let read = messages.get(&ids[0]).await.expect("read").expect("record");
    assert_eq!(read.state, DeliveryState::Read);
    assert_eq!(read.history.len(), 3);
    assert_eq!(read.pricing.category.as_deref(), Some("service"));
    let failed = messages.get(&ids[1]).await.expect("read").expect("record");
    assert_eq!(failed.state, DeliveryState::Failed);
    assert_eq!(failed.error_code, Some(131_026));
    assert_eq!(failed.error_title.as_deref(), Some("Message undeliverable"));
    assert_eq!(bench.dead_letters("DeliveryStatusDLQ").await, 0);
}

//! The local demo: plays every finished flow of the bundle on the embedded local stack and prints
//! what happened, step by step. Run it with `./local/demo.sh`.
#![allow(clippy::print_stdout)]

use aws_sdk_sqs::types::QueueAttributeName;
use local::moto::Moto;
use local::stack::{LocalStack, Options};
use shared::domain::inbound::InboundItem;

const APP_SECRET: &str = "local-app-secret-change-me";
const VERIFY_TOKEN: &str = "local-verify-token";

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let moto = match std::env::var("MOTO_ENDPOINT") {
        Ok(endpoint) => Moto::existing(&endpoint)
            .await
            .ok_or_else(|| anyhow::anyhow!("no moto at {endpoint}"))?,
        Err(_) => Moto::start(0).await?,
    };
    let stack_name = format!("demo{}", std::process::id());
    let stack = LocalStack::start(&moto.endpoint, Options::new(&stack_name)).await?;
    println!("== Local stack `{stack_name}` ==");
    println!(
        "moto at {}; tables, queues and buckets created from template.yaml:",
        moto.endpoint
    );
    for name in stack.resources.queue_names.values() {
        println!("  queue  {name}");
    }
    println!(
        "WhatsApp webhook (API Gateway front) at {}",
        stack.url("/whatsapp/webhook")
    );

    whatsapp_edge(&stack).await?;
    println!("\nDemo finished: every step above ran through the real Lambda handlers on moto.");
    Ok(())
}

async fn whatsapp_edge(stack: &LocalStack) -> anyhow::Result<()> {
    let meta =
        local::whatsapp_meta::MetaWebhookSender::new(stack.url("/whatsapp/webhook"), APP_SECRET);
    println!("\n== WhatsApp webhook edge ==");
    let (status, body) = meta.handshake(VERIFY_TOKEN, "1158201444").await?;
    println!(
        "1. Meta verifies the callback URL with the verify token      -> {status}, echoed {body:?}"
    );
    let (status, _) = meta.handshake("a-guessed-token", "1158201444").await?;
    println!("   ... and with a wrong token                                  -> {status}");

    let event: serde_json::Value = serde_json::from_str(&std::fs::read_to_string(
        local::moto::workspace_root().join("events/whatsapp-webhook/signed-post.json"),
    )?)?;
    let notification = event["body"]
        .as_str()
        .unwrap_or_default()
        .as_bytes()
        .to_vec();
    let status = meta.deliver(&notification).await?;
    let depth = queue_depth(stack, "InboundQueue").await?;
    println!(
        "2. Meta POSTs one notification: 2 entries, 3 messages (text, image, location) and 2 statuses"
    );
    println!(
        "   signed with the app secret                                  -> {status}; inbound.fifo holds {depth} items"
    );
    let status = meta.deliver(&notification).await?;
    let depth = queue_depth(stack, "InboundQueue").await?;
    println!(
        "3. Meta delivers the same notification again                   -> {status}; inbound.fifo still holds {depth}"
    );
    let status = meta
        .deliver_with(
            &notification,
            Some("sha256=0000000000000000000000000000000000000000000000000000000000000000"),
        )
        .await?;
    let depth = queue_depth(stack, "InboundQueue").await?;
    println!(
        "4. Someone else POSTs it with a forged signature               -> {status}; inbound.fifo still holds {depth}"
    );

    println!(
        "5. What the routers will receive (phone numbers appear only as pseudonyms in keys and logs):"
    );
    let url = stack.resources.queue_url("InboundQueue")?;
    let messages = stack
        .sqs()
        .receive_message()
        .queue_url(url)
        .max_number_of_messages(10)
        .visibility_timeout(0)
        .message_system_attribute_names(
            aws_sdk_sqs::types::MessageSystemAttributeName::MessageGroupId,
        )
        .send()
        .await?
        .messages
        .unwrap_or_default();
    for message in messages {
        let item: InboundItem = serde_json::from_str(message.body.as_deref().unwrap_or_default())?;
        let kind = serde_json::to_value(item.kind)?;
        let detail: serde_json::Value = serde_json::from_str(item.item.get())?;
        let what = detail["type"]
            .as_str()
            .or(detail["status"].as_str())
            .unwrap_or("?");
        println!(
            "   {:<8} {:<10} group {}  number {}",
            kind.as_str().unwrap_or("?"),
            what,
            item.group_id(),
            item.phone_number_id.as_deref().unwrap_or("-")
        );
    }
    Ok(())
}

async fn queue_depth(stack: &LocalStack, queue: &str) -> anyhow::Result<usize> {
    let attributes = stack
        .sqs()
        .get_queue_attributes()
        .queue_url(stack.resources.queue_url(queue)?)
        .attribute_names(QueueAttributeName::ApproximateNumberOfMessages)
        .attribute_names(QueueAttributeName::ApproximateNumberOfMessagesNotVisible)
        .send()
        .await?
        .attributes
        .unwrap_or_default();
    Ok(attributes
        .values()
        .filter_map(|v| v.parse::<usize>().ok())
        .sum())
}

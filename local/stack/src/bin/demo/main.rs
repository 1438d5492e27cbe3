//! The local demo: plays every finished flow of the bundle on the embedded local stack and prints
//! what happened, step by step. Run it with `./local/demo.sh`.
#![allow(clippy::print_stdout)]

use aws_sdk_sqs::types::QueueAttributeName;
use local::moto::Moto;
use local::stack::{LocalStack, Options};
use shared::domain::inbound::InboundItem;

mod campaign;
mod conversation;
mod field_ingest;
mod review;
mod rights_expiry;
mod sharing;
mod ugc;

const APP_SECRET: &str = "local-app-secret-change-me";
/// The notifications / field / sharing number of `local/connector.yaml`.
const NOTIFICATIONS_NUMBER: &str = "109876543210987";
const PSEUDONYM_KEY: &str = "local-pseudonym-key-0123456789abcdef0123";
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
    let dam = orange_logic_sim::Simulator::start(
        orange_logic_sim::SimConfig::default(),
        ([127, 0, 0, 1], 0).into(),
    )
    .await?;
    let mut options = Options::new(&stack_name);
    options.orange_logic_url = Some(dam.url());
    let stack = LocalStack::start(&moto.endpoint, options).await?;
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
    whatsapp_cloud_api(&stack).await?;
    dam_change_detection(&stack, &dam).await?;
    review::play(&stack, &dam, APP_SECRET).await?;
    let secrets = shared::secrets::ConnectorSecrets::from_json(&std::fs::read_to_string(
        local::moto::workspace_root().join("local/secrets.json"),
    )?)?;
    rights_expiry::chapter(
        &stack,
        &dam,
        &shared::pseudonym::Pseudonymizer::new(&secrets.pseudonym_key),
    )
    .await?;
    campaign::play(
        &stack,
        &dam,
        &shared::pseudonym::Pseudonymizer::new(&secrets.pseudonym_key),
        APP_SECRET,
    )
    .await?;

    let live = Live::start(&moto.endpoint, &format!("live{}", std::process::id()), &dam).await?;
    conversation::play(&live).await?;
    sharing::play(&live, &dam).await?;
    field_ingest::play(&moto.endpoint).await?;
    ugc::play(&moto.endpoint).await?;
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

/// A conversation with a simulated field engineer through the WhatsApp Cloud API simulator: her
/// messages reach the edge as signed webhooks, the client answers, and Meta's rules and errors apply.
async fn whatsapp_cloud_api(stack: &LocalStack) -> anyhow::Result<()> {
    use shared::secrets::Secret;
    use shared::whatsapp::client::{SendError, WhatsAppClient};
    use shared::whatsapp::messages::{
        Content, MediaKind, OutgoingMessage, Recipient, Template, TemplateParam,
    };
    use whatsapp_sim::{SimConfig, Simulator};

    println!("\n== WhatsApp Cloud API (simulator) ==");
    let token = "local-graph-token";
    let mut config = SimConfig::new(token, APP_SECRET);
    config.callback_url = Some(stack.url("/whatsapp/webhook"));
    let sim = Simulator::start(config).await?;
    let client = WhatsAppClient::new(sim.client_config(), Secret::new(token))?;
    println!(
        "Graph API simulator at {}; its webhooks go to the edge above",
        sim.base_url()
    );
    let before = queue_depth(stack, "InboundQueue").await?;

    let maria = sim.user("447700900123");
    maria.send_text("Morning! Photos from the BRIDGE-12 site, north pier");
    maria.send_location(51.50135, -0.14189, Some("North pier"));
    maria.send_media(
        MediaKind::Image,
        "image/jpeg",
        vec![0xFF, 0xD8, 0xFF, 0xE0],
        Some("Crack near joint 4"),
        None,
    );
    sim.idle().await;
    let after = queue_depth(stack, "InboundQueue").await?;
    println!(
        "1. A field engineer sends a text, her location and a photo     -> {} new items on inbound.fifo",
        after - before
    );

    let maria_to = Recipient::phone("+447700900123")?;
    let receipt = client
        .send(&OutgoingMessage::text(
            maria_to,
            "Thanks Maria, received. Filing them under BRIDGE-12.",
        ))
        .await?;
    sim.idle().await;
    let statuses = queue_depth(stack, "InboundQueue").await? - after;
    println!(
        "2. The business replies inside her 24-hour window              -> accepted as {}…; {statuses} status webhooks (sent, delivered, read) queued",
        &receipt.message_id[..16.min(receipt.message_id.len())]
    );

    let stranger = Recipient::phone("+447700900999")?;
    let receipt = client
        .send(&OutgoingMessage::text(
            stranger.clone(),
            "Your asset is ready",
        ))
        .await?;
    sim.idle().await;
    let status = sim
        .users()
        .into_iter()
        .flat_map(|u| u.lines)
        .find(|l| l.id == receipt.message_id)
        .map(|l| l.status)
        .unwrap_or_default();
    println!(
        "3. Free-form text to someone who never wrote                    -> accepted, then status {status} (131047: send a template)"
    );

    let wrong = OutgoingMessage::new(
        stranger,
        Content::Template(Template {
            name: "review_request".into(),
            language: "en_US".into(),
            header: None,
            body: vec![TemplateParam::text("only one of the parameters")],
            buttons: Vec::new(),
        }),
    );
    match client.send(&wrong).await {
        Err(SendError::Api(error)) => println!(
            "4. A template with the wrong parameter count                    -> refused: code {:?}, {:?}",
            error.code(),
            error.class()
        ),
        other => println!(
            "4. A template with the wrong parameter count                    -> unexpected: {other:?}"
        ),
    }

    println!("5. The conversation as the engineer's phone shows it:");
    for user in sim
        .users()
        .into_iter()
        .filter(|u| u.wa_id.as_deref() == Some("447700900123"))
    {
        for line in user.lines {
            println!(
                "   {:<3} {:<9} {:<10} {}",
                line.direction, line.kind, line.status, line.summary
            );
        }
    }
    Ok(())
}

/// Orange Logic (simulator) → `dam-webhook` → `dam-events` → `detect-asset-changes` → flow queues.
async fn dam_change_detection(
    stack: &LocalStack,
    dam: &orange_logic_sim::Simulator,
) -> anyhow::Result<()> {
    use std::time::Duration;
    println!("\n== Orange Logic change detection (simulator) ==");
    dam.subscribe(orange_logic_sim::WebhookTarget {
        url: stack.url("/dam/webhook"),
        header: "x-dam-webhook-secret".into(),
        secret: "local-dam-webhook-secret".into(),
    });
    println!(
        "Orange Logic simulator at {}; its webhooks go to {}",
        dam.url(),
        stack.url("/dam/webhook")
    );
    let consumer = stack
        .consumer("DamEventsQueue")
        .ok_or_else(|| anyhow::anyhow!("no consumer of dam-events"))?;
    let settle = || async {
        dam.wait_for_webhooks(Duration::from_secs(10)).await;
        stack.runner.drain(consumer, 20).await
    };
    let events = |queue: &'static str| async move {
        let url = stack.resources.queue_url(queue)?;
        let messages = stack
            .sqs()
            .receive_message()
            .queue_url(url)
            .max_number_of_messages(10)
            .send()
            .await?
            .messages
            .unwrap_or_default();
        let mut kinds = Vec::new();
        for message in messages {
            let event: serde_json::Value =
                serde_json::from_str(message.body.as_deref().unwrap_or("{}"))?;
            kinds.push(format!(
                "{} (asset {})",
                event["type"].as_str().unwrap_or("?"),
                event["asset"].as_str().unwrap_or("?")
            ));
            if let Some(handle) = message.receipt_handle {
                stack
                    .sqs()
                    .delete_message()
                    .queue_url(url)
                    .receipt_handle(handle)
                    .send()
                    .await?;
            }
        }
        anyhow::Ok(kinds)
    };

    let complete = [
        ("CoreField.Title", "North pier, joint detail"),
        ("CoreField.Photographer", "A. Field"),
        ("Custom.Campaign", "SUMMER26"),
        ("CoreField.Status", "Draft"),
    ];
    let pier = dam.add_asset(&complete);
    settle().await?;
    println!(
        "1. A photo is added to the DAM as a draft                       -> remembered, no flow event"
    );
    dam.duplicate_webhooks(true);
    dam.edit(&pier, "CoreField.Status", "Ready for Review")?;
    settle().await?;
    dam.duplicate_webhooks(false);
    println!("2. Its status becomes \"Ready for Review\"; the DAM's webhook arrives twice");
    println!(
        "   review.fifo                                                  -> {:?}",
        events("ReviewQueue").await?
    );

    let incomplete = dam.add_asset(&[
        ("CoreField.Title", "South abutment"),
        ("CoreField.Status", "Draft"),
    ]);
    settle().await?;
    dam.edit(&incomplete, "CoreField.Status", "Ready for Review")?;
    settle().await?;
    println!("3. An asset without photographer or campaign goes to review");
    println!(
        "   issue-alerts.fifo                                            -> {:?}",
        events("IssueAlertQueue").await?
    );

    dam.drop_webhooks(true);
    dam.edit(&pier, "CoreField.Status", "Rejected")?;
    settle().await?;
    let before = events("IssueAlertQueue").await?;
    let report = stack.fire_schedule("DetectAssetChangesFunction").await?;
    dam.drop_webhooks(false);
    println!(
        "4. The pier photo is rejected but the webhook is lost           -> {} events without it",
        before.len()
    );
    println!(
        "   the scheduled poll of recently edited assets runs            -> published {}",
        report["published"]
    );
    println!(
        "   issue-alerts.fifo                                            -> {:?}",
        events("IssueAlertQueue").await?
    );
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

fn now_ms() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| i64::try_from(d.as_millis()).unwrap_or(i64::MAX))
        .unwrap_or(0)
}

/// A stack whose consumers all poll in the background, its sender pointed at a WhatsApp simulator
/// whose webhooks come back through the edge: messages flow by themselves, as deployed.
struct Live {
    stack: LocalStack,
    whatsapp: whatsapp_sim::Simulator,
    pseudonyms: shared::pseudonym::Pseudonymizer,
}

impl Live {
    async fn start(
        moto: &str,
        name: &str,
        dam: &orange_logic_sim::Simulator,
    ) -> anyhow::Result<Self> {
        let port = std::net::TcpListener::bind("127.0.0.1:0")?
            .local_addr()?
            .port();
        let mut options = Options::new(name);
        options.orange_logic_url = Some(dam.url());
        options.graph_base_url = Some(format!("http://127.0.0.1:{port}"));
        options.run_queues = true;
        let stack = LocalStack::start(moto, options).await?;
        let mut config = whatsapp_sim::SimConfig::new("local-graph-token", APP_SECRET);
        config.addr = std::net::SocketAddr::from(([127, 0, 0, 1], port));
        config.callback_url = Some(stack.url("/whatsapp/webhook"));
        config.templates.extend(whatsapp_sim::catalogue_templates(
            &local::moto::workspace_root().join("templates"),
        ));
        let whatsapp = whatsapp_sim::Simulator::start(config).await?;
        Ok(Self {
            stack,
            whatsapp,
            pseudonyms: shared::pseudonym::Pseudonymizer::new(&shared::secrets::Secret::new(
                PSEUDONYM_KEY,
            )),
        })
    }

    fn pseudonym(&self, digits: &str) -> shared::pseudonym::UserPseudonym {
        self.pseudonyms.pseudonym(digits)
    }

    /// What the phone of `digits` shows, oldest first.
    fn lines(&self, digits: &str) -> Vec<whatsapp_sim::world::ConversationLine> {
        self.whatsapp
            .users()
            .into_iter()
            .filter(|u| u.wa_id.as_deref() == Some(digits))
            .flat_map(|u| u.lines)
            .collect()
    }

    fn print_phone(&self, digits: &str) {
        for line in self.lines(digits) {
            let who = if line.direction == "in" {
                "them"
            } else {
                "us  "
            };
            println!(
                "   {who} {:<9} {:<10} {}",
                line.kind, line.status, line.summary
            );
        }
    }

    /// Waits (at most 20 s) until `done` holds, as messages travel through the queues.
    async fn settle(&self, done: impl Fn() -> bool) {
        for _ in 0..200 {
            if done() {
                break;
            }
            tokio::time::sleep(std::time::Duration::from_millis(100)).await;
        }
        // Let any reply still in flight land, so nothing is missed or printed twice.
        tokio::time::sleep(std::time::Duration::from_millis(300)).await;
    }

    /// Polls `probe` (at most 20 s) until it finds something.
    async fn wait_for<T, F: std::future::Future<Output = Option<T>>>(
        &self,
        probe: impl Fn() -> F,
    ) -> Option<T> {
        for _ in 0..200 {
            if let Some(found) = probe().await {
                return Some(found);
            }
            tokio::time::sleep(std::time::Duration::from_millis(100)).await;
        }
        None
    }

    /// Meta's status webhooks for `message_id`, one POST each, in the order given.
    async fn meta_status(
        &self,
        message_id: &str,
        digits: &str,
        statuses: &[&str],
    ) -> anyhow::Result<()> {
        let meta = local::whatsapp_meta::MetaWebhookSender::new(
            self.stack.url("/whatsapp/webhook"),
            APP_SECRET,
        );
        for (i, status) in statuses.iter().enumerate() {
            let timestamp = now_ms() / 1000 + i64::try_from(i).unwrap_or(0);
            let body = serde_json::json!({
                "object": "whatsapp_business_account",
                "entry": [{"id": "102290129340398", "changes": [{"field": "messages", "value": {
                    "messaging_product": "whatsapp",
                    "metadata": {"display_phone_number": "15550783881", "phone_number_id": NOTIFICATIONS_NUMBER},
                    "statuses": [{"id": message_id, "status": status, "timestamp": timestamp.to_string(),
                                  "recipient_id": digits}]
                }}]}]
            });
            meta.deliver(body.to_string().as_bytes()).await?;
        }
        Ok(())
    }
}

//! Flow 3 in the demo: a scan of the catalogue, the digests each person gets, a digest held through
//! quiet hours, and "request renewal" tapped from the alert, as the DAM records it.

use local::stack::LocalStack;
use orange_logic_sim::Simulator;
use serde_json::json;
use shared::adapters::directory::DynamoContactDirectory;
use shared::domain::contact::{Contact, QuietHours, Role, WhatsAppAddress};
use shared::domain::outbound::{MessageFlow, OutboundRequest};
use shared::ports::ContactDirectory;
use shared::pseudonym::Pseudonymizer;
use shared::whatsapp::messages::Content;

const FUNCTION: &str = "ScanRightsExpiryFunction";
const DAY: i64 = 24 * 3600;

fn at(unix: i64) -> String {
    shared::domain::dam::DamInstant::from_unix_seconds(unix)
        .map(shared::domain::dam::DamInstant::canonical)
        .unwrap_or_default()
}

async fn take_alerts(stack: &LocalStack) -> anyhow::Result<Vec<OutboundRequest>> {
    let sqs = stack.sqs();
    let url = stack.resources.queue_url("OutboundQueue")?.to_owned();
    let mut found = Vec::new();
    loop {
        let batch = sqs
            .receive_message()
            .queue_url(&url)
            .max_number_of_messages(10)
            .send()
            .await?
            .messages
            .unwrap_or_default();
        if batch.is_empty() {
            return Ok(found);
        }
        for message in batch {
            let request: OutboundRequest =
                serde_json::from_str(message.body.as_deref().unwrap_or("{}"))?;
            if request.key.flow == MessageFlow::RightsExpiry {
                found.push(request);
            }
            if let Some(receipt) = message.receipt_handle {
                sqs.delete_message()
                    .queue_url(&url)
                    .receipt_handle(receipt)
                    .send()
                    .await?;
            }
        }
    }
}

/// Plays flow 3.
pub async fn chapter(
    stack: &LocalStack,
    dam: &Simulator,
    pseudonyms: &Pseudonymizer,
) -> anyhow::Result<()> {
    println!("\n== Flow 3: rights expiry ==");
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)?
        .as_secs() as i64;
    let directory = DynamoContactDirectory::new(
        aws_sdk_dynamodb::Client::new(&stack.aws),
        &stack.resources.tables["ContactsTable"],
    );
    let people = [
        (
            "+447700900501",
            "Ana (owner, London)",
            Role::Owner,
            None,
            None,
            None,
        ),
        (
            "+33600000502",
            "Léa (legal, Paris)",
            Role::Legal,
            Some("fr_FR"),
            Some("Europe/Paris"),
            None,
        ),
        (
            "+819012345503",
            "Kenji (owner, Tokyo, quiet 22:00-07:00)",
            Role::Owner,
            None,
            Some("Asia/Tokyo"),
            QuietHours::parse("22:00-07:00"),
        ),
    ];
    for (phone, name, role, language, zone, quiet) in &people {
        let mut contact = Contact::new(pseudonyms.pseudonym(phone));
        contact.address = Some(WhatsAppAddress::parse(phone)?);
        contact.name = Some((*name).into());
        contact.roles = [*role].into();
        contact.language = language.map(str::to_owned);
        contact.time_zone = zone.map(str::to_owned);
        contact.quiet_hours = *quiet;
        directory.put(&contact).await?;
    }
    let generated = dam.generate_with(5_000, 3, 2030);
    let asset = |title: &str, owner: &str, ends: i64, status: &str| {
        dam.add_asset(&[
            ("CoreField.Title", title),
            ("CoreField.Owner", owner),
            ("CoreField.ExpirationDate", &at(ends)),
            ("CoreField.Status", status),
            ("Custom.Campaign", "SUMMER26"),
        ])
    };
    let poster = asset("Harbour poster", "+447700900501", now + 5 * DAY, "Approved");
    asset(
        "Store opening video",
        "+447700900501",
        now + 20 * DAY,
        "Approved",
    );
    asset(
        "Old banner (still live)",
        "+447700900501",
        now - 2 * DAY,
        "Approved",
    );
    asset(
        "Tokyo launch photo",
        "+819012345503",
        now + 3 * DAY,
        "Approved",
    );
    asset(
        "Harbour poster v2",
        "+447700900501",
        now + 400 * DAY,
        "Approved",
    );
    println!(
        "1. The DAM holds {} assets; 4 have rights ending inside the 30/7/1-day windows or ended while still approved",
        generated + 5
    );

    // 18:00 UTC is 03:00 in Tokyo: Kenji's digest waits for his morning.
    let evening = now - now % DAY + 18 * 3600;
    let searches = dam.stats().searches;
    let report = stack
        .invoke(
            FUNCTION,
            json!({"scan": "rights_expiry", "as_of": at(evening)}),
        )
        .await?;
    println!(
        "2. The hourly scan runs (as of {} UTC)                -> {} alerts, {} digests sent, {} held; {} DAM searches",
        &at(evening)[11..16],
        report["alerted"],
        report["digests_sent"],
        report["digests_held"],
        dam.stats().searches - searches
    );
    for request in take_alerts(stack).await? {
        let who = people
            .iter()
            .find(|p| pseudonyms.pseudonym(p.0) == request.key.recipient)
            .map_or("?", |p| p.1);
        if let Some(Content::List(list)) = &request.content {
            println!("   {who} sees: {}", list.header.as_deref().unwrap_or(""));
            for line in list.body.lines().skip(1) {
                println!("      {line}");
            }
        }
    }
    let morning = stack
        .invoke(
            FUNCTION,
            json!({"scan": "rights_expiry", "as_of": at(evening + 4 * 3600)}),
        )
        .await?;
    println!(
        "3. The scan at 07:00 Tokyo time                           -> {} new alerts, {} digest sent (Kenji's)",
        morning["alerted"], morning["digests_sent"]
    );
    take_alerts(stack).await?;

    let meta = local::whatsapp_meta::MetaWebhookSender::new(
        stack.url("/whatsapp/webhook"),
        "local-app-secret-change-me",
    );
    let body = json!({
        "object": "whatsapp_business_account",
        "entry": [{"id": "204060801234567", "changes": [{"field": "messages", "value": {
            "messaging_product": "whatsapp",
            "metadata": {"display_phone_number": "15551230000", "phone_number_id": "109876543210987"},
            "contacts": [{"profile": {"name": "Ana"}, "wa_id": "447700900501"}],
            "messages": [{"from": "447700900501", "id": "wamid.demo-renew", "timestamp": now.to_string(),
                "type": "interactive",
                "interactive": {"type": "button_reply", "button_reply": {"id": format!("rx|renew|{poster}|"), "title": "Request renewal"}}}],
        }}]}],
    });
    meta.deliver(body.to_string().as_bytes()).await?;
    for queue in ["InboundQueue", "RightsExpiryQueue"] {
        if let Some(consumer) = stack.consumer(queue) {
            stack.runner.drain(consumer, 5).await?;
        }
    }
    let reply = take_alerts(stack).await?;
    let log = dam
        .asset(&poster)
        .and_then(|a| a.field("Custom.WhatsAppLog").map(str::to_owned))
        .unwrap_or_default();
    println!(
        "4. Ana taps \"Request renewal\" on the harbour poster       -> {} reply; the DAM's log reads:",
        reply.len()
    );
    println!("      {log}");
    Ok(())
}

//! Demo chapter: flow 1 (review requests: two approvers, one approves, the other is told it is
//! already decided) and flow 7 (issue alerts: missing metadata, a rejection), printing what each
//! phone is sent and what the DAM ends with.

use local::stack::LocalStack;
use orange_logic_sim::{Simulator as DamSim, WebhookTarget};
use shared::adapters::directory::DynamoContactDirectory;
use shared::domain::contact::{Contact, Role, WhatsAppAddress};
use shared::domain::outbound::OutboundRequest;
use shared::ports::ContactDirectory;
use shared::pseudonym::Pseudonymizer;
use shared::secrets::ConnectorSecrets;
use std::time::Duration;

const NOTIFICATIONS: &str = "109876543210987";
const PEOPLE: [(&str, &str, Role); 3] = [
    ("447700900101", "Ada (approver)", Role::Approver),
    ("447700900102", "Bo (approver)", Role::Approver),
    ("447700900201", "Olu (owner)", Role::Owner),
];

/// Plays flows 1 and 7 on `stack`, with `dam` as the Orange Logic instance.
pub async fn play(stack: &LocalStack, dam: &DamSim, app_secret: &str) -> anyhow::Result<()> {
    println!("\n== Flow 1: review requests, and flow 7: issue alerts ==");
    let secrets = ConnectorSecrets::from_json(&std::fs::read_to_string(
        local::moto::workspace_root().join("local/secrets.json"),
    )?)?;
    let pseudonyms = Pseudonymizer::new(&secrets.pseudonym_key);
    let directory = DynamoContactDirectory::new(
        aws_sdk_dynamodb::Client::new(&stack.aws),
        stack.resources.tables["ContactsTable"].clone(),
    );
    for (phone, name, role) in PEOPLE {
        let mut contact = Contact::new(pseudonyms.pseudonym(phone));
        contact.address = Some(WhatsAppAddress::from_wa_id(phone)?);
        contact.name = Some(name.split(' ').next().unwrap_or(name).to_owned());
        contact.roles = [role].into_iter().collect();
        directory.put(&contact).await?;
    }
    dam.subscribe(WebhookTarget {
        url: stack.url("/dam/webhook"),
        header: "x-dam-webhook-secret".into(),
        secret: "local-dam-webhook-secret".into(),
    });
    // What earlier chapters left on the flow queues is handled first and kept out of this account.
    drain(stack, "InboundQueue").await?;
    drain(stack, "ReviewQueue").await?;
    drain(stack, "IssueAlertQueue").await?;
    sent(stack).await?;
    let name_of = |request: &OutboundRequest| {
        PEOPLE
            .iter()
            .find(|(phone, _, _)| pseudonyms.pseudonym(phone) == request.key.recipient)
            .map_or("someone", |(_, name, _)| *name)
    };

    let id = dam.add_asset(&[
        ("CoreField.Title", "North pier at dusk"),
        ("CoreField.Photographer", "A. Field"),
        ("Custom.Campaign", "SUMMER26"),
        (
            "CoreField.UsageRights",
            "Web and social, EU, until 31 Aug 2027",
        ),
        ("Custom.ReviewDeadline", "2026-12-05T17:00:00"),
        ("Custom.Approvers", "+447700900101|+447700900102"),
        ("CoreField.Owner", "+447700900201"),
        ("CoreField.Status", "Draft"),
    ]);
    settle_dam(stack, dam).await?;
    dam.edit(&id, "CoreField.Status", "Ready for Review")?;
    settle_dam(stack, dam).await?;
    drain(stack, "ReviewQueue").await?;
    println!(
        "1. \"North pier at dusk\" is set to Ready for Review in the DAM. Each approver's phone:"
    );
    let requests = sent(stack).await?;
    for request in &requests {
        println!("   {:<16} {}", name_of(request), template_line(request));
    }
    let payload = |who: &str, index: usize| {
        requests
            .iter()
            .find(|r| r.key.recipient == pseudonyms.pseudonym(who))
            .and_then(|r| serde_json::to_value(&r.template).ok())
            .and_then(|t| t["buttons"][index]["payload"].as_str().map(str::to_owned))
            .unwrap_or_default()
    };
    let meta =
        local::whatsapp_meta::MetaWebhookSender::new(stack.url("/whatsapp/webhook"), app_secret);
    tap(
        &meta,
        "447700900101",
        &payload("447700900101", 0),
        "Approve",
    )
    .await?;
    settle_answers(stack).await?;
    println!("2. Ada taps Approve. Phones:");
    print_texts(&sent(stack).await?, &name_of);
    tap(&meta, "447700900102", &payload("447700900102", 1), "Reject").await?;
    settle_answers(stack).await?;
    println!("3. Bo then taps Reject. Bo's phone:");
    print_texts(&sent(stack).await?, &name_of);
    print_asset(dam, &id);

    let incomplete = dam.add_asset(&[
        ("CoreField.Title", "Store opening, Lyon"),
        ("Custom.Campaign", "SUMMER26"),
        ("CoreField.Owner", "+447700900201"),
        ("CoreField.Status", "Draft"),
    ]);
    settle_dam(stack, dam).await?;
    dam.edit(&incomplete, "CoreField.Status", "Ready for Review")?;
    settle_dam(stack, dam).await?;
    drain(stack, "IssueAlertQueue").await?;
    println!(
        "4. \"Store opening, Lyon\" goes to review without a photographer. The owner's phone:"
    );
    for request in sent(stack).await? {
        println!("   {:<16} {}", name_of(&request), template_line(&request));
    }
    print_asset(dam, &incomplete);

    let rejected = dam.add_asset(&[
        ("CoreField.Title", "Harbour crane"),
        ("CoreField.Photographer", "A. Field"),
        ("Custom.Campaign", "SUMMER26"),
        ("CoreField.Owner", "+447700900201"),
        ("CoreField.Status", "Draft"),
    ]);
    settle_dam(stack, dam).await?;
    dam.edit(&rejected, "CoreField.Status", "Rejected")?;
    settle_dam(stack, dam).await?;
    drain(stack, "IssueAlertQueue").await?;
    println!("5. \"Harbour crane\" is rejected in the DAM. The owner's phone:");
    for request in sent(stack).await? {
        println!("   {:<16} {}", name_of(&request), template_line(&request));
    }
    print_asset(dam, &rejected);
    Ok(())
}

fn template_line(request: &OutboundRequest) -> String {
    let template = serde_json::to_value(&request.template).unwrap_or_default();
    let values: Vec<String> = template["body"]
        .as_array()
        .map(|b| {
            b.iter()
                .map(|p| {
                    p["value"]["text"]
                        .as_str()
                        .map_or_else(|| p["value"].to_string(), str::to_owned)
                })
                .collect()
        })
        .unwrap_or_default();
    let buttons = template["buttons"].as_array().map_or(0, Vec::len);
    format!(
        "template {} [{}]{}",
        template["use"].as_str().unwrap_or("?"),
        values.join(" | "),
        if buttons > 0 {
            " [Approve] [Reject]"
        } else {
            ""
        }
    )
}

fn print_texts(requests: &[OutboundRequest], name_of: &impl Fn(&OutboundRequest) -> &'static str) {
    for request in requests {
        let content = serde_json::to_value(&request.content).unwrap_or_default();
        println!(
            "   {:<16} \"{}\"",
            name_of(request),
            content["body"].as_str().unwrap_or("")
        );
    }
}

fn print_asset(dam: &DamSim, id: &str) {
    if let Some(asset) = dam.asset(id) {
        let field = |f: &str| asset.fields.get(f).cloned().unwrap_or_default();
        println!("   DAM: status {:?}; comments:", field("CoreField.Status"));
        for line in field("Custom.WhatsAppLog").lines() {
            println!("     | {line}");
        }
    }
}

async fn settle_dam(stack: &LocalStack, dam: &DamSim) -> anyhow::Result<()> {
    dam.wait_for_webhooks(Duration::from_secs(10)).await;
    drain(stack, "DamEventsQueue").await
}

/// A tap on a template quick reply, as Meta posts it (the demo's own wamids: earlier chapters'
/// simulators number theirs from 1 too, and the router would take a repeat for a redelivery).
async fn tap(
    meta: &local::whatsapp_meta::MetaWebhookSender,
    phone: &str,
    payload: &str,
    text: &str,
) -> anyhow::Result<()> {
    let now = jiff::Timestamp::now().as_second();
    let body = serde_json::json!({
        "object": "whatsapp_business_account",
        "entry": [{"id": "204060801234567", "changes": [{"field": "messages", "value": {
            "messaging_product": "whatsapp",
            "metadata": {"display_phone_number": "15551230000", "phone_number_id": NOTIFICATIONS},
            "contacts": [{"profile": {"name": text}, "wa_id": phone}],
            "messages": [{"from": phone, "id": format!("wamid.DEMO-REVIEW-{phone}-{now}"),
                          "timestamp": now.to_string(), "type": "button",
                          "context": {"from": "15551230000", "id": "wamid.DEMO-REVIEW-REQUEST"},
                          "button": {"payload": payload, "text": text}}],
        }}]}],
    });
    let status = meta.deliver(body.to_string().as_bytes()).await?;
    anyhow::ensure!(status == 200, "the webhook answered {status}");
    Ok(())
}

async fn settle_answers(stack: &LocalStack) -> anyhow::Result<()> {
    drain(stack, "InboundQueue").await?;
    drain(stack, "ReviewQueue").await
}

async fn drain(stack: &LocalStack, queue: &str) -> anyhow::Result<()> {
    let consumer = stack
        .consumer(queue)
        .ok_or_else(|| anyhow::anyhow!("no consumer of {queue}"))?;
    stack.runner.drain_concurrently(consumer, 20).await?;
    Ok(())
}

/// What the one sender was asked to send since the last look (each person's phone, once the
/// sender delivers it).
async fn sent(stack: &LocalStack) -> anyhow::Result<Vec<OutboundRequest>> {
    let url = stack.resources.queue_url("OutboundQueue")?.to_owned();
    let mut requests = Vec::new();
    loop {
        let batch = stack
            .sqs()
            .receive_message()
            .queue_url(&url)
            .max_number_of_messages(10)
            .message_system_attribute_names(aws_sdk_sqs::types::MessageSystemAttributeName::All)
            .send()
            .await?
            .messages
            .unwrap_or_default();
        if batch.is_empty() {
            break;
        }
        for message in batch {
            if let Some(body) = &message.body {
                requests.push(serde_json::from_str(body)?);
            }
            if let Some(handle) = message.receipt_handle {
                stack
                    .sqs()
                    .delete_message()
                    .queue_url(&url)
                    .receipt_handle(handle)
                    .send()
                    .await?;
            }
        }
    }
    Ok(requests)
}

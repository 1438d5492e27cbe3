//! Demo chapter: flow 4 (campaign rollout). A package approved for three regions reaches each
//! regional contact once; one confirms, one asks for another format and receives it, one flags an
//! issue; then the status per region, as the WhatsApp command and the operator command show it.

use local::stack::LocalStack;
use orange_logic_sim::{Simulator as DamSim, WebhookTarget};
use serde_json::{Value, json};
use shared::adapters::campaigns::DynamoCampaignStore;
use shared::adapters::directory::DynamoContactDirectory;
use shared::domain::contact::{Contact, Role, WhatsAppAddress};
use shared::domain::outbound::OutboundRequest;
use shared::ports::ContactDirectory;
use shared::pseudonym::Pseudonymizer;
use std::time::Duration;

const NOTIFICATIONS: &str = "109876543210987";
const ANA: &str = "447700900301";
const DIRK: &str = "447700900302";
const NORA: &str = "447700900303";
const PEOPLE: [(&str, &str, &str); 3] = [
    (ANA, "Ana (Iberia)", "Iberia"),
    (DIRK, "Dirk (DACH)", "DACH"),
    (NORA, "Nora (Nordics)", "Nordics"),
];

/// Plays flow 4 on `stack`, with `dam` as the Orange Logic instance.
pub async fn play(
    stack: &LocalStack,
    dam: &DamSim,
    pseudonyms: &Pseudonymizer,
    app_secret: &str,
) -> anyhow::Result<()> {
    println!("\n== Flow 4: campaign rollout ==");
    let directory = DynamoContactDirectory::new(
        aws_sdk_dynamodb::Client::new(&stack.aws),
        stack.resources.tables["ContactsTable"].clone(),
    );
    for (phone, name, region) in PEOPLE {
        let mut contact = Contact::new(pseudonyms.pseudonym(phone));
        contact.address = Some(WhatsAppAddress::from_wa_id(phone)?);
        contact.name = Some(name.split(' ').next().unwrap_or(name).to_owned());
        contact.roles = [Role::Regional].into_iter().collect();
        contact.regions = [region.to_owned()].into_iter().collect();
        directory.put(&contact).await?;
    }
    dam.subscribe(WebhookTarget {
        url: stack.url("/dam/webhook"),
        header: "x-dam-webhook-secret".into(),
        secret: "local-dam-webhook-secret".into(),
    });
    for queue in [
        "InboundQueue",
        "ReviewQueue",
        "IssueAlertQueue",
        "CampaignQueue",
    ] {
        drain(stack, queue).await?;
    }
    sent(stack).await?;
    let name_of = |request: &OutboundRequest| {
        PEOPLE
            .iter()
            .find(|(phone, _, _)| pseudonyms.pseudonym(phone) == request.key.recipient)
            .map_or("someone", |(_, name, _)| *name)
    };

    let member = |title: &str, region: &str| {
        let mut fields = vec![
            ("CoreField.Title", title),
            ("Custom.Campaign", "SUMMER26"),
            ("CoreField.Status", "Approved"),
        ];
        if !region.is_empty() {
            fields.push(("Custom.Region", region));
        }
        dam.add_asset(&fields)
    };
    let members = [
        member("Hero banner ES", "Iberia"),
        member("Hero banner DE", "DACH"),
        member("Hero banner SE", "Nordics"),
        member("Poster", ""),
    ]
    .join("|");
    let id = dam.add_asset(&[
        ("CoreField.Title", "Summer launch kit"),
        ("CoreField.DocSubType", "Campaign-Package"),
        ("Custom.Campaign", "SUMMER26"),
        ("Custom.Region", "Iberia|DACH|Nordics"),
        ("Custom.PackageAssets", &members),
        ("CoreField.Status", "Draft"),
    ]);
    settle_dam(stack, dam).await?;
    dam.edit(&id, "CoreField.Status", "Approved")?;
    settle_dam(stack, dam).await?;
    drain(stack, "CampaignQueue").await?;
    println!(
        "1. The package \"Summer launch kit\" (Iberia, DACH, Nordics; four member assets) is approved in the DAM. Each regional phone:"
    );
    let notices = sent(stack).await?;
    for request in &notices {
        println!("   {:<16} {}", name_of(request), template_line(request));
    }
    let payload = |who: &str, index: usize| {
        notices
            .iter()
            .find(|r| r.key.recipient == pseudonyms.pseudonym(who))
            .and_then(|r| serde_json::to_value(&r.template).ok())
            .and_then(|t| t["buttons"][index]["payload"].as_str().map(str::to_owned))
            .unwrap_or_default()
    };
    let meta =
        local::whatsapp_meta::MetaWebhookSender::new(stack.url("/whatsapp/webhook"), app_secret);

    post(
        &meta,
        ANA,
        "confirm",
        json!({"type": "button", "button": {"payload": payload(ANA, 0), "text": "Confirm receipt"}}),
    )
    .await?;
    settle_answers(stack).await?;
    println!("2. Ana taps Confirm receipt. Ana's phone:");
    print_messages(&sent(stack).await?, &name_of);

    post(
        &meta,
        DIRK,
        "format",
        json!({"type": "button", "button": {"payload": payload(DIRK, 1), "text": "Request another format"}}),
    )
    .await?;
    settle_answers(stack).await?;
    println!("3. Dirk taps Request another format. Dirk's phone:");
    let list = sent(stack).await?;
    print_messages(&list, &name_of);
    let row = list
        .iter()
        .filter_map(|r| serde_json::to_value(&r.content).ok())
        .find_map(|c| {
            c["sections"][0]["rows"][1]["id"]
                .as_str()
                .map(str::to_owned)
        })
        .unwrap_or_default();
    post(
        &meta,
        DIRK,
        "pick",
        json!({"type": "interactive", "interactive": {"type": "list_reply", "list_reply": {"id": row, "title": "Print PDF"}}}),
    )
    .await?;
    settle_answers(stack).await?;
    println!("4. Dirk picks Print PDF. Dirk's phone (each link serves the TR1 rendition):");
    for request in sent(stack).await? {
        let content = serde_json::to_value(&request.content).unwrap_or_default();
        let served = match content["source"]["link"].as_str() {
            Some(link) => reqwest::get(link).await?.text().await?,
            None => String::new(),
        };
        println!(
            "   {:<16} {} {:?} -> the DAM serves \"{served}\"",
            name_of(&request),
            content["kind"].as_str().unwrap_or(""),
            content["caption"].as_str().unwrap_or(""),
        );
    }

    post(
        &meta,
        NORA,
        "issue",
        json!({"type": "button", "button": {"payload": payload(NORA, 2), "text": "Flag an issue"}}),
    )
    .await?;
    settle_answers(stack).await?;
    println!("5. Nora taps Flag an issue. Nora's phone:");
    print_messages(&sent(stack).await?, &name_of);
    post(
        &meta,
        NORA,
        "description",
        json!({"type": "text", "text": {"body": "The Swedish banner still shows the spring price"}}),
    )
    .await?;
    settle_answers(stack).await?;
    println!("6. Nora replies with the description. Nora's phone:");
    print_messages(&sent(stack).await?, &name_of);
    if let Some(asset) = dam.asset(&id) {
        println!("   DAM: the package's comments:");
        for line in asset
            .fields
            .get("Custom.WhatsAppLog")
            .cloned()
            .unwrap_or_default()
            .lines()
        {
            println!("     | {line}");
        }
    }

    post(
        &meta,
        ANA,
        "status",
        json!({"type": "text", "text": {"body": "status SUMMER26"}}),
    )
    .await?;
    settle_answers(stack).await?;
    println!("7. Ana sends \"status SUMMER26\". Ana's phone:");
    for request in sent(stack).await? {
        let content = serde_json::to_value(&request.content).unwrap_or_default();
        for line in content["body"].as_str().unwrap_or("").lines() {
            println!("   | {line}");
        }
    }
    println!(
        "8. `connector campaign status SUMMER26` prints the same lines, read from the rollouts table:"
    );
    let store = DynamoCampaignStore::new(
        aws_sdk_dynamodb::Client::new(&stack.aws),
        stack.resources.tables["CampaignRolloutsTable"].clone(),
    );
    for line in shared::flows::campaign_rollout::status_text(&store, "SUMMER26").await? {
        println!("   $ {line}");
    }
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
    format!(
        "template {} [{}] [Confirm receipt] [Request another format] [Flag an issue]",
        template["use"].as_str().unwrap_or("?"),
        values.join(" | "),
    )
}

fn print_messages(
    requests: &[OutboundRequest],
    name_of: &impl Fn(&OutboundRequest) -> &'static str,
) {
    for request in requests {
        let content: Value = serde_json::to_value(&request.content).unwrap_or_default();
        let rows: Vec<&str> = content["sections"][0]["rows"]
            .as_array()
            .into_iter()
            .flatten()
            .filter_map(|r| r["title"].as_str())
            .collect();
        let shown = if rows.is_empty() {
            format!("\"{}\"", content["body"].as_str().unwrap_or(""))
        } else {
            format!(
                "list \"{}\" [{}]",
                content["body"].as_str().unwrap_or(""),
                rows.join(" | ")
            )
        };
        println!("   {:<16} {shown}", name_of(request));
    }
}

async fn settle_dam(stack: &LocalStack, dam: &DamSim) -> anyhow::Result<()> {
    dam.wait_for_webhooks(Duration::from_secs(10)).await;
    drain(stack, "DamEventsQueue").await
}

/// A message from `phone`, as Meta posts it (the demo's own wamids).
async fn post(
    meta: &local::whatsapp_meta::MetaWebhookSender,
    phone: &str,
    step: &str,
    mut message: Value,
) -> anyhow::Result<()> {
    let now = jiff::Timestamp::now().as_second();
    message["from"] = json!(phone);
    message["id"] = json!(format!("wamid.DEMO-CAMPAIGN-{step}-{phone}-{now}"));
    message["timestamp"] = json!(now.to_string());
    if message["type"] != "text" {
        message["context"] = json!({"from": "15551230000", "id": "wamid.DEMO-CAMPAIGN-NOTICE"});
    }
    let body = json!({
        "object": "whatsapp_business_account",
        "entry": [{"id": "204060801234567", "changes": [{"field": "messages", "value": {
            "messaging_product": "whatsapp",
            "metadata": {"display_phone_number": "15551230000", "phone_number_id": NOTIFICATIONS},
            "contacts": [{"profile": {"name": step}, "wa_id": phone}],
            "messages": [message],
        }}]}],
    });
    let status = meta.deliver(body.to_string().as_bytes()).await?;
    anyhow::ensure!(status == 200, "the webhook answered {status}");
    Ok(())
}

async fn settle_answers(stack: &LocalStack) -> anyhow::Result<()> {
    drain(stack, "InboundQueue").await?;
    drain(stack, "CampaignQueue").await
}

async fn drain(stack: &LocalStack, queue: &str) -> anyhow::Result<()> {
    let consumer = stack
        .consumer(queue)
        .ok_or_else(|| anyhow::anyhow!("no consumer of {queue}"))?;
    stack.runner.drain_concurrently(consumer, 20).await?;
    Ok(())
}

/// What the one sender was asked to send since the last look.
async fn sent(stack: &LocalStack) -> anyhow::Result<Vec<OutboundRequest>> {
    let url = stack.resources.queue_url("OutboundQueue")?.to_owned();
    let mut requests = Vec::new();
    loop {
        let batch = stack
            .sqs()
            .receive_message()
            .queue_url(&url)
            .max_number_of_messages(10)
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

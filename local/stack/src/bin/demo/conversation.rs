//! The conversation core on a live stack: every consumer polling in the background, the sender
//! talking to the WhatsApp simulator, the simulator's webhooks coming back through the edge. What
//! each phone shows is read from the simulator; what the connector recorded, from its tables.

use super::Live;
use shared::adapters::directory::{DynamoContactDirectory, DynamoConversationStore};
use shared::adapters::sending::{DynamoSendLedger, DynamoSentMessages};
use shared::adapters::sqs_json::{SqsJsonQueue, SqsOutboundQueue};
use shared::connector_config::{Purpose, TemplateUse};
use shared::domain::contact::{Contact, Role, WhatsAppAddress};
use shared::domain::outbound::{
    MessageFlow, OUTBOUND_VERSION, OutboundRequest, SendFrom, SendKey, TemplateMessage,
};
use shared::ports::{
    BusinessNumberId, ContactDirectory, ConversationStore, OutboundQueue, SendLedger,
    SentMessageStore,
};
use shared::whatsapp::messages::{Content, TemplateParam};
use std::time::Duration;

const MARIA: &str = "447700900123";
const LEO: &str = "447700900456";
const STRANGER: &str = "447700900999";

pub async fn play(live: &Live) -> anyhow::Result<()> {
    println!("\n== Conversation core: route-inbound, the one sender, track-delivery ==");
    println!(
        "A second stack `{}` runs every consumer in the background (4 pollers a queue, as Lambda's",
        live.stack.resources.stack_name
    );
    println!("event source mappings do); its sender talks to the WhatsApp simulator.");
    let dynamodb = aws_sdk_dynamodb::Client::new(&live.stack.aws);
    let table = |id: &str| live.stack.resources.tables[id].clone();
    let directory = DynamoContactDirectory::new(dynamodb.clone(), table("ContactsTable"));
    let conversations = DynamoConversationStore::new(dynamodb.clone(), table("ConversationsTable"));
    let ledger = DynamoSendLedger::new(dynamodb.clone(), table("SendsTable"));
    let sent = DynamoSentMessages::new(dynamodb, table("SentMessagesTable"));
    let outbound = SqsOutboundQueue(SqsJsonQueue::new(
        live.stack.sqs(),
        live.stack.resources.queue_url("OutboundQueue")?,
    ));
    let number = BusinessNumberId::parse(super::NOTIFICATIONS_NUMBER)
        .ok_or_else(|| anyhow::anyhow!("number"))?;

    for (digits, name, roles) in [
        (MARIA, "Maria Field", vec![Role::Field, Role::Approver]),
        (LEO, "Leo Legal", vec![Role::Legal]),
    ] {
        let mut contact = Contact::new(live.pseudonym(digits));
        contact.address = Some(WhatsAppAddress::parse(digits)?);
        contact.name = Some(name.into());
        contact.roles = roles.into_iter().collect();
        directory.put(&contact).await?;
    }
    println!("1. The directory lists Maria (field, approver) and Leo (legal).");

    let stranger = live.whatsapp.user(STRANGER);
    stranger.send_text("hi, who is this?");
    stranger.send_text("hello??");
    live.settle(|| live.lines(STRANGER).len() >= 3).await;
    println!("2. Someone unknown writes twice: one polite reply, never a loop:");
    live.print_phone(STRANGER);

    let maria = live.whatsapp.user(MARIA);
    maria.send_text("Stop.");
    live.settle(|| live.lines(MARIA).len() >= 2).await;
    println!("3. Maria sends `Stop.`: recorded first, confirmed once:");
    live.print_phone(MARIA);
    let maria_address = WhatsAppAddress::parse(MARIA)?;
    let review = |version: &str| OutboundRequest {
        v: OUTBOUND_VERSION,
        key: SendKey {
            flow: MessageFlow::Review,
            subject: "A-1042".into(),
            version: version.into(),
            recipient: live.pseudonym(MARIA),
        },
        to: maria_address.clone(),
        from: SendFrom::Purpose(Purpose::Notifications),
        content: Some(Content::Text {
            body: format!("Please review North pier, version {version}."),
            preview_url: false,
        }),
        template: None,
        reply_to: None,
        actor: Some("system".into()),
        requested_at_ms: super::now_ms(),
    };
    let request = review("1");
    outbound.enqueue(std::slice::from_ref(&request)).await?;
    let entry = live
        .wait_for(|| async {
            ledger
                .find(&request.key.encode())
                .await
                .ok()
                .flatten()
                .filter(|e| e.reason.is_some() || e.message_id.is_some())
        })
        .await;
    println!(
        "4. A review request for Maria is queued after her STOP  -> {:?}{}; her phone shows nothing new ({} lines)",
        entry.as_ref().map(|e| e.state),
        entry
            .as_ref()
            .and_then(|e| e.reason.clone())
            .map(|r| format!(" ({r})"))
            .unwrap_or_default(),
        live.lines(MARIA).len()
    );

    maria.send_text("START");
    live.settle(|| live.lines(MARIA).len() >= 4).await;
    outbound.enqueue(&[review("2")]).await?;
    live.settle(|| live.lines(MARIA).len() >= 5).await;
    println!("5. Maria sends START; the next review request reaches her:");
    live.print_phone(MARIA);

    // Leo last wrote 25 hours ago: his window is closed on both sides.
    conversations
        .record_inbound(
            &live.pseudonym(LEO),
            &number,
            super::now_ms() - 25 * 3600 * 1000,
        )
        .await?;
    live.whatsapp
        .user(LEO)
        .last_wrote(Some(Duration::from_secs(25 * 3600)));
    let receipt = OutboundRequest {
        v: OUTBOUND_VERSION,
        key: SendKey {
            flow: MessageFlow::FieldIngest,
            subject: "wamid.LEO-UPLOAD".into(),
            version: "receipt".into(),
            recipient: live.pseudonym(LEO),
        },
        to: WhatsAppAddress::parse(LEO)?,
        from: SendFrom::Purpose(Purpose::FieldIngest),
        content: Some(Content::Text {
            body: "Got your contract scan, filed in Legal/Contracts.".into(),
            preview_url: false,
        }),
        template: Some(TemplateMessage {
            template: TemplateUse::Receipt,
            header: None,
            body: ["document", "Legal/Contracts", "A-20931"]
                .into_iter()
                .map(TemplateParam::text)
                .collect(),
            buttons: Vec::new(),
        }),
        reply_to: None,
        actor: Some("system".into()),
        requested_at_ms: super::now_ms(),
    };
    // Hold the simulator's own status webhooks: Meta's statuses are played by hand below.
    live.whatsapp.hold_deliveries();
    outbound.enqueue(std::slice::from_ref(&receipt)).await?;
    live.settle(|| !live.lines(LEO).is_empty()).await;
    println!(
        "6. A free-form receipt for Leo, whose window closed 1 hour ago, goes as its template:"
    );
    live.print_phone(LEO);

    let message_id = ledger
        .find(&receipt.key.encode())
        .await?
        .and_then(|e| e.message_id)
        .unwrap_or_default();
    live.meta_status(&message_id, LEO, &["read", "delivered", "sent"])
        .await?;
    let tracked = live
        .wait_for(|| async {
            sent.get(&message_id)
                .await
                .ok()
                .flatten()
                .filter(|t| t.history.len() >= 3)
        })
        .await;
    live.whatsapp.release_deliveries();
    if let Some(tracked) = tracked {
        println!(
            "7. Meta redelivers its statuses read, delivered, sent out of order -> the record stays `{:?}` (history {:?})",
            tracked.state, tracked.history
        );
    }
    Ok(())
}

//! Demo chapter, flow 2: a field engineer's photos reach the DAM, tagged, located and routed, with
//! one receipt per burst; a fake JPEG is refused. Runs on a stack of its own whose sender talks to
//! a WhatsApp simulator, against a seeded Orange Logic simulator.

use local::moto::workspace_root;
use local::stack::{LocalStack, Options};
use shared::adapters::directory::DynamoContactDirectory;
use shared::domain::contact::{Contact, Role, WhatsAppAddress};
use shared::ports::ContactDirectory;
use shared::pseudonym::Pseudonymizer;
use shared::secrets::Secret;
use shared::whatsapp::messages::MediaKind;

const ANA: &str = "447700900321";

fn jpeg(tag: &str) -> Vec<u8> {
    let mut bytes = vec![
        0xFF, 0xD8, 0xFF, 0xE0, 0x00, 0x10, b'J', b'F', b'I', b'F', 0,
    ];
    bytes.extend_from_slice(tag.as_bytes());
    bytes.extend(std::iter::repeat_n(0x55, 4096));
    bytes.extend_from_slice(&[0xFF, 0xD9]);
    bytes
}

struct Chapter {
    stack: LocalStack,
    phone: whatsapp_sim::Simulator,
    dam: orange_logic_sim::Simulator,
    shown: usize,
}

impl Chapter {
    async fn run_chain(&self) -> anyhow::Result<()> {
        self.phone.idle().await;
        for queue in [
            "InboundQueue",
            "FieldIngestQueue",
            "FieldReceiptsQueue",
            "OutboundQueue",
        ] {
            let consumer = self
                .stack
                .consumer(queue)
                .ok_or_else(|| anyhow::anyhow!("{queue} has no consumer"))?;
            self.stack.runner.drain(consumer, 50).await?;
        }
        Ok(())
    }

    /// Prints what reached Ana's phone since the last call.
    fn phone_shows(&mut self) {
        let lines: Vec<String> = self
            .phone
            .users()
            .into_iter()
            .filter(|u| u.wa_id.as_deref() == Some(ANA))
            .flat_map(|u| u.lines)
            .filter(|l| l.direction == "out")
            .map(|l| l.summary)
            .collect();
        for line in &lines[self.shown.min(lines.len())..] {
            println!(
                "  Ana's phone ← {}",
                line.replace('\n', "\n                ")
            );
        }
        self.shown = lines.len();
    }

    fn dam_holds(&self) {
        let folders = self.dam.folders();
        for asset in self
            .dam
            .assets()
            .into_iter()
            .filter(|a| a.field("Custom.WhatsAppMessageId").is_some())
        {
            let folder = folders
                .iter()
                .find(|f| Some(f.record_id.as_str()) == asset.field("CoreField.Parent-folder"))
                .map_or("?", |f| f.title.as_str());
            println!(
                "  DAM: {} in …/{folder}: contributor {}, project {}, location {}, status {}",
                asset.identifier,
                asset.field("Custom.Contributor").unwrap_or("-"),
                asset.field("CoreField.ProjectTag").unwrap_or("-"),
                asset.field("Custom.Location").unwrap_or("-"),
                asset.field("CoreField.Status").unwrap_or("-"),
            );
        }
    }
}

/// Plays the chapter on the moto at `moto_endpoint`.
pub async fn play(moto_endpoint: &str) -> anyhow::Result<()> {
    println!("\n== Flow 2: field media ingest ==");
    let dam = orange_logic_sim::Simulator::start(
        orange_logic_sim::SimConfig::default(),
        ([127, 0, 0, 1], 0).into(),
    )
    .await?;
    dam.seed_file(&workspace_root().join("local/orange-logic-seed.json"))?;
    let port = std::net::TcpListener::bind("127.0.0.1:0")?
        .local_addr()?
        .port();
    let mut options = Options::new(format!("demo-field{}", std::process::id()));
    options.graph_base_url = Some(format!("http://127.0.0.1:{port}"));
    options.orange_logic_url = Some(dam.url());
    options.env_overrides = [("RECEIPT_WINDOW_SECONDS", "0"), ("PAIR_INTERVAL_MS", "1")]
        .map(|(k, v)| (k.to_owned(), v.to_owned()))
        .into();
    let stack = LocalStack::start(moto_endpoint, options).await?;
    let mut config =
        whatsapp_sim::SimConfig::new("local-graph-token", "local-app-secret-change-me");
    config.addr = ([127, 0, 0, 1], port).into();
    config.callback_url = Some(stack.url("/whatsapp/webhook"));
    let phone = whatsapp_sim::Simulator::start(config).await?;
    let mut ana = Contact::new(
        Pseudonymizer::new(&Secret::new("local-pseudonym-key-0123456789abcdef0123")).pseudonym(ANA),
    );
    ana.name = Some("Ana Ferreira".into());
    ana.address = Some(WhatsAppAddress::parse(&format!("+{ANA}"))?);
    ana.roles = [Role::Field].into();
    DynamoContactDirectory::new(
        aws_sdk_dynamodb::Client::new(&stack.aws),
        &stack.resources.tables["ContactsTable"],
    )
    .put(&ana)
    .await?;
    let mut chapter = Chapter {
        stack,
        phone,
        dam,
        shown: 0,
    };
    let user = chapter.phone.user(ANA);

    println!(
        "Ana (field, in the directory) shares her location, then a photo captioned `#SPRING26 storefront`:"
    );
    user.send_location(51.507_351, -0.127_758, Some("Storefront"));
    user.send_media(
        MediaKind::Image,
        "image/jpeg",
        jpeg("storefront"),
        Some("#SPRING26 storefront"),
        None,
    );
    chapter.run_chain().await?;
    chapter.phone_shows();
    chapter.dam_holds();

    println!("She types `project BRIDGE-12`, then sends two pier photos without a tag, together:");
    user.send_text("project BRIDGE-12");
    chapter.run_chain().await?;
    chapter.phone.hold_deliveries();
    for pier in ["pier-1", "pier-2"] {
        user.send_media(MediaKind::Image, "image/jpeg", jpeg(pier), None, None);
    }
    chapter.phone.release_deliveries();
    chapter.run_chain().await?;
    chapter.phone_shows();

    println!("She sends a PDF labelled as a JPEG:");
    user.send_media(
        MediaKind::Image,
        "image/jpeg",
        b"%PDF-1.7\n%fake photo\n".to_vec(),
        None,
        None,
    );
    chapter.run_chain().await?;
    chapter.phone_shows();
    println!("The DAM ends with (the fake JPEG is not there):");
    chapter.dam_holds();
    Ok(())
}

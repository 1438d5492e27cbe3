//! Demo chapter, flow 6: a customer sends a photo to the campaign number, is asked for consent,
//! says Yes (the photo reaches moderation, tagged, with its consent and without its GPS); then
//! another customer sends one and says No (nothing is kept). Runs on a stack of its own whose sender
//! talks to a WhatsApp simulator on the campaign number, against a seeded Orange Logic simulator.

use local::moto::workspace_root;
use local::stack::{LocalStack, Options};
use shared::domain::field_ingest::exif_gps;
use shared::whatsapp::messages::MediaKind;

const CAMPAIGN_NUMBER: &str = "109876543210988";
const SAM: &str = "447700900611";
const LEE: &str = "447700900612";
const PHOTO: &[u8] = include_bytes!("../../../../../fixtures/ugc/photo-with-gps.jpg");

struct Chapter {
    stack: LocalStack,
    phone: whatsapp_sim::Simulator,
    dam: orange_logic_sim::Simulator,
}

impl Chapter {
    async fn run_chain(&self) -> anyhow::Result<()> {
        self.phone.idle().await;
        for queue in ["InboundQueue", "UgcIntakeQueue", "OutboundQueue"] {
            let consumer = self
                .stack
                .consumer(queue)
                .ok_or_else(|| anyhow::anyhow!("{queue} has no consumer"))?;
            self.stack.runner.drain(consumer, 50).await?;
        }
        self.phone.idle().await;
        Ok(())
    }

    /// Prints what reached `who`'s phone and returns the wamid of the last consent question.
    fn phone_shows(&self, who: &str, name: &str, shown: &mut usize) -> Option<String> {
        let lines: Vec<_> = self
            .phone
            .users()
            .into_iter()
            .filter(|u| u.wa_id.as_deref() == Some(who))
            .flat_map(|u| u.lines)
            .filter(|l| l.direction == "out")
            .collect();
        for line in &lines[(*shown).min(lines.len())..] {
            println!(
                "  {name}'s phone ← {}",
                line.summary.replace('\n', "\n                ")
            );
        }
        *shown = lines.len();
        lines
            .iter()
            .rev()
            .find(|l| l.kind == "interactive")
            .map(|l| l.id.clone())
    }

    fn dam_holds(&self) {
        let ugc: Vec<_> = self
            .dam
            .assets()
            .into_iter()
            .filter(|a| a.field("Custom.UgcSource").is_some())
            .collect();
        if ugc.is_empty() {
            println!("  DAM: no UGC asset");
        }
        for asset in ugc {
            let gps = asset
                .versions
                .first()
                .and_then(|v| exif_gps(&v.head))
                .map_or("none".to_owned(), |p| p.to_field());
            println!(
                "  DAM: {} campaign {}, source {:?}, rights {:?}, GPS in its EXIF: {gps}\n        consent: {}",
                asset.identifier,
                asset.field("Custom.Campaign").unwrap_or("-"),
                asset.field("Custom.UgcSource").unwrap_or("-"),
                asset.field("CoreField.UsageRights").unwrap_or("-"),
                asset.field("Custom.UgcConsent").unwrap_or("-"),
            );
        }
    }

    async fn staged(&self) -> anyhow::Result<i32> {
        let s3 = aws_sdk_s3::Client::from_conf(
            aws_sdk_s3::config::Builder::from(&self.stack.aws)
                .force_path_style(true)
                .build(),
        );
        Ok(s3
            .list_objects_v2()
            .bucket(&self.stack.resources.buckets["MediaStagingBucket"])
            .prefix("ugc-pending/")
            .send()
            .await?
            .key_count()
            .unwrap_or(0))
    }
}

/// Plays the chapter on the moto at `moto_endpoint`.
pub async fn play(moto_endpoint: &str) -> anyhow::Result<()> {
    println!("\n== Flow 6: UGC intake with consent ==");
    let dam = orange_logic_sim::Simulator::start(
        orange_logic_sim::SimConfig::default(),
        ([127, 0, 0, 1], 0).into(),
    )
    .await?;
    dam.seed_file(&workspace_root().join("local/orange-logic-seed.json"))?;
    let port = std::net::TcpListener::bind("127.0.0.1:0")?
        .local_addr()?
        .port();
    let mut options = Options::new(format!("demo-ugc{}", std::process::id()));
    options.graph_base_url = Some(format!("http://127.0.0.1:{port}"));
    options.orange_logic_url = Some(dam.url());
    options.env_overrides = [("PAIR_INTERVAL_MS", "1")]
        .map(|(k, v)| (k.to_owned(), v.to_owned()))
        .into();
    let stack = LocalStack::start(moto_endpoint, options).await?;
    let mut config =
        whatsapp_sim::SimConfig::new("local-graph-token", "local-app-secret-change-me");
    config.addr = ([127, 0, 0, 1], port).into();
    config.callback_url = Some(stack.url("/whatsapp/webhook"));
    config.phone_number_id = CAMPAIGN_NUMBER.into();
    let phone = whatsapp_sim::Simulator::start(config).await?;
    let chapter = Chapter { stack, phone, dam };

    println!("Sam, a customer, sends a phone photo (GPS in its EXIF) to the SUMMER26 number:");
    let (sam_photo, _) = chapter.phone.user(SAM).send_media(
        MediaKind::Image,
        "image/jpeg",
        PHOTO.to_vec(),
        Some("Sunset at the pier"),
        None,
    );
    chapter.run_chain().await?;
    let mut sam_shown = 0;
    let question = chapter
        .phone_shows(SAM, "Sam", &mut sam_shown)
        .ok_or_else(|| anyhow::anyhow!("Sam was not asked for consent"))?;
    println!(
        "  staged in S3, waiting for consent: {}",
        chapter.staged().await?
    );
    println!("Sam taps `Yes, I agree`:");
    chapter.phone.user(SAM).tap_reply_button(
        &question,
        &format!("ug|yes|{sam_photo}|1"),
        "Yes, I agree",
    );
    chapter.run_chain().await?;
    chapter.phone_shows(SAM, "Sam", &mut sam_shown);
    chapter.dam_holds();
    println!("  staged in S3: {}", chapter.staged().await?);

    println!("Lee sends a photo too, and taps `No`:");
    let (lee_photo, _) = chapter.phone.user(LEE).send_media(
        MediaKind::Image,
        "image/jpeg",
        PHOTO.to_vec(),
        None,
        None,
    );
    chapter.run_chain().await?;
    let mut lee_shown = 0;
    let question = chapter
        .phone_shows(LEE, "Lee", &mut lee_shown)
        .ok_or_else(|| anyhow::anyhow!("Lee was not asked for consent"))?;
    chapter
        .phone
        .user(LEE)
        .tap_reply_button(&question, &format!("ug|no|{lee_photo}|1"), "No");
    chapter.run_chain().await?;
    chapter.phone_shows(LEE, "Lee", &mut lee_shown);
    println!(
        "The DAM ends with Sam's photo only; staged in S3: {}",
        chapter.staged().await?
    );
    chapter.dam_holds();
    Ok(())
}

//! Demo chapter: flow 5 (governed sharing) on the live stack. A rep asks on WhatsApp to share
//! four assets that each break one rule and is told which; then an approved one reaches the
//! client's phone, the usage entry lands on the asset, the operator API refuses a call without a
//! token and shares with one, and `connector audit export` prints the audit with its delivery.

use super::Live;
use connector::audit_cmd::{self, AuditCommand};
use connector::target::{Target, TargetOptions};
use orange_logic_sim::Simulator as DamSim;
use shared::adapters::directory::DynamoContactDirectory;
use shared::config::Env;
use shared::domain::contact::{Contact, OptIn, Role, WhatsAppAddress};
use shared::ports::ContactDirectory;

const RITA: &str = "447700900701";
const CHRIS: &str = "447700900702";

pub async fn play(live: &Live, dam: &DamSim) -> anyhow::Result<()> {
    println!("\n== Flow 5: governed sharing ==");
    let directory = DynamoContactDirectory::new(
        aws_sdk_dynamodb::Client::new(&live.stack.aws),
        live.stack.resources.tables["ContactsTable"].clone(),
    );
    for (digits, name, rep) in [(RITA, "Rita Sales", true), (CHRIS, "Chris Client", false)] {
        let mut contact = Contact::new(live.pseudonym(digits));
        contact.address = Some(WhatsAppAddress::parse(digits)?);
        contact.name = Some(name.into());
        if rep {
            contact.roles = [Role::Rep].into_iter().collect();
        }
        contact.opted_in = Some(OptIn {
            at_ms: jiff::Timestamp::now().as_millisecond(),
            source: "import:demo.csv".into(),
        });
        directory.put(&contact).await?;
    }
    println!("1. The directory lists Rita (rep) and Chris (a client who opted in).");

    let asset = |title: &str, changes: &[(&str, &str)]| {
        let mut fields = vec![
            ("CoreField.Title", title),
            ("CoreField.Status", "Approved"),
            ("CoreField.ExpirationDate", "2099-12-31"),
            ("Custom.BrandCompliant", "yes"),
            ("Custom.ExternalUse", "yes"),
        ];
        for (field, value) in changes {
            fields.retain(|(f, _)| f != field);
            fields.push((field, value));
        }
        dam.add_asset(&fields)
    };
    let current = asset("Price list 2026", &[]);
    let refused = [
        asset(
            "Winter flyer",
            &[("CoreField.ExpirationDate", "2020-01-31")],
        ),
        asset("Draft poster", &[("CoreField.Status", "Draft")]),
        asset("Old logo banner", &[("Custom.BrandCompliant", "no")]),
        asset("Price list 2025", &[("Custom.SupersededBy", &current)]),
    ];
    println!(
        "2. Rita asks to share four assets: expired, unapproved, not brand-compliant, an old version."
    );
    let rita = live.whatsapp.user(RITA);
    for id in &refused {
        rita.send_text(&format!("share {id} to +{CHRIS}"));
    }
    live.settle(|| {
        live.lines(RITA)
            .iter()
            .filter(|l| l.direction == "out")
            .count()
            >= 4
    })
    .await;
    live.print_phone(RITA);
    println!("   Chris's phone: {} message(s).", live.lines(CHRIS).len());

    println!("3. Rita shares the current price list: Chris's phone, then the asset's comment log.");
    let before = live.lines(RITA).len();
    rita.send_text(&format!("share {current} to +{CHRIS}"));
    live.settle(|| {
        live.lines(CHRIS)
            .iter()
            .any(|l| l.direction == "out" && l.status == "read")
            && live.lines(RITA).len() > before + 1
    })
    .await;
    live.print_phone(CHRIS);
    let comments = dam
        .asset(&current)
        .and_then(|a| a.fields.get("Custom.WhatsAppLog").cloned())
        .unwrap_or_default();
    for line in comments.lines() {
        println!("   DAM | {line}");
    }

    println!("4. The operator API, POST /share: without a token, then with Rita's.");
    let http = reqwest::Client::new();
    let body = serde_json::json!({"asset": current, "to": format!("+{CHRIS}"), "idempotency_key": "demo-1"});
    let anonymous = http
        .post(live.stack.url("/share"))
        .json(&body)
        .send()
        .await?;
    println!("   no token      → {}", anonymous.status().as_u16());
    let with_token = http
        .post(live.stack.url("/share"))
        .bearer_auth(live.stack.operator_token(&format!("+{RITA}")))
        .json(&body)
        .send()
        .await?;
    println!(
        "   Rita's token  → {} {}",
        with_token.status().as_u16(),
        with_token.text().await.unwrap_or_default()
    );
    let today = jiff::Timestamp::now().strftime("%Y-%m-%d").to_string();
    println!("5. `connector audit export --from {today} --to {today}`, once the statuses are in:");
    let target = Target::new(
        &live.stack.aws,
        &TargetOptions {
            stack: Some(live.stack.resources.stack_name.clone()),
        },
        &Env::new(|_: &str| None),
    )?;
    let words: Vec<String> = ["export", "--from", &today, "--to", &today]
        .iter()
        .map(|w| (*w).to_owned())
        .collect();
    let command: AuditCommand = audit_cmd::parse(&words)?;
    let export = || async {
        audit_cmd::run(&target, &command)
            .await
            .ok()
            .map(|(csv, _)| csv)
    };
    // Every share read (the last column filled), else what there is after the wait.
    let csv = match live
        .wait_for(|| async {
            export().await.filter(|csv| {
                csv.lines().count() >= 3 && csv.lines().skip(1).all(|l| !l.ends_with(','))
            })
        })
        .await
    {
        Some(csv) => csv,
        None => export().await.unwrap_or_default(),
    };
    for line in csv.lines() {
        println!("   {line}");
    }

    println!("6. The operator page (GET /operator), and the summary it shows, read with a token:");
    let page = http.get(live.stack.url("/operator")).send().await?;
    println!(
        "   GET /operator without a token → {} (the page itself holds no data)",
        page.status().as_u16()
    );
    let refused = http
        .get(live.stack.url("/operator/api/summary"))
        .send()
        .await?;
    println!(
        "   GET /operator/api/summary without a token → {}",
        refused.status().as_u16()
    );
    let summary: serde_json::Value = http
        .get(live.stack.url("/operator/api/summary"))
        .bearer_auth(live.stack.operator_token(&format!("+{RITA}")))
        .send()
        .await?
        .json()
        .await?;
    let n = |row: &serde_json::Value, k: &str| row[k].as_u64().unwrap_or(0);
    println!(
        "   {} to {}: deliveries per flow, each message at its latest state",
        summary["from"].as_str().unwrap_or(""),
        summary["to"].as_str().unwrap_or("")
    );
    for row in summary["deliveries"].as_array().into_iter().flatten() {
        println!(
            "     {:<14} total {}  delivered {}  read {}  failed {}",
            row["flow"].as_str().unwrap_or(""),
            n(row, "total"),
            n(row, "delivered"),
            n(row, "read"),
            n(row, "failed"),
        );
    }
    let shares = summary["sharing"].as_array().map_or(0, Vec::len);
    let held: u64 = summary["dead_letters"]
        .as_array()
        .into_iter()
        .flatten()
        .map(|d| n(d, "depth"))
        .sum();
    println!("   sharing audit: {shares} record(s); dead-lettered records: {held}");
    Ok(())
}

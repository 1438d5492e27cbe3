//! The operator page in a real browser: headless Chromium (Debian's `chromium`; `local/test.sh`
//! and `.ci/run` install it) opens the page the local front serves from the template's routes,
//! the page's script reads the summary through the operator API's JWT authorizer, and the test
//! reads what a person would see in the rendered page. A screenshot is kept as the test's
//! artefact: `target/test-artefacts/operator-page.png`.
//!
//! The records shown are written by the adapters the functions write them with (the sender's
//! sent-messages store, the sharing audit, a dead-lettered record on a DLQ).

use e2e::TestEnv;
use shared::adapters::sending::DynamoSentMessages;
use shared::adapters::sharing_audit::DynamoSharingAudit;
use shared::domain::outbound::{MessageFlow, SendKey};
use shared::domain::sending::DeliveryState;
use shared::domain::sharing::AuditRecord;
use shared::ports::{BusinessNumberId, SentMessage, SentMessageStore, SharingAudit, StatusUpdate};
use shared::pseudonym::UserPseudonym;
use std::path::PathBuf;
use std::time::Duration;
use tokio::process::Command;

fn chromium() -> PathBuf {
    let path = std::env::var_os("CHROMIUM")
        .map_or_else(|| PathBuf::from("/usr/bin/chromium"), PathBuf::from);
    assert!(
        path.exists(),
        "{} is missing: `apt-get install -y chromium` (local/test.sh installs it)",
        path.display()
    );
    path
}

/// The page at `url` as the browser rendered it, after its script ran; a screenshot when asked.
/// The browser runs beside the test's runtime (it serves the page): never a blocking wait here.
async fn rendered(url: &str, screenshot: Option<&str>) -> String {
    let profile = tempdir("operator-page-profile");
    let mut command = Command::new(chromium());
    command.args([
        "--headless=new",
        "--no-sandbox",
        "--disable-gpu",
        "--disable-dev-shm-usage",
        "--no-first-run",
        "--virtual-time-budget=15000",
        "--window-size=1280,1000",
    ]);
    command.arg(format!("--user-data-dir={}", profile.display()));
    let output = match screenshot {
        Some(name) => {
            let dir = local::moto::workspace_root().join("target/test-artefacts");
            std::fs::create_dir_all(&dir).expect("artefact folder");
            let file = dir.join(name);
            command.arg(format!("--screenshot={}", file.display()));
            let output = run(command.arg(url)).await;
            assert!(
                file.exists(),
                "no screenshot: {}",
                String::from_utf8_lossy(&output.stderr)
            );
            output
        }
        None => run(command.arg("--dump-dom").arg(url)).await,
    };
    let _ = std::fs::remove_dir_all(&profile);
    assert!(
        output.status.success(),
        "chromium failed: {}",
        String::from_utf8_lossy(&output.stderr)
    );
    String::from_utf8_lossy(&output.stdout).into_owned()
}

/// Chromium's output; a browser that has not finished in a minute is a failure, not a hang.
async fn run(command: &mut Command) -> std::process::Output {
    command.kill_on_drop(true);
    tokio::time::timeout(Duration::from_secs(60), command.output())
        .await
        .expect("chromium finished within a minute")
        .expect("chromium runs")
}

fn tempdir(name: &str) -> PathBuf {
    let dir = std::env::temp_dir().join(format!(
        "{name}-{}-{}",
        std::process::id(),
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| d.as_nanos())
            .unwrap_or_default()
    ));
    std::fs::create_dir_all(&dir).expect("temp dir");
    dir
}

/// The visible text of the rendered page: tags dropped, whitespace folded, hidden elements out.
fn visible_text(dom: &str) -> String {
    // Drop every element carrying the `hidden` attribute (the page hides, never removes).
    let mut shown = String::new();
    let mut rest = dom;
    while let Some(start) = rest.find('<') {
        shown.push_str(&rest[..start]);
        let tail = &rest[start..];
        let end = tail.find('>').map_or(tail.len(), |e| e + 1);
        let tag = &tail[..end];
        let name: String = tag
            .trim_start_matches('<')
            .chars()
            .take_while(|c| c.is_ascii_alphanumeric())
            .collect();
        let is_hidden = !name.is_empty()
            && (tag.contains(" hidden=") || tag.contains(" hidden>") || tag.contains(" hidden "));
        if is_hidden {
            // Skip to the matching close tag (no nesting of the same name inside hidden parts
            // other than what the count below handles).
            let open = format!("<{name}");
            let close = format!("</{name}>");
            let mut depth = 0usize;
            let mut at = 0usize;
            let body = tail;
            loop {
                let next_open = body[at + 1..].find(&open).map(|i| i + at + 1);
                let next_close = body[at..].find(&close).map(|i| i + at);
                match (next_open, next_close) {
                    (Some(o), Some(c)) if o < c => {
                        depth += 1;
                        at = o;
                    }
                    (_, Some(c)) => {
                        if depth == 0 {
                            rest = &body[c + close.len()..];
                            break;
                        }
                        depth -= 1;
                        at = c + 1;
                    }
                    _ => {
                        rest = "";
                        break;
                    }
                }
            }
            continue;
        }
        if name == "script" || name == "style" || name == "head" {
            let close = format!("</{name}>");
            rest = tail.find(&close).map_or("", |c| &tail[c + close.len()..]);
            continue;
        }
        shown.push(' ');
        rest = &tail[end..];
    }
    shown.push_str(rest);
    let text = shown
        .replace("&amp;", "&")
        .replace("&lt;", "<")
        .replace("&gt;", ">");
    text.split_whitespace().collect::<Vec<_>>().join(" ")
}

fn now_ms() -> i64 {
    jiff::Timestamp::now().as_millisecond()
}

async fn sent(env: &TestEnv, id: &str, flow: MessageFlow, states: &[DeliveryState]) {
    let store = DynamoSentMessages::new(
        aws_sdk_dynamodb::Client::new(&env.stack.aws),
        env.stack.resources.tables["SentMessagesTable"].clone(),
    );
    let at_ms = now_ms();
    store
        .record(&SentMessage {
            message_id: id.to_owned(),
            key: SendKey {
                flow,
                subject: format!("asset-{id}"),
                version: "1".into(),
                recipient: serde_json::from_value::<UserPseudonym>(serde_json::json!(
                    "u_0123456789abcdef01234567"
                ))
                .expect("pseudonym"),
            },
            number: BusinessNumberId::parse("109876543210987").expect("number"),
            actor: None,
            what: "template review_request".into(),
            at_ms,
        })
        .await
        .expect("recorded");
    for (i, state) in states.iter().enumerate() {
        store
            .apply_status(
                id,
                &StatusUpdate {
                    state: *state,
                    at_ms: at_ms + 1_000 * (i as i64 + 1),
                    error: (*state == DeliveryState::Failed)
                        .then(|| (131_026, "Message undeliverable".to_owned())),
                    pricing: None,
                },
            )
            .await
            .expect("status");
    }
}

#[tokio::test]
async fn the_operator_page_shows_deliveries_sharing_dead_letters_and_scans_and_refuses_without_a_token()
 {
    let env = TestEnv::start().await;
    let stack = &env.stack;
    let token = stack.operator_token("+447700900401");
    let page = |query: &str| format!("{}{query}#access_token={token}", stack.url("/operator"));

    // A fresh stack: the empty state, in words.
    let empty = visible_text(&rendered(&page(""), None).await);
    assert!(
        empty.contains("No messages were sent in this range."),
        "{empty}"
    );
    assert!(
        empty.contains("No asset was shared in this range."),
        "{empty}"
    );
    assert!(
        empty.contains("Rights-expiry scan none recorded yet"),
        "{empty}"
    );
    assert!(
        empty.contains("DAM poll watermark no poll has finished yet"),
        "{empty}"
    );
    assert!(!empty.contains("need attention"), "{empty}");

    // Without a token the API refuses (401, before the function) and the page says so.
    let refused = reqwest::get(stack.url("/operator/api/summary"))
        .await
        .expect("request");
    assert_eq!(refused.status(), 401);
    let signed_out = visible_text(&rendered(&stack.url("/operator"), None).await);
    assert!(signed_out.contains("Sign in required"), "{signed_out}");
    assert!(signed_out.contains("(401)"), "{signed_out}");
    assert!(
        !signed_out.contains("Delivery status per flow Flow"),
        "no data shown: {signed_out}"
    );

    // What the flows leave behind: three review requests, one share read, a dead letter.
    use DeliveryState::{Delivered, Failed, Read, Sent};
    sent(
        &env,
        "wamid.R1",
        MessageFlow::Review,
        &[Sent, Delivered, Read],
    )
    .await;
    sent(&env, "wamid.R2", MessageFlow::Review, &[Sent, Delivered]).await;
    sent(&env, "wamid.R3", MessageFlow::Review, &[Failed]).await;
    sent(
        &env,
        "wamid.S1",
        MessageFlow::Sharing,
        &[Sent, Delivered, Read],
    )
    .await;
    let audit = DynamoSharingAudit::new(
        aws_sdk_dynamodb::Client::new(&stack.aws),
        stack.resources.tables["SharingAuditTable"].clone(),
    );
    let asked = now_ms();
    let record = AuditRecord {
        send_key: "sh|A-PIER|3|recipient".into(),
        asset: "A-PIER".into(),
        version: "3".into(),
        rep: "Maria Sales".into(),
        rep_pseudonym: "a".repeat(64),
        recipient: "b7c1".repeat(16),
        requested_at_ms: asked,
        message_id: None,
        sent_at_ms: None,
        delivered_at_ms: None,
        read_at_ms: None,
    };
    assert!(audit.append(&record).await.expect("audit"));
    for (state, at) in [(Sent, 1), (Delivered, 2), (Read, 3)] {
        audit
            .mark(&record.send_key, "wamid.S1", state, asked + at * 1_000)
            .await
            .expect("mark");
    }
    stack
        .sqs()
        .send_message()
        .queue_url(stack.resources.queue_url("ReviewDLQ").expect("review DLQ"))
        .message_body(r#"{"poison":true}"#)
        .message_group_id("g")
        .message_deduplication_id("poison-1")
        .send()
        .await
        .expect("dead letter");

    let dom = rendered(&page(""), None).await;
    let shown = visible_text(&dom);
    assert!(
        shown.contains("Review 3 0 0 1 1 1"),
        "review: total 3, delivered 1, read 1, failed 1: {shown}"
    );
    assert!(shown.contains("Sharing 1 0 0 0 1 0"), "{shown}");
    assert!(
        shown.contains("A-PIER 3 Maria Sales b7c1b7c1b7c1…"),
        "{shown}"
    );
    assert!(
        shown.contains("Review 1"),
        "the Review DLQ holds one: {shown}"
    );
    assert!(
        shown.contains("1 dead-lettered record(s) need attention."),
        "{shown}"
    );
    assert!(
        !shown.contains("447700900401"),
        "no phone number on the page"
    );
    assert!(dom.contains(r#"<tr class="alert">"#), "failures stand out");

    // The flow filter: review only hides the sharing audit and the other flows.
    let review = visible_text(&rendered(&page("?flow=review"), None).await);
    assert!(review.contains("Review 3 0 0 1 1 1"), "{review}");
    assert!(!review.contains("Sharing 1"), "{review}");
    assert!(!review.contains("Sharing audit"), "{review}");
    // A date range with nothing in it, and a reversed one explained.
    let old = visible_text(&rendered(&page("?from=2020-01-01&to=2020-01-07"), None).await);
    assert!(
        old.contains("No messages were sent in this range."),
        "{old}"
    );
    assert!(old.contains("Showing 2020-01-01 to 2020-01-07"), "{old}");
    let reversed = visible_text(&rendered(&page("?from=2020-01-07&to=2020-01-01"), None).await);
    assert!(reversed.contains("is after `to`"), "{reversed}");

    rendered(&page(""), Some("operator-page.png")).await;
}

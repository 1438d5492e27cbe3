//! The fuzz targets: each calls the library functions the Lambda functions call, on the bytes a
//! sender controls, and asserts the properties that must hold for any input.

use crate::{Target, fnv, repo_root};
use base64::Engine as _;
use serde_json::Value;
use shared::adapters::orange_logic::answer::{self, Outcome};
use shared::adapters::orange_logic::error::OrangeLogicError;
use shared::domain::{campaign, dam, field_ingest, inbound, opt_out, review, routing};
use shared::pseudonym::Pseudonymizer;
use shared::secrets::Secret;
use shared::whatsapp::envelope::{self, MAX_ITEM_DEPTH};
use shared::whatsapp::signature::{self, AppSecretKeys, SignatureError};
use shared::whatsapp::webhook_types::InboundMessage;
use std::path::Path;

/// Every target, in the order `local/fuzz.sh` runs them.
pub fn all() -> Vec<Box<dyn Target>> {
    vec![
        Box::new(WebhookSignature::new()),
        Box::new(WebhookSplit::new()),
        Box::new(DamWebhook),
        Box::new(OrangeLogicAnswer),
        Box::new(InboundCommands),
    ]
}

/// The target called `name`.
pub fn by_name(name: &str) -> Option<Box<dyn Target>> {
    all().into_iter().find(|t| t.name() == name)
}

/// Files under `dir` (relative to the repository) ending in `.json`, sorted.
fn json_files(dir: &str) -> Vec<Vec<u8>> {
    let mut paths: Vec<_> = std::fs::read_dir(repo_root().join(dir))
        .into_iter()
        .flatten()
        .flatten()
        .map(|e| e.path())
        .filter(|p| p.extension().is_some_and(|e| e == "json"))
        .collect();
    paths.sort();
    paths.iter().filter_map(|p| std::fs::read(p).ok()).collect()
}

/// The `body` of each API Gateway event under `dir` (decoded when flagged base64).
fn event_bodies(dir: &str) -> Vec<Vec<u8>> {
    json_files(dir)
        .iter()
        .filter_map(|file| serde_json::from_slice::<Value>(file).ok())
        .filter_map(|event| {
            let body = event.get("body")?.as_str()?;
            if event.get("isBase64Encoded").and_then(Value::as_bool) == Some(true) {
                base64::engine::general_purpose::STANDARD.decode(body).ok()
            } else {
                Some(body.as_bytes().to_vec())
            }
        })
        .collect()
}

/// The `body` of each SQS record of the events under `dir`.
fn record_bodies(dir: &str) -> Vec<Vec<u8>> {
    json_files(dir)
        .iter()
        .filter_map(|file| serde_json::from_slice::<Value>(file).ok())
        .flat_map(|event| {
            event
                .get("Records")
                .and_then(Value::as_array)
                .cloned()
                .unwrap_or_default()
        })
        .filter_map(|record| Some(record.get("body")?.as_str()?.as_bytes().to_vec()))
        .collect()
}

fn signature_fixture_secret() -> String {
    let path = repo_root().join("fixtures/whatsapp/signature.json");
    std::fs::read(Path::new(&path))
        .ok()
        .and_then(|b| serde_json::from_slice::<Value>(&b).ok())
        .and_then(|v| v.get("app_secret")?.as_str().map(str::to_owned))
        .unwrap_or_else(|| "fuzz-app-secret".to_owned())
}

/// `X-Hub-Signature-256` over the raw bytes, and the API Gateway body decoding before it.
#[derive(Debug)]
pub struct WebhookSignature {
    keys: AppSecretKeys,
    rotating: AppSecretKeys,
}

impl WebhookSignature {
    /// Keys the fixture's app secret, alone and behind a newer secret (a rotation).
    pub fn new() -> Self {
        let secret = Secret::new(signature_fixture_secret());
        Self {
            keys: AppSecretKeys::new(std::slice::from_ref(&secret)),
            rotating: AppSecretKeys::new(&[Secret::new("the-next-app-secret"), secret]),
        }
    }
}

impl Default for WebhookSignature {
    fn default() -> Self {
        Self::new()
    }
}

impl Target for WebhookSignature {
    fn name(&self) -> &'static str {
        "webhook_signature"
    }

    fn seeds(&self) -> Vec<Vec<u8>> {
        let mut seeds = event_bodies("events/whatsapp-webhook");
        seeds.push(b"sha256=".to_vec());
        seeds.push(self.keys.sign(b"{}").unwrap_or_default().into_bytes());
        seeds
    }

    fn dictionary(&self) -> &'static [&'static str] {
        &[
            "sha256=", "sha1=", "SHA256=", " ", "\t", "=", "ff", "0000", "\u{0}",
        ]
    }

    fn check(&mut self, input: &[u8]) -> u64 {
        let body = input;
        let header = self.keys.sign(body).expect("one key");
        assert_eq!(
            signature::verify(&self.keys, Some(header.as_bytes()), false, body),
            Ok(()),
            "a signature over the exact bytes verifies"
        );
        assert_eq!(
            signature::verify(&self.rotating, Some(header.as_bytes()), false, body),
            Ok(()),
            "the previous secret still verifies during a rotation"
        );
        let padded_upper = format!(" sha256={} ", header["sha256=".len()..].to_uppercase());
        assert_eq!(
            signature::verify(&self.keys, Some(padded_upper.as_bytes()), false, body),
            Ok(()),
            "upper-case hex with surrounding spaces verifies"
        );
        if !body.is_empty() {
            let mut flipped = body.to_vec();
            let at = (fnv(&[body]) as usize) % flipped.len();
            flipped[at] ^= 1 << (body.len() % 8);
            assert_eq!(
                signature::verify(&self.keys, Some(header.as_bytes()), false, &flipped),
                Err(SignatureError::Mismatch),
                "one flipped bit of the body is a mismatch"
            );
        }
        // The input as a header over a fixed body: whatever it is, it verifies only when it is
        // that body's signature.
        let fixed = b"{\"object\":\"whatsapp_business_account\",\"entry\":[]}";
        let as_header = signature::verify(&self.keys, Some(input), false, fixed);
        if as_header.is_ok() {
            let expected = self.keys.sign(fixed).expect("one key");
            assert!(
                input.trim_ascii().eq_ignore_ascii_case(expected.as_bytes()),
                "a header that is not the body's signature verified"
            );
        }
        assert_eq!(
            signature::verify(&self.keys, None, true, body),
            Err(SignatureError::LegacyOnly)
        );
        // API Gateway's body: the text as sent, or base64 to decode before verifying.
        let text = String::from_utf8_lossy(input).into_owned();
        let mut request = aws_lambda_events::apigw::ApiGatewayV2httpRequest::default();
        request.body = Some(text.clone());
        let plain = shared::lambda::http::raw_body(&request).map(|b| b.into_owned());
        assert_eq!(plain.ok().as_deref(), Some(text.as_bytes()));
        request.is_base64_encoded = true;
        let decoded = shared::lambda::http::raw_body(&request).map(|b| b.into_owned());
        if let Ok(decoded) = &decoded {
            assert_eq!(
                base64::engine::general_purpose::STANDARD.encode(decoded),
                text,
                "a body that decodes is canonical base64 of what it decodes to"
            );
        }
        let class = match as_header {
            Ok(()) => 0_u8,
            Err(SignatureError::Missing) => 1,
            Err(SignatureError::LegacyOnly) => 2,
            Err(SignatureError::Malformed(why)) => 3 + (why.len() % 50) as u8,
            Err(SignatureError::Mismatch) => 60,
        };
        fnv(&[&[class, u8::from(decoded.is_ok())]])
    }
}

/// The webhook's split of a notification into queue items.
#[derive(Debug)]
pub struct WebhookSplit {
    pseudonyms: Pseudonymizer,
}

impl WebhookSplit {
    /// A pseudonymiser under a fixed key.
    pub fn new() -> Self {
        Self {
            pseudonyms: Pseudonymizer::new(&Secret::new("fuzz-pseudonym-key")),
        }
    }
}

impl Default for WebhookSplit {
    fn default() -> Self {
        Self::new()
    }
}

/// Levels of `[` / `{` in a value, counted as `envelope::nesting_exceeds` counts them.
fn depth(value: &Value) -> usize {
    match value {
        Value::Array(items) => 1 + items.iter().map(depth).max().unwrap_or(0),
        Value::Object(map) => 1 + map.values().map(depth).max().unwrap_or(0),
        _ => 0,
    }
}

/// What an independent reading of the notification says the split must queue: messages,
/// statuses and errors that are objects within the depth limit, under `messages` changes.
fn expected_items(notification: &Value) -> Option<[usize; 3]> {
    if notification.get("object")?.as_str()? != envelope::WHATSAPP_OBJECT {
        return Some([0; 3]);
    }
    let mut counts = [0; 3];
    let entries = notification
        .get("entry")
        .and_then(Value::as_array)
        .cloned()
        .unwrap_or_default();
    for entry in &entries {
        let changes = entry
            .get("changes")
            .and_then(Value::as_array)
            .cloned()
            .unwrap_or_default();
        for change in &changes {
            if change.get("field").and_then(Value::as_str) != Some("messages") {
                continue;
            }
            let Some(value) = change.get("value").filter(|v| v.is_object()) else {
                continue;
            };
            for (slot, part) in ["messages", "statuses", "errors"].iter().enumerate() {
                let queued = |item: &Value| item.is_object() && depth(item) <= MAX_ITEM_DEPTH;
                counts[slot] += match value.get(*part) {
                    Some(Value::Array(items)) => items.iter().filter(|i| queued(i)).count(),
                    Some(item) => usize::from(queued(item)),
                    None => 0,
                };
            }
        }
    }
    Some(counts)
}

impl Target for WebhookSplit {
    fn name(&self) -> &'static str {
        "webhook_split"
    }

    fn seeds(&self) -> Vec<Vec<u8>> {
        let mut seeds = event_bodies("events/whatsapp-webhook");
        seeds.extend(json_files("fixtures/whatsapp/webhooks"));
        seeds
    }

    fn dictionary(&self) -> &'static [&'static str] {
        &[
            "\"object\"",
            "\"whatsapp_business_account\"",
            "\"entry\"",
            "\"changes\"",
            "\"field\"",
            "\"messages\"",
            "\"statuses\"",
            "\"errors\"",
            "\"contacts\"",
            "\"metadata\"",
            "\"phone_number_id\"",
            "\"wa_id\"",
            "\"user_id\"",
            "\"from\"",
            "\"from_user_id\"",
            "\"id\"",
            "\"status\"",
            "\"recipient_id\"",
            "\"value\"",
            "null",
            "[]",
            "{}",
            "\\u0000",
            "\\ud800",
            "\\\"",
        ]
    }

    fn check(&mut self, input: &[u8]) -> u64 {
        let split = envelope::split(input, &self.pseudonyms, 1_795_703_400_000);
        let parsed: Result<Value, _> = serde_json::from_slice(input);
        let split = match split {
            Err(error) => {
                // The error names where parsing stopped, never the body's text.
                let text = error.to_string();
                assert!(text.len() < 160, "an envelope error is short: {text}");
                return fnv(&[b"err", &[u8::from(parsed.is_ok())]]);
            }
            Ok(split) => split,
        };
        let mut kinds = [0_usize; 3];
        for item in &split.items {
            kinds[match item.kind {
                inbound::InboundKind::Message => 0,
                inbound::InboundKind::Status => 1,
                inbound::InboundKind::Error => 2,
            }] += 1;
            let raw: Value = serde_json::from_str(item.item.get()).expect("an item is JSON");
            assert!(raw.is_object(), "an item is an object");
            assert!(
                depth(&raw) <= MAX_ITEM_DEPTH,
                "an item within the depth limit"
            );
            // What the consumer reads back from the queue is what the edge queued.
            let queued = serde_json::to_string(item).expect("an item serialises");
            let back: inbound::InboundItem =
                serde_json::from_str(&queued).expect("a consumer parses the queued item");
            assert_eq!(back.key, item.key);
            assert_eq!(back.item.get(), item.item.get());
            assert!(!item.key.is_empty(), "every item has a key");
            assert!(!item.group_id().is_empty());
            assert!(!item.deduplication_id().is_empty());
        }
        for refusal in &split.refused {
            assert!(
                refusal.path.starts_with("entry"),
                "a refusal is named by its path"
            );
        }
        // A split never loses a valid item (checked when the body reads as a plain JSON value;
        // serde_json's `Value` keeps the last of duplicate keys, so those bodies are left out).
        if let Ok(notification) = &parsed
            && !has_duplicate_keys(input)
            && let Some(expected) = expected_items(notification)
        {
            assert_eq!(kinds, expected, "the split queued every valid item, once");
        }
        fnv(&[
            &[
                kinds[0].min(4) as u8,
                kinds[1].min(4) as u8,
                kinds[2].min(4) as u8,
                split.refused.len().min(4) as u8,
                split.ignored.len().min(4) as u8,
            ],
            split
                .refused
                .first()
                .map_or(&b""[..], |r| r.reason.as_str().as_bytes()),
        ])
    }
}

/// Whether any object of the JSON text repeats a key (then readings may legitimately differ).
fn has_duplicate_keys(input: &[u8]) -> bool {
    struct Check(bool);
    impl<'de> serde::de::Visitor<'de> for Check {
        type Value = bool;
        fn expecting(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
            f.write_str("JSON")
        }
        fn visit_map<A: serde::de::MapAccess<'de>>(self, mut map: A) -> Result<bool, A::Error> {
            let mut keys = std::collections::HashSet::new();
            let mut dup = false;
            while let Some(key) = map.next_key::<String>()? {
                dup |= !keys.insert(key);
                dup |= map.next_value::<Dup>()?.0;
            }
            Ok(dup)
        }
        fn visit_seq<A: serde::de::SeqAccess<'de>>(self, mut seq: A) -> Result<bool, A::Error> {
            let mut dup = false;
            while let Some(Dup(d)) = seq.next_element::<Dup>()? {
                dup |= d;
            }
            Ok(dup)
        }
        fn visit_bool<E>(self, _: bool) -> Result<bool, E> {
            Ok(self.0)
        }
        fn visit_i64<E>(self, _: i64) -> Result<bool, E> {
            Ok(false)
        }
        fn visit_u64<E>(self, _: u64) -> Result<bool, E> {
            Ok(false)
        }
        fn visit_f64<E>(self, _: f64) -> Result<bool, E> {
            Ok(false)
        }
        fn visit_str<E>(self, _: &str) -> Result<bool, E> {
            Ok(false)
        }
        fn visit_unit<E>(self) -> Result<bool, E> {
            Ok(false)
        }
    }
    struct Dup(bool);
    impl<'de> serde::Deserialize<'de> for Dup {
        fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
            d.deserialize_any(Check(false)).map(Dup)
        }
    }
    serde_json::from_slice::<Dup>(input).is_ok_and(|d| d.0)
}

/// The DAM webhook's body: events split one by one, and the secret header's comparison.
#[derive(Debug)]
pub struct DamWebhook;

impl Target for DamWebhook {
    fn name(&self) -> &'static str {
        "dam_webhook"
    }

    fn seeds(&self) -> Vec<Vec<u8>> {
        let mut seeds = event_bodies("events/dam-webhook");
        seeds.push(
            br#"{"eventId":"e1","topic":"asset.deleted","recordId":"2RLQZBQ84U","occurredAt":1795703400}"#
                .to_vec(),
        );
        seeds.push(
            br#"{"events":[{"eventId":"e2","topic":"Asset.Edit","recordId":"2QDTWAOP1_5","occurredAt":1795703400123.5}]}"#
                .to_vec(),
        );
        seeds
    }

    fn dictionary(&self) -> &'static [&'static str] {
        &[
            "\"events\"",
            "\"eventId\"",
            "\"topic\"",
            "\"recordId\"",
            "\"occurredAt\"",
            "\"asset.created\"",
            "\"asset.edited\"",
            "\"asset.deleted\"",
            "\"ASSET.UPDATED\"",
            "253402300799",
            "253402300800000",
            "1e11",
            "99999999999",
            "-1",
            "1.7976931348623157e308",
            "null",
        ]
    }

    fn check(&mut self, input: &[u8]) -> u64 {
        // The secret header: equal bytes and only equal bytes authenticate.
        let half = input.len() / 2;
        let (a, b) = input.split_at(half);
        assert!(shared::crypto::secrets_equal(a, a));
        assert_eq!(shared::crypto::secrets_equal(a, b), a == b);

        let split = match dam::split_webhook(input) {
            Err(_) => return fnv(&[b"err"]),
            Ok(split) => split,
        };
        let value: Value = serde_json::from_slice(input).expect("a split body is JSON");
        let sent = match value.get("events") {
            Some(Value::Array(events)) => events.len(),
            _ => 1,
        };
        assert_eq!(
            split.events.len() + split.ignored.len() + split.rejected.len(),
            sent,
            "every event is enqueued, ignored or rejected by its index"
        );
        let mut last = None;
        for rejected in &split.rejected {
            assert!(rejected.index < sent);
            assert!(
                last < Some(rejected.index),
                "rejections in order, once each"
            );
            last = Some(rejected.index);
        }
        for event in &split.events {
            assert!(!event.event_id.is_empty());
            assert!(dam::AssetId::parse(event.asset.as_str()).is_ok());
            if let Some(at) = &event.occurred_at {
                assert!(!at.is_empty());
            }
            let queued = serde_json::to_string(event).expect("an event serialises");
            let back: dam::DamEvent = serde_json::from_str(&queued).expect("an event reads back");
            assert_eq!(&back, event, "a queued event reads back as it was");
        }
        fnv(&[&[
            split.events.len().min(4) as u8,
            split.ignored.len().min(4) as u8,
            split.rejected.len().min(4) as u8,
            split
                .rejected
                .first()
                .map_or(0, |r| r.problem.as_str().len() as u8),
        ]])
    }
}

/// Orange Logic's answers: status, content type, body (JSON, XML, an HTML login page), and the
/// readers of searches, writes, uploads and deleted-object lists.
#[derive(Debug)]
pub struct OrangeLogicAnswer;

/// A code that may reach a log: a short machine token or the fixed stand-in.
fn loggable(code: &str) -> bool {
    !code.is_empty()
        && code.len() <= 64
        && code
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'_' | b'-' | b'.'))
}

fn assert_loggable(error: &OrangeLogicError) {
    match error {
        OrangeLogicError::Failed { code } | OrangeLogicError::WriteFailed { code, .. } => {
            assert!(loggable(code), "a DAM code reaches the log only as a token");
        }
        OrangeLogicError::Xml { code: Some(code) } => {
            assert!(
                loggable(code),
                "an XML code reaches the log only as a token"
            );
        }
        _ => {}
    }
}

impl Target for OrangeLogicAnswer {
    fn name(&self) -> &'static str {
        "orange_logic_answer"
    }

    fn seeds(&self) -> Vec<Vec<u8>> {
        [
            &br#"{"APIResponse":{"Code":"SUCCESS","Items":[{"RecordID":"2RLQZBQ84U","CoreField.Identifier":"A-1"}]}}"#[..],
            br#"{"APIResponse":{"Code":"INVALID_TOKEN"}}"#,
            br#"{"ErrorCode":"OL_ERR_001_NOTFOUND","ErrorMessage":"no"}"#,
            br#"{"Response":{"Code":"RECORD_NOT_FOUND"}}"#,
            br#"{"Response":{"RecordsAffected":[{"Code":"SUCCESS"},{"Result":{"Code":"FAILED","ErrorList":["x"]}}]}}"#,
            br#"{"RecordsAffected":"3"}"#,
            br#"{"RecordsAffected":0,"RequestInterpretation":{"IgnoredParameters":["Foo",{"Name":"Bar"}]}}"#,
            br#"{"Response":{"RecordID":"2RLQZBQ84U"},"ErrorList":[]}"#,
            br#"{"APIResponse":{"SystemIdentifier":"ABC_1","RecordID":"2RL"}}"#,
            br#"{"deletedObjects":[{"recordID":"2RL"},"2QD",5]}"#,
            br#"[{"DO_RecordID":"X"}]"#,
            b"<?xml version=\"1.0\"?><Response><Code>INVALID_SESSION</Code></Response>",
            b"\xEF\xBB\xBF<!DOCTYPE html><html><body>Login</body></html>",
            b"<!-- login --><HTML>",
        ]
        .iter()
        .map(|s| s.to_vec())
        .collect()
    }

    fn dictionary(&self) -> &'static [&'static str] {
        &[
            "\"APIResponse\"",
            "\"Code\"",
            "\"SUCCESS\"",
            "\"ErrorCode\"",
            "\"Response\"",
            "\"ErrorList\"",
            "\"ErrorDetails\"",
            "\"RecordsAffected\"",
            "\"RecordID\"",
            "\"Result\"",
            "\"RequestInterpretation\"",
            "\"IgnoredParameters\"",
            "\"SystemIdentifier\"",
            "\"deletedObjects\"",
            "\"RECORD_NOT_FOUND\"",
            "<Code>",
            "<ErrorCode>",
            "</Code>",
            "<html",
            "<!--",
            "\u{feff}",
        ]
    }

    fn check(&mut self, input: &[u8]) -> u64 {
        // The first two bytes choose the status and content type; the rest is the body.
        let (status, content_type, body) = match input {
            [s, c, body @ ..] => {
                let statuses = [
                    200_u16, 200, 200, 201, 204, 302, 401, 403, 404, 429, 500, 503, 418,
                ];
                let types = [
                    "application/json",
                    "text/xml",
                    "text/html; charset=utf-8",
                    "",
                ];
                (
                    statuses[usize::from(*s) % statuses.len()],
                    types[usize::from(*c) % types.len()],
                    body,
                )
            }
            _ => (200, "application/json", input),
        };
        let mut headers = http::HeaderMap::new();
        if !content_type.is_empty() {
            headers.insert(
                http::header::CONTENT_TYPE,
                http::HeaderValue::from_static(content_type),
            );
        }
        // Retry-After as the DAM may send it: seconds, a date, or anything.
        if let Ok(value) = http::HeaderValue::from_bytes(body.get(..40).unwrap_or(body)) {
            headers.insert(http::header::RETRY_AFTER, value);
        }
        let _ = answer::retry_after(&headers, std::time::SystemTime::UNIX_EPOCH);
        let status = http::StatusCode::from_u16(status).expect("a status");
        let outcome = answer::read(status, &headers, body);
        let class: u8 = match &outcome {
            Outcome::Renew(_) => 1,
            Outcome::Failed(error) => {
                assert_loggable(error);
                2 + (error.to_string().len() % 40) as u8
            }
            Outcome::Json(json) => {
                assert!(
                    answer::failure_inside(json).is_none(),
                    "a JSON answer handed on holds no failure"
                );
                let mut class = 50;
                match answer::records_affected(json) {
                    Ok(n) => assert!(n > 0, "a write that succeeded affected a record"),
                    Err(error) => {
                        assert_loggable(&error);
                        class += 1;
                    }
                }
                if let Ok(ids) = shared::adapters::orange_logic::deleted_record_ids(json) {
                    class += 2 * u8::from(ids.is_empty());
                }
                if let Ok(media) = shared::adapters::orange_logic::uploaded(json) {
                    class += 4 * u8::from(media.record_id.is_some());
                }
                if let Value::Object(record) = json {
                    // A record's fields as the change detector reads them.
                    let id = dam::AssetId::parse("2RLQZBQ84U").expect("an id");
                    let _ = shared::adapters::orange_logic::source::snapshot_of(id, record);
                    for name in record.keys().take(8) {
                        assert!(
                            shared::adapters::orange_logic::field_text(record, name).is_some()
                                || record[name].is_null(),
                            "a field that is there reads as text"
                        );
                    }
                }
                class
            }
        };
        fnv(&[&[class], &status.as_u16().to_le_bytes()])
    }
}

/// The inbound router: what a queued message is, and the commands its text may be
/// (STOP / START, `project <TAG>`, `status <campaign>`, a rejection reason).
#[derive(Debug)]
pub struct InboundCommands;

impl Target for InboundCommands {
    fn name(&self) -> &'static str {
        "inbound_commands"
    }

    fn seeds(&self) -> Vec<Vec<u8>> {
        let mut seeds: Vec<Vec<u8>> = Vec::new();
        for body in record_bodies("events/route-inbound") {
            if let Ok(item) = serde_json::from_slice::<Value>(&body)
                && let Some(raw) = item.get("item")
            {
                seeds.push(raw.to_string().into_bytes());
            }
            seeds.push(body);
        }
        for text in [
            "STOP",
            "Stop.",
            "stop all 🙏",
            "Darse de baja",
            "ARRÊT",
            "配信停止",
            "start",
            "project BRIDGE-12",
            "project #spring26",
            "Project none",
            "status SUMMER26",
            "STATUS summer26 now",
            "#SPRING26 storefront",
            "too blurry\nplease retake",
        ] {
            seeds.push(text.as_bytes().to_vec());
        }
        seeds
    }

    fn dictionary(&self) -> &'static [&'static str] {
        &[
            "stop",
            "STOP",
            "start",
            "project",
            "status",
            "none",
            "#",
            " ",
            "\u{a0}",
            "\u{3000}",
            "ß",
            "İ",
            "ﬀ",
            "é",
            "\"type\"",
            "\"text\"",
            "\"body\"",
            "\"button\"",
            "\"interactive\"",
            "\"button_reply\"",
            "\"list_reply\"",
            "\"payload\"",
            "\"context\"",
            "\"unsupported\"",
        ]
    }

    fn check(&mut self, input: &[u8]) -> u64 {
        let text = String::from_utf8_lossy(input);
        let mut signature = commands(&text);
        if let Ok(message) = serde_json::from_slice::<InboundMessage>(input) {
            let content = &message.content;
            if let Some(command) = routing::command_text(content) {
                signature ^= commands(command).rotate_left(7);
            }
            let _ = routing::tapped_id(content);
            let kind = routing::type_name(content);
            let everything = [
                shared::connector_config::Purpose::Notifications,
                shared::connector_config::Purpose::FieldIngest,
                shared::connector_config::Purpose::Sharing,
                shared::connector_config::Purpose::UgcIntake,
            ];
            let roles: [std::collections::BTreeSet<shared::domain::contact::Role>; 2] = [
                Default::default(),
                [
                    shared::domain::contact::Role::Field,
                    shared::domain::contact::Role::Rep,
                ]
                .into_iter()
                .collect(),
            ];
            for purposes in [None, Some(&everything[..1]), Some(&everything[..])] {
                for roles in &roles {
                    for answers_ours in [false, true] {
                        let route = routing::route(&routing::MessageFacts {
                            content,
                            purposes,
                            roles,
                            answers_ours,
                        });
                        match (purposes, answers_ours) {
                            (None, _) => assert!(matches!(route, routing::Route::Unrouted(_))),
                            (Some(_), true) => assert_eq!(
                                route,
                                routing::Route::To(routing::Destination::Replies),
                                "an answer to one of ours goes back to its flow"
                            ),
                            _ => {}
                        }
                    }
                }
            }
            signature ^= fnv(&[kind.as_bytes()]);
        }
        signature
    }
}

/// Every command parser on `text`, with their properties; a signature of the results.
fn commands(text: &str) -> u64 {
    let opt = opt_out::parse_command(text);
    assert_eq!(
        opt_out::parse_command(&text.to_ascii_lowercase()),
        opt,
        "opt commands ignore case"
    );
    if text.len() <= 62 {
        assert_eq!(
            opt_out::parse_command(&format!("*{text}!")),
            opt,
            "opt commands ignore punctuation around them"
        );
    }
    if opt.is_some() {
        assert!(text.len() <= 64, "a long message is never a command");
    }
    let status = campaign::status_command(text);
    if let Some(name) = &status {
        assert!(!name.is_empty() && name.len() <= 100 && !name.contains('|'));
        assert!(!name.chars().any(char::is_whitespace));
        assert_eq!(
            campaign::status_command(&format!(" Status {name} ")).as_ref(),
            Some(name),
            "a status command reads back"
        );
    }
    let project = field_ingest::project_command(text);
    if let Some(field_ingest::ProjectCommand::Set(tag)) = &project {
        assert_eq!(
            field_ingest::ProjectTag::parse(tag.as_str()).as_ref(),
            Some(tag)
        );
        assert_eq!(
            field_ingest::project_command(&format!("PROJECT #{tag}")),
            project,
            "a project command reads back"
        );
    }
    if let Some(tag) = field_ingest::caption_tag(text) {
        let t = tag.as_str();
        assert!((2..=40).contains(&t.len()));
        assert!(
            t.bytes()
                .all(|b| b.is_ascii_uppercase() || b.is_ascii_digit() || b == b'-' || b == b'_')
        );
    }
    let reason = review::clean_reason(text);
    if let Some(reason) = &reason {
        assert!(
            reason.chars().count() <= 500,
            "a reason is at most 500 characters"
        );
        assert!(!reason.contains('\n'), "a reason is one line");
        assert_eq!(reason.trim(), reason, "a reason is trimmed");
        assert!(!reason.is_empty());
    }
    fnv(&[&[
        opt.map_or(0, |o| o as u8 + 1),
        u8::from(status.is_some()),
        match project {
            None => 0,
            Some(field_ingest::ProjectCommand::Clear) => 1,
            Some(field_ingest::ProjectCommand::Set(_)) => 2,
        },
        u8::from(reason.is_some()),
    ]])
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::{Budget, run};

    #[test]
    fn every_target_has_seeds_from_the_repository() {
        for target in all() {
            assert!(
                target.seeds().len() >= 3,
                "{} has too few seeds",
                target.name()
            );
        }
    }

    #[test]
    fn each_target_survives_a_short_campaign_with_no_broken_property() {
        let dir = std::env::temp_dir().join(format!("fuzz-smoke-{}", std::process::id()));
        for mut target in all() {
            let budget = Budget {
                time: None,
                runs: Some(3_000),
            };
            let report = run(target.as_mut(), 0x5eed, budget, &dir);
            assert!(
                report.crash.is_none(),
                "{}: {:?}",
                report.target,
                report.crash
            );
            assert_eq!(report.executions, 3_000);
        }
    }
}

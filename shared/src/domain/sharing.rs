//! Flow 5, governed sharing: the rep's command, the rules an asset must pass before it may leave,
//! each refusal's exact text, the note naming the rep, the DAM usage line and the audit CSV.
//! Pure: no I/O.

use crate::domain::contact::WhatsAppAddress;
use serde::{Deserialize, Serialize};

/// The list pick's button action (`sh|pick|<asset>|<request wamid>`).
pub const PICK: &str = "pick";

/// The most assets offered in one list (one WhatsApp list section holds 10 rows).
pub const MAX_CHOICES: usize = 10;

/// What the rep named: one asset id, or words to search for.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum AssetRef {
    /// A single token that may be a RecordID (tried as one first, then as a word).
    IdOrWord(String),
    /// Several words.
    Words(Vec<String>),
}

/// `share <asset id or words> to <number>`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ShareCommand {
    /// The asset.
    pub asset: AssetRef,
    /// The recipient.
    pub to: WhatsAppAddress,
}

/// Why a text is not a share command a rep can use.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum CommandError {
    /// Not `share … to …`.
    NotACommand,
    /// The number after `to` is not a phone number.
    BadNumber,
}

impl CommandError {
    /// What the rep is told.
    pub fn text(&self) -> &'static str {
        match self {
            Self::NotACommand => {
                "To share an asset, write: share <asset id or words> to <number>, for example: share spring brochure to +447700900123"
            }
            Self::BadNumber => {
                "The number after \"to\" is not a phone number; write it with its country code, for example +447700900123."
            }
        }
    }
}

/// Reads `share <asset id or words> to <number>` (case-insensitive keyword, the last ` to `
/// separates the number, so words may hold "to").
pub fn parse_command(text: &str) -> Result<ShareCommand, CommandError> {
    let text = text.trim();
    let rest = match text.get(..6) {
        Some(head) if head.eq_ignore_ascii_case("share ") => &text[6..],
        _ => return Err(CommandError::NotACommand),
    };
    let lower = rest.to_ascii_lowercase();
    let at = lower.rfind(" to ").ok_or(CommandError::NotACommand)?;
    let (what, number) = (rest[..at].trim(), rest[at + 4..].trim());
    let words: Vec<String> = what
        .split_whitespace()
        .map(|w| w.trim_matches(|c: char| !c.is_alphanumeric() && c != '-' && c != '_'))
        .filter(|w| !w.is_empty())
        .map(str::to_owned)
        .collect();
    if words.is_empty() || number.is_empty() {
        return Err(CommandError::NotACommand);
    }
    let to = WhatsAppAddress::parse(number).map_err(|_| CommandError::BadNumber)?;
    let asset = match words.as_slice() {
        [one] => AssetRef::IdOrWord(one.clone()),
        _ => AssetRef::Words(words),
    };
    Ok(ShareCommand { asset, to })
}

/// What the rules read of an asset (field values as the DAM holds them, already looked up
/// through the configured field map).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct AssetFacts {
    /// RecordID.
    pub id: String,
    /// Title.
    pub title: String,
    /// Workflow status.
    pub status: String,
    /// File version (`current` when the instance has none).
    pub version: String,
    /// The newer asset that replaced this one (empty: it is the current version).
    pub superseded_by: String,
    /// Expiry date, Unix seconds, when the asset has one that reads as a date.
    pub expires_at_s: Option<i64>,
    /// Expiry text, when it has one that does not read as a date.
    pub unreadable_expiry: Option<String>,
    /// Brand-compliance value.
    pub brand: String,
    /// External-use clearance value.
    pub external_use: String,
    /// File size in bytes, when the DAM says.
    pub size_bytes: Option<u64>,
}

/// The values the rules compare with (from the configuration).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Rules {
    /// The approved status value.
    pub approved: String,
    /// Brand values meaning non-compliant (lower case); an empty value is not compliant either.
    pub brand_non_compliant: Vec<String>,
    /// External-use values meaning cleared (lower case).
    pub external_cleared: Vec<String>,
}

/// Why an asset may not go, or why a share cannot be made.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Refusal {
    /// No asset has that id or those words.
    NotFound,
    /// Status is not the approved value.
    NotApproved {
        /// The status it has.
        status: String,
    },
    /// A newer version replaced it.
    OldVersion {
        /// The newer asset.
        newer: String,
    },
    /// Its expiry date has passed (or cannot be read).
    Expired {
        /// The date as shown.
        on: String,
    },
    /// Not brand-compliant.
    NotBrandCompliant,
    /// Not cleared for external use.
    NotClearedForExternalUse,
    /// The recipient opted out of messages.
    RecipientOptedOut,
    /// The recipient has not opted in.
    RecipientNotOptedIn,
}

impl Refusal {
    /// A short code (logs, metrics).
    pub fn code(&self) -> &'static str {
        match self {
            Self::NotFound => "not_found",
            Self::NotApproved { .. } => "not_approved",
            Self::OldVersion { .. } => "old_version",
            Self::Expired { .. } => "expired",
            Self::NotBrandCompliant => "not_brand_compliant",
            Self::NotClearedForExternalUse => "not_cleared_external",
            Self::RecipientOptedOut => "recipient_opted_out",
            Self::RecipientNotOptedIn => "recipient_not_opted_in",
        }
    }

    /// Exactly what the rep is told: which rule failed.
    pub fn text(&self, title: &str, asset: &str) -> String {
        let what = if title.is_empty() || title == "-" {
            asset.to_owned()
        } else {
            format!("{title} ({asset})")
        };
        match self {
            Self::NotFound => format!(
                "No asset matches \"{asset}\". Check the id or try other words; nothing was sent."
            ),
            Self::NotApproved { status } => {
                let status = if status.is_empty() { "none" } else { status };
                format!("Not sent: {what} is not approved (its status is {status}).")
            }
            Self::OldVersion { newer } => format!(
                "Not sent: {what} is not the current version; {newer} replaced it. Share {newer} instead."
            ),
            Self::Expired { on } => format!("Not sent: {what} expired on {on}."),
            Self::NotBrandCompliant => format!("Not sent: {what} is not brand-compliant."),
            Self::NotClearedForExternalUse => {
                format!("Not sent: {what} is not cleared for external use.")
            }
            Self::RecipientOptedOut => format!(
                "Not sent: the recipient has opted out of our WhatsApp messages, so {what} cannot be sent to them."
            ),
            Self::RecipientNotOptedIn => format!(
                "Not sent: the recipient has not opted in to WhatsApp messages from us. Ask them to message START to our number, then share {what} again."
            ),
        }
    }
}

/// The rules, in order: approved, current version, unexpired at `now_s`, brand-compliant,
/// cleared for external use. The first that fails is the reason.
pub fn check(asset: &AssetFacts, rules: &Rules, now_s: i64) -> Result<(), Refusal> {
    if !asset
        .status
        .trim()
        .eq_ignore_ascii_case(rules.approved.trim())
    {
        return Err(Refusal::NotApproved {
            status: asset.status.trim().to_owned(),
        });
    }
    let newer = asset.superseded_by.trim();
    if !newer.is_empty() {
        return Err(Refusal::OldVersion {
            newer: newer.to_owned(),
        });
    }
    if let Some(text) = &asset.unreadable_expiry {
        return Err(Refusal::Expired {
            on: format!("{text} (an expiry date that cannot be read)"),
        });
    }
    if let Some(at) = asset.expires_at_s.filter(|at| *at <= now_s) {
        return Err(Refusal::Expired { on: day_of(at) });
    }
    let brand = asset.brand.trim().to_lowercase();
    if brand.is_empty() || rules.brand_non_compliant.contains(&brand) {
        return Err(Refusal::NotBrandCompliant);
    }
    let external = asset.external_use.trim().to_lowercase();
    if !rules.external_cleared.contains(&external) {
        return Err(Refusal::NotClearedForExternalUse);
    }
    Ok(())
}

/// `YYYY-MM-DD` (UTC) of Unix seconds.
pub fn day_of(at_s: i64) -> String {
    jiff::Timestamp::from_second(at_s)
        .unwrap_or(jiff::Timestamp::UNIX_EPOCH)
        .strftime("%Y-%m-%d")
        .to_string()
}

/// `YYYY-MM-DDTHH:MM:SSZ` of Unix milliseconds (empty for `None`).
pub fn time_of(at_ms: Option<i64>) -> String {
    at_ms
        .and_then(|ms| jiff::Timestamp::from_millisecond(ms).ok())
        .map(|t| t.strftime("%Y-%m-%dT%H:%M:%SZ").to_string())
        .unwrap_or_default()
}

/// WhatsApp's media limits (reference NOTES.md): documents 100 MB, video 16 MB, images 5 MB.
pub const DOCUMENT_LIMIT_BYTES: u64 = 100 * 1024 * 1024;

/// Whether the file goes as a link rather than as a document: over the document limit.
pub fn send_as_link(size_bytes: Option<u64>) -> bool {
    size_bytes.is_some_and(|s| s > DOCUMENT_LIMIT_BYTES)
}

/// The short note with the file, naming the rep.
pub fn note(rep: &str, title: &str, version: &str) -> String {
    format!("{rep} shared {title} (version {version}) with you.")
}

/// The note when the file goes as a link.
pub fn link_note(rep: &str, title: &str, version: &str, link: &str, until: &str) -> String {
    format!(
        "{} The file is too large for WhatsApp; download it here: {link} (the link works until {until}).",
        note(rep, title, version)
    )
}

/// What the rep is told once the share is queued.
pub fn confirmation(title: &str, version: &str) -> String {
    format!("Sent {title} (version {version}). Its delivery is recorded in the sharing audit.")
}

/// The asset's usage line in the DAM.
pub fn usage_line(rep: &str, recipient: &str, version: &str, at_ms: i64) -> String {
    format!(
        "{} WhatsApp share: {rep} shared version {version} with {recipient}",
        time_of(Some(at_ms))
    )
}

/// One audit record: append-only identity, then the delivery marks.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct AuditRecord {
    /// The send key (as it travels in `biz_opaque_callback_data`): the record's id.
    pub send_key: String,
    /// Asset RecordID.
    pub asset: String,
    /// Version shared.
    pub version: String,
    /// The rep's display name.
    pub rep: String,
    /// The rep's pseudonym.
    pub rep_pseudonym: String,
    /// The recipient's pseudonym.
    pub recipient: String,
    /// When the share was asked for, Unix ms.
    pub requested_at_ms: i64,
    /// The WhatsApp message id, once sent.
    pub message_id: Option<String>,
    /// When Graph reported it sent.
    pub sent_at_ms: Option<i64>,
    /// When it was delivered.
    pub delivered_at_ms: Option<i64>,
    /// When it was read.
    pub read_at_ms: Option<i64>,
}

/// The CSV header of the export.
pub const CSV_HEADER: &str = "requested_at,asset,version,rep,rep_pseudonym,recipient_pseudonym,message_id,sent,delivered,read";

fn csv_field(value: &str) -> String {
    // A leading formula character is neutralised for spreadsheets.
    let value = if value.starts_with(['=', '+', '-', '@']) {
        format!("'{value}")
    } else {
        value.to_owned()
    };
    if value.contains([',', '"', '\n', '\r']) {
        format!("\"{}\"", value.replace('"', "\"\""))
    } else {
        value
    }
}

/// One CSV line of a record.
pub fn csv_row(record: &AuditRecord) -> String {
    [
        time_of(Some(record.requested_at_ms)),
        record.asset.clone(),
        record.version.clone(),
        record.rep.clone(),
        record.rep_pseudonym.clone(),
        record.recipient.clone(),
        record.message_id.clone().unwrap_or_default(),
        time_of(record.sent_at_ms),
        time_of(record.delivered_at_ms),
        time_of(record.read_at_ms),
    ]
    .iter()
    .map(|v| csv_field(v))
    .collect::<Vec<_>>()
    .join(",")
}

/// The whole CSV, header first, in request order.
pub fn csv(records: &[AuditRecord]) -> String {
    let mut sorted: Vec<&AuditRecord> = records.iter().collect();
    sorted.sort_by(|a, b| (a.requested_at_ms, &a.send_key).cmp(&(b.requested_at_ms, &b.send_key)));
    let mut out = String::from(CSV_HEADER);
    out.push('\n');
    for record in sorted {
        out.push_str(&csv_row(record));
        out.push('\n');
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn rules() -> Rules {
        Rules {
            approved: "Approved".into(),
            brand_non_compliant: vec!["no".into(), "false".into()],
            external_cleared: vec!["yes".into(), "true".into()],
        }
    }

    fn good() -> AssetFacts {
        AssetFacts {
            id: "A1".into(),
            title: "Spring brochure".into(),
            status: "Approved".into(),
            version: "4".into(),
            expires_at_s: Some(2_000_000_000),
            brand: "yes".into(),
            external_use: "Yes".into(),
            ..AssetFacts::default()
        }
    }

    #[test]
    fn a_share_command_reads_an_id_or_words_and_the_number() {
        let one = parse_command("Share A1 to +44 7700 900123").expect("command");
        assert_eq!(one.asset, AssetRef::IdOrWord("A1".into()));
        let words = parse_command("share spring brochure to 447700900123").expect("command");
        assert_eq!(
            words.asset,
            AssetRef::Words(vec!["spring".into(), "brochure".into()])
        );
        assert_eq!(parse_command("share it"), Err(CommandError::NotACommand));
        assert_eq!(
            parse_command("share A1 to nobody"),
            Err(CommandError::BadNumber)
        );
        assert_eq!(parse_command("hello"), Err(CommandError::NotACommand));
    }

    #[test]
    fn each_rule_refuses_with_its_own_reason() {
        assert_eq!(check(&good(), &rules(), 1_900_000_000), Ok(()));
        let draft = AssetFacts {
            status: "Draft".into(),
            ..good()
        };
        assert!(matches!(
            check(&draft, &rules(), 0),
            Err(Refusal::NotApproved { .. })
        ));
        let old = AssetFacts {
            superseded_by: "A2".into(),
            ..good()
        };
        assert_eq!(
            check(&old, &rules(), 0),
            Err(Refusal::OldVersion { newer: "A2".into() })
        );
        let expired = AssetFacts {
            expires_at_s: Some(1_700_000_000),
            ..good()
        };
        assert_eq!(
            check(&expired, &rules(), 1_800_000_000),
            Err(Refusal::Expired {
                on: "2023-11-14".into()
            })
        );
        let off_brand = AssetFacts {
            brand: "No".into(),
            ..good()
        };
        assert_eq!(
            check(&off_brand, &rules(), 0),
            Err(Refusal::NotBrandCompliant)
        );
        let internal = AssetFacts {
            external_use: "".into(),
            ..good()
        };
        assert_eq!(
            check(&internal, &rules(), 0),
            Err(Refusal::NotClearedForExternalUse)
        );
        assert!(
            Refusal::Expired {
                on: "2023-11-14".into()
            }
            .text("Spring brochure", "A1")
            .contains("expired on 2023-11-14")
        );
    }

    #[test]
    fn the_csv_quotes_and_neutralises_fields_and_sorts_by_request_time() {
        let record = |key: &str, at: i64, rep: &str| AuditRecord {
            send_key: key.into(),
            asset: "A1".into(),
            version: "4".into(),
            rep: rep.into(),
            rep_pseudonym: "u_r".into(),
            recipient: "u_x".into(),
            requested_at_ms: at,
            message_id: Some("wamid.1".into()),
            sent_at_ms: Some(at + 1000),
            delivered_at_ms: None,
            read_at_ms: None,
        };
        let out = csv(&[record("b", 2_000, "=cmd"), record("a", 1_000, "Ruiz, Ana")]);
        let lines: Vec<&str> = out.lines().collect();
        assert_eq!(lines[0], CSV_HEADER);
        assert!(lines[1].contains("\"Ruiz, Ana\""), "{}", lines[1]);
        assert!(lines[2].contains(",'=cmd,"), "{}", lines[2]);
        assert!(lines[1].ends_with("1970-01-01T00:00:02Z,,"), "{}", lines[1]);
    }

    #[test]
    fn only_files_over_the_document_limit_go_as_links() {
        assert!(!send_as_link(None));
        assert!(!send_as_link(Some(5 * 1024 * 1024)));
        assert!(send_as_link(Some(DOCUMENT_LIMIT_BYTES + 1)));
    }
}

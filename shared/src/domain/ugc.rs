//! Flow 6's rules, without I/O: which campaign a submission belongs to and how it was found, the
//! consent answer of a tap, what a pending submission is owed on a sweep (one reminder, then
//! expiry), what the contributor reads, and the removal of location and device metadata from
//! photos without re-encoding them.

use crate::connector_config::UgcRouting;
use std::borrow::Cow;

/// How a submission's campaign was found; the DAM's source field says it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum CampaignSource {
    /// A configured keyword in the caption or text.
    Keyword(String),
    /// The click-to-WhatsApp ad or post (`referral.source_id`) the user came from.
    Referral(String),
    /// The campaign of the business number written to.
    Number,
}

impl CampaignSource {
    /// The DAM's source value: the channel and how the campaign was found.
    pub fn to_field(&self) -> String {
        match self {
            Self::Keyword(word) => format!("WhatsApp, keyword {word}"),
            Self::Referral(id) => format!("WhatsApp, click-to-WhatsApp ad {id}"),
            Self::Number => "WhatsApp, campaign number".into(),
        }
    }
}

/// A submission's campaign and how it was found.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CampaignOf {
    /// The campaign (`SUMMER26`).
    pub campaign: String,
    /// How it was found.
    pub source: CampaignSource,
}

/// The campaign of a submission: a configured keyword of its caption first (the contributor said
/// it), then the ad they came from, then the number's campaign; `None` when none applies.
pub fn campaign_of(
    caption: &str,
    referral_source_id: Option<&str>,
    number_campaign: Option<&str>,
    routing: &UgcRouting,
) -> Option<CampaignOf> {
    let keyword = caption
        .split_whitespace()
        .map(|w| {
            w.trim_start_matches('#')
                .trim_end_matches(['.', ',', ';', ':', '!', '?'])
        })
        .find_map(|word| {
            routing
                .keywords
                .iter()
                .find(|(k, _)| k.eq_ignore_ascii_case(word))
        });
    if let Some((word, campaign)) = keyword {
        return Some(CampaignOf {
            campaign: campaign.clone(),
            source: CampaignSource::Keyword(word.clone()),
        });
    }
    if let Some(id) = referral_source_id
        && let Some(campaign) = routing.referral_campaigns.get(id)
    {
        return Some(CampaignOf {
            campaign: campaign.clone(),
            source: CampaignSource::Referral(id.to_owned()),
        });
    }
    number_campaign
        .filter(|c| !c.is_empty())
        .map(|campaign| CampaignOf {
            campaign: campaign.to_owned(),
            source: CampaignSource::Number,
        })
}

/// The consent buttons' actions.
pub const YES: &str = "yes";
/// See [`YES`].
pub const NO: &str = "no";

/// A contributor's answer to the consent question.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ConsentAnswer {
    /// They agree to the terms for this campaign.
    Yes,
    /// They do not: the submission is deleted.
    No,
}

impl ConsentAnswer {
    /// The answer of a button action; `None` for any other.
    pub fn from_action(action: &str) -> Option<Self> {
        match action {
            YES => Some(Self::Yes),
            NO => Some(Self::No),
            _ => None,
        }
    }

    /// `yes` / `no`, as recorded.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Yes => YES,
            Self::No => NO,
        }
    }
}

/// The store's key of a subject that may hold `|` or spaces: digits and letters are kept.
pub fn safe_part(text: &str) -> String {
    text.chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.') {
                c
            } else {
                '_'
            }
        })
        .collect()
}

/// How long a pending submission waits for an answer.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Hold {
    /// After this many seconds without an answer, one reminder.
    pub remind_after: i64,
    /// After this many seconds (and the reminder), the staged media is deleted.
    pub expire_after: i64,
}

/// What a sweep does to a pending submission.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SweepStep {
    /// Nothing yet.
    Wait,
    /// Remind once.
    Remind,
    /// Delete the staged media: no answer came.
    Expire,
}

/// The step owed to a submission asked at `asked_at` (Unix seconds), reminded at `reminded_at`:
/// the reminder always comes before expiry, so a contributor is asked twice before anything is
/// deleted for lack of an answer.
pub fn sweep_step(asked_at: i64, reminded_at: Option<i64>, now: i64, hold: Hold) -> SweepStep {
    match reminded_at {
        None if now - asked_at >= hold.remind_after => SweepStep::Remind,
        None => SweepStep::Wait,
        Some(_) if now - asked_at >= hold.expire_after => SweepStep::Expire,
        Some(_) => SweepStep::Wait,
    }
}

/// The consent question: what they sent is held until they answer, the terms and their version.
pub fn consent_question(campaign: &str, routing: &UgcRouting) -> String {
    format!(
        "Thank you for your submission to {campaign}! Before we can use it, please confirm you \
         took it, that the people in it agree, and that you accept our terms (version {}): {}\n\
         We keep it aside until you answer, and delete it if you say No or do not answer.",
        routing.terms_version, routing.terms_url
    )
}

/// The one reminder.
pub fn reminder_text(campaign: &str, routing: &UgcRouting) -> String {
    format!(
        "Reminder: we still hold your submission to {campaign}. May we use it under our terms \
         (version {}): {}? Without an answer it will be deleted.",
        routing.terms_version, routing.terms_url
    )
}

/// What the contributor reads after Yes.
pub fn accepted_text(campaign: &str) -> String {
    format!(
        "Thank you! Your submission to {campaign} is with our moderation team. Later \
         submissions to {campaign} need no new confirmation."
    )
}

/// What the contributor reads after No.
pub const DECLINED_TEXT: &str = "Understood: we have deleted your submission and will not use it.";

/// What a tap on a question whose submission is gone reads.
pub const GONE_TEXT: &str = "That submission is no longer held (it was answered or expired). \
                             Please send it again if you would like us to use it.";

/// What a sender of something that is not a photo or video reads.
pub const NOT_MEDIA_TEXT: &str = "Please send a photo or a video for the campaign.";

/// The consent record kept on the asset: who (pseudonym), when, the terms version, the message
/// ids and the answer.
pub fn consent_field(
    pseudonym: &str,
    answered_at_iso: &str,
    terms_version: &str,
    asked_message: &str,
    answer_message: &str,
    answer: ConsentAnswer,
) -> String {
    format!(
        "consent={} by={pseudonym} at={answered_at_iso} terms={terms_version} \
         asked={asked_message} answer={answer_message}",
        answer.as_str()
    )
}

/// What [`strip_metadata`] removed.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Stripped<'a> {
    /// The file without its metadata (borrowed when nothing was removed).
    pub bytes: Cow<'a, [u8]>,
    /// What was removed: `exif`, `xmp`, `iptc`, `comment`, `text`.
    pub removed: Vec<&'static str>,
}

/// Removes location and device metadata from a photo without re-encoding it.
///
/// JPEG: the EXIF segment (GPS, make, model, serial numbers, dates) is replaced by one that holds
/// only the orientation, so the photo still shows upright; XMP, IPTC (APP13) and comments go; every
/// other segment and the entropy-coded image data are kept byte for byte. PNG: `eXIf`, `tEXt`,
/// `iTXt`, `zTXt` and `tIME` chunks go. Other types are returned unchanged (video containers keep
/// their metadata: docs/ugc.md). A file that does not parse is returned unchanged with nothing
/// removed, and the caller decides.
pub fn strip_metadata<'a>(mime: &str, bytes: &'a [u8]) -> Option<Stripped<'a>> {
    match mime {
        "image/jpeg" => strip_jpeg(bytes),
        "image/png" => strip_png(bytes),
        _ => Some(Stripped {
            bytes: Cow::Borrowed(bytes),
            removed: Vec::new(),
        }),
    }
}

fn strip_jpeg(bytes: &[u8]) -> Option<Stripped<'_>> {
    if !bytes.starts_with(&[0xFF, 0xD8]) {
        return None;
    }
    let orientation = crate::domain::field_ingest::exif_orientation(bytes);
    let mut out = Vec::with_capacity(bytes.len());
    out.extend_from_slice(&bytes[..2]);
    let mut removed = Vec::new();
    let mut at = 2;
    loop {
        // Fill bytes (0xFF runs) may precede a marker.
        while bytes.get(at) == Some(&0xFF) && bytes.get(at + 1) == Some(&0xFF) {
            at += 1;
        }
        if bytes.get(at) != Some(&0xFF) {
            return None;
        }
        let marker = *bytes.get(at + 1)?;
        if marker == 0xD9 {
            out.extend_from_slice(&bytes[at..]);
            break;
        }
        if marker == 0x01 || (0xD0..=0xD7).contains(&marker) {
            out.extend_from_slice(&bytes[at..at + 2]);
            at += 2;
            continue;
        }
        let len = usize::from(u16::from_be_bytes([
            *bytes.get(at + 2)?,
            *bytes.get(at + 3)?,
        ]));
        if len < 2 {
            return None;
        }
        let end = at + 2 + len;
        let body = bytes.get(at + 4..end)?;
        if marker == 0xDA {
            // Start of scan: the image data and everything after it stay as they are.
            out.extend_from_slice(&bytes[at..]);
            break;
        }
        let drop = match marker {
            0xE1 if body.starts_with(b"Exif\0\0")
                && orientation.map(orientation_only_exif).as_deref() == Some(&bytes[at..end]) =>
            {
                // Already only the orientation (a copy stripped before).
                false
            }
            0xE1 if body.starts_with(b"Exif\0\0") => {
                if !removed.contains(&"exif") {
                    if let Some(orientation) = orientation {
                        out.extend_from_slice(&orientation_only_exif(orientation));
                    }
                    removed.push("exif");
                }
                true
            }
            0xE1 if body.starts_with(b"http://ns.adobe.com/") => {
                removed.push("xmp");
                true
            }
            0xED => {
                removed.push("iptc");
                true
            }
            0xFE => {
                removed.push("comment");
                true
            }
            _ => false,
        };
        if !drop {
            out.extend_from_slice(&bytes[at..end]);
        }
        at = end;
    }
    removed.dedup();
    Some(Stripped {
        bytes: if removed.is_empty() {
            Cow::Borrowed(bytes)
        } else {
            Cow::Owned(out)
        },
        removed,
    })
}

/// An APP1 EXIF segment holding only the orientation (big-endian TIFF, one IFD0 entry).
fn orientation_only_exif(orientation: u16) -> Vec<u8> {
    let mut tiff = Vec::new();
    tiff.extend_from_slice(b"MM\0\x2a");
    tiff.extend_from_slice(&8u32.to_be_bytes());
    tiff.extend_from_slice(&1u16.to_be_bytes());
    tiff.extend_from_slice(&0x0112u16.to_be_bytes());
    tiff.extend_from_slice(&3u16.to_be_bytes());
    tiff.extend_from_slice(&1u32.to_be_bytes());
    tiff.extend_from_slice(&orientation.to_be_bytes());
    tiff.extend_from_slice(&[0, 0]);
    tiff.extend_from_slice(&0u32.to_be_bytes());
    let len = u16::try_from(2 + 6 + tiff.len()).unwrap_or(u16::MAX);
    let mut segment = vec![0xFF, 0xE1];
    segment.extend_from_slice(&len.to_be_bytes());
    segment.extend_from_slice(b"Exif\0\0");
    segment.extend_from_slice(&tiff);
    segment
}

fn strip_png(bytes: &[u8]) -> Option<Stripped<'_>> {
    const SIGNATURE: &[u8] = b"\x89PNG\r\n\x1a\n";
    if !bytes.starts_with(SIGNATURE) {
        return None;
    }
    let mut out = Vec::with_capacity(bytes.len());
    out.extend_from_slice(SIGNATURE);
    let mut removed = Vec::new();
    let mut at = SIGNATURE.len();
    while at < bytes.len() {
        let len = u32::from_be_bytes(bytes.get(at..at + 4)?.try_into().ok()?) as usize;
        let kind = bytes.get(at + 4..at + 8)?;
        let end = at.checked_add(12)?.checked_add(len)?;
        if end > bytes.len() {
            return None;
        }
        let name = match kind {
            b"eXIf" => Some("exif"),
            b"tEXt" | b"iTXt" | b"zTXt" | b"tIME" => Some("text"),
            _ => None,
        };
        match name {
            Some(name) => {
                if !removed.contains(&name) {
                    removed.push(name);
                }
            }
            None => out.extend_from_slice(&bytes[at..end]),
        }
        at = end;
        if kind == b"IEND" {
            break;
        }
    }
    Some(Stripped {
        bytes: if removed.is_empty() {
            Cow::Borrowed(bytes)
        } else {
            Cow::Owned(out)
        },
        removed,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::domain::field_ingest::{exif_gps, exif_orientation};

    /// A hand-built baseline 8x8 grey JPEG whose EXIF holds make, model, orientation 6, a body
    /// serial number and a GPS position (51°30'26.46" N, 0°7'39.93" W), with XMP, IPTC and a
    /// comment segment (fixtures/ugc/README.md says how it was made).
    const PHOTO: &[u8] = include_bytes!("../../../fixtures/ugc/photo-with-gps.jpg");

    fn routing() -> UgcRouting {
        crate::connector_config::ConnectorConfig::parse(include_str!(
            "../../../local/connector.yaml"
        ))
        .expect("local/connector.yaml")
        .routing
        .ugc
    }

    fn scan_data(jpeg: &[u8]) -> &[u8] {
        let sos = jpeg
            .windows(2)
            .position(|w| w == [0xFF, 0xDA])
            .expect("a start of scan");
        &jpeg[sos..]
    }

    fn contains(haystack: &[u8], needle: &[u8]) -> bool {
        haystack.windows(needle.len()).any(|w| w == needle)
    }

    #[test]
    fn the_fixture_carries_gps_and_device_details() {
        assert!(exif_gps(PHOTO).is_some());
        assert!(contains(PHOTO, b"Pixel Test 9"));
        assert!(contains(PHOTO, b"SN-12345678"));
    }

    #[test]
    fn a_jpeg_loses_gps_device_xmp_iptc_and_comments_but_keeps_orientation_and_image_data() {
        let stripped = strip_metadata("image/jpeg", PHOTO).expect("parses");
        let bytes = stripped.bytes.as_ref();
        assert_eq!(stripped.removed, ["exif", "xmp", "iptc", "comment"]);
        assert_eq!(exif_gps(bytes), None, "no GPS left");
        for device in [&b"PhoneCo"[..], b"Pixel Test 9", b"SN-12345678", b"London"] {
            assert!(
                !contains(bytes, device),
                "{}",
                String::from_utf8_lossy(device)
            );
        }
        assert_eq!(exif_orientation(bytes), Some(6), "orientation kept");
        assert_eq!(
            scan_data(bytes),
            scan_data(PHOTO),
            "image data byte-identical"
        );
        assert!(
            bytes.starts_with(&[0xFF, 0xD8, 0xFF, 0xE0]),
            "JFIF kept first"
        );
        assert!(bytes.len() < PHOTO.len());
    }

    #[test]
    fn stripping_twice_changes_nothing_more() {
        let once = strip_metadata("image/jpeg", PHOTO).expect("parses");
        let twice = strip_metadata("image/jpeg", &once.bytes).expect("parses");
        assert_eq!(twice.removed, Vec::<&str>::new());
        assert_eq!(twice.bytes.as_ref(), once.bytes.as_ref());
    }

    #[test]
    fn a_png_loses_exif_and_text_chunks_only() {
        let chunk = |kind: &[u8], data: &[u8]| {
            let mut c = (data.len() as u32).to_be_bytes().to_vec();
            c.extend_from_slice(kind);
            c.extend_from_slice(data);
            c.extend_from_slice(&[0, 0, 0, 0]);
            c
        };
        let mut png = b"\x89PNG\r\n\x1a\n".to_vec();
        let ihdr = chunk(b"IHDR", &[0, 0, 0, 1, 0, 0, 0, 1, 8, 0, 0, 0, 0]);
        let idat = chunk(b"IDAT", b"pixels");
        png.extend(&ihdr);
        png.extend(chunk(b"eXIf", b"MM\0\x2a gps"));
        png.extend(chunk(b"tEXt", b"Author\0Phone"));
        png.extend(&idat);
        png.extend(chunk(b"IEND", b""));
        let stripped = strip_metadata("image/png", &png).expect("parses");
        assert_eq!(stripped.removed, ["exif", "text"]);
        let mut expected = b"\x89PNG\r\n\x1a\n".to_vec();
        expected.extend(ihdr);
        expected.extend(idat);
        expected.extend(chunk(b"IEND", b""));
        assert_eq!(stripped.bytes.as_ref(), expected.as_slice());
    }

    #[test]
    fn videos_pass_unchanged_and_a_broken_jpeg_is_not_guessed_at() {
        let video = b"\0\0\0\x18ftypmp42 rest";
        let passed = strip_metadata("video/mp4", video).expect("passes");
        assert!(passed.removed.is_empty());
        assert_eq!(passed.bytes.as_ref(), video);
        assert_eq!(strip_metadata("image/jpeg", &PHOTO[..40]), None);
    }

    #[test]
    fn a_keyword_beats_the_ad_which_beats_the_number() {
        let routing = routing();
        let by_keyword = campaign_of(
            "sunset #beach26!",
            Some("120210000000001"),
            Some("SUMMER26"),
            &routing,
        )
        .expect("a campaign");
        assert_eq!(by_keyword.campaign, "BEACH26");
        assert_eq!(by_keyword.source, CampaignSource::Keyword("BEACH26".into()));
        let by_ad = campaign_of(
            "sunset",
            Some("120210000000001"),
            Some("SUMMER26"),
            &routing,
        )
        .expect("a campaign");
        assert_eq!(by_ad.campaign, "SUMMER26-ADS");
        assert_eq!(
            by_ad.source.to_field(),
            "WhatsApp, click-to-WhatsApp ad 120210000000001"
        );
        let by_number =
            campaign_of("sunset", Some("999"), Some("SUMMER26"), &routing).expect("a campaign");
        assert_eq!(by_number.source, CampaignSource::Number);
        assert_eq!(campaign_of("sunset", None, None, &routing), None);
    }

    #[test]
    fn no_answer_gets_one_reminder_before_anything_is_deleted() {
        let hold = Hold {
            remind_after: 3600,
            expire_after: 7200,
        };
        assert_eq!(sweep_step(0, None, 10, hold), SweepStep::Wait);
        assert_eq!(sweep_step(0, None, 3600, hold), SweepStep::Remind);
        // Past the hold but never reminded: the reminder still comes first.
        assert_eq!(sweep_step(0, None, 9000, hold), SweepStep::Remind);
        assert_eq!(sweep_step(0, Some(3600), 5000, hold), SweepStep::Wait);
        assert_eq!(sweep_step(0, Some(3600), 7200, hold), SweepStep::Expire);
    }

    #[test]
    fn the_question_names_the_terms_version_and_link() {
        let routing = routing();
        let text = consent_question("SUMMER26", &routing);
        assert!(text.contains("SUMMER26") && text.contains("version 2026-11"));
        assert!(text.contains("https://example.com/ugc-terms"));
        assert_eq!(ConsentAnswer::from_action("yes"), Some(ConsentAnswer::Yes));
        assert_eq!(ConsentAnswer::from_action("maybe"), None);
    }
}

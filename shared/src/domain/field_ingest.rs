//! Flow 2's rules, without I/O: project tags from captions and commands, what a file really is
//! (sniffed from its first bytes) against what it claims to be and the allow list, safe file
//! names, where a tag routes, the photo's EXIF GPS, and what the sender is told.

use crate::connector_config::FieldIngestRouting;
use std::fmt;

/// A project tag (`SPRING26`, `BRIDGE-12`): upper-case letters, digits, `-` and `_`, 2 to 40
/// characters, starting with a letter or digit.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct ProjectTag(String);

impl ProjectTag {
    /// Accepts a tag in any case (it is kept upper-case); `None` for anything else.
    pub fn parse(text: &str) -> Option<Self> {
        let tag = text.trim().to_ascii_uppercase();
        let valid = (2..=40).contains(&tag.len())
            && tag
                .bytes()
                .next()
                .is_some_and(|b| b.is_ascii_alphanumeric())
            && tag
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_');
        valid.then_some(Self(tag))
    }

    /// The tag.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl fmt::Display for ProjectTag {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

/// The first `#TAG` of a caption (`#SPRING26 storefront` → `SPRING26`).
pub fn caption_tag(caption: &str) -> Option<ProjectTag> {
    caption
        .split_whitespace()
        .filter_map(|word| word.strip_prefix('#'))
        .map(|word| word.trim_end_matches(['.', ',', ';', ':', '!', '?']))
        .find_map(ProjectTag::parse)
}

/// A text command of a field contributor.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ProjectCommand {
    /// `project BRIDGE-12`: later media without a `#TAG` go to this project.
    Set(ProjectTag),
    /// `project none`: later media without a `#TAG` go to the default folder.
    Clear,
}

/// Reads `project <TAG>` / `project none` (any case, `#` before the tag allowed); `None` for other text.
pub fn project_command(text: &str) -> Option<ProjectCommand> {
    let mut words = text.split_whitespace();
    if !words.next()?.eq_ignore_ascii_case("project") {
        return None;
    }
    let argument = words.next()?;
    if words.next().is_some() {
        return None;
    }
    if ["none", "clear", "off"]
        .iter()
        .any(|w| argument.eq_ignore_ascii_case(w))
    {
        return Some(ProjectCommand::Clear);
    }
    ProjectTag::parse(argument.trim_start_matches('#')).map(ProjectCommand::Set)
}

/// Where a media item lands in the DAM.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Placement {
    /// Folder path as configured (`Projects/Bridge/Field`).
    pub folder: String,
    /// Workflow status to set, when the rule names one.
    pub workflow: Option<String>,
}

/// The first rule whose pattern matches `tag` (a trailing `*` matches any suffix), else the default folder.
pub fn place(tag: Option<&ProjectTag>, routing: &FieldIngestRouting) -> Placement {
    let rule = tag.and_then(|tag| {
        routing.rules.iter().find(|rule| {
            let pattern = rule.project_tag.to_ascii_uppercase();
            match pattern.strip_suffix('*') {
                Some(prefix) => tag.as_str().starts_with(prefix),
                None => tag.as_str() == pattern,
            }
        })
    });
    match rule {
        Some(rule) => Placement {
            folder: rule.folder.clone(),
            workflow: rule.workflow.clone(),
        },
        None => Placement {
            folder: routing.default_folder.clone(),
            workflow: None,
        },
    }
}

/// File types field media may have: what the DAM takes from the field.
pub const DEFAULT_ALLOWED_TYPES: [&str; 8] = [
    "image/jpeg",
    "image/png",
    "image/webp",
    "image/heic",
    "video/mp4",
    "video/3gpp",
    "video/quicktime",
    "application/pdf",
];

/// The MIME type the first bytes of a file show, for the types this flow knows.
pub fn sniff(head: &[u8]) -> Option<&'static str> {
    let starts = |magic: &[u8]| head.starts_with(magic);
    if starts(&[0xFF, 0xD8, 0xFF]) {
        return Some("image/jpeg");
    }
    if starts(b"\x89PNG\r\n\x1a\n") {
        return Some("image/png");
    }
    if starts(b"GIF87a") || starts(b"GIF89a") {
        return Some("image/gif");
    }
    if head.len() >= 12 && &head[..4] == b"RIFF" && &head[8..12] == b"WEBP" {
        return Some("image/webp");
    }
    if starts(b"%PDF-") {
        return Some("application/pdf");
    }
    if starts(b"PK\x03\x04") {
        return Some("application/zip");
    }
    if head.len() >= 12 && &head[4..8] == b"ftyp" {
        let brand = &head[8..12];
        return Some(match brand {
            b"heic" | b"heix" | b"mif1" | b"msf1" | b"heim" | b"heis" => "image/heic",
            b"qt  " => "video/quicktime",
            b if b.starts_with(b"3g") => "video/3gpp",
            _ => "video/mp4",
        });
    }
    None
}

/// Why a media item is refused; each tells the sender what to do.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum Refusal {
    /// The sniffed type is not on the allow list (or could not be recognised).
    #[error("the file type is not accepted")]
    TypeNotAllowed,
    /// The bytes are not what the message declared (a PDF sent as `image/jpeg`).
    #[error("the file is not the type it was sent as")]
    TypeMismatch,
    /// The bytes do not hash to the sha256 the webhook carried.
    #[error("the file's checksum does not match")]
    ChecksumMismatch,
    /// Larger than the cap.
    #[error("the file is larger than {cap_mb} MB")]
    TooLarge {
        /// The cap in MB.
        cap_mb: u64,
    },
    /// A file name with a path, `..` or control characters.
    #[error("the file name is not acceptable")]
    UnsafeFileName,
    /// The malware scan found a threat.
    #[error("the malware scan found a threat")]
    Threat,
    /// The malware scan did not answer in time (the flow fails closed).
    #[error("the malware scan did not complete")]
    ScanIncomplete,
}

impl Refusal {
    /// A short code for logs and the audit.
    pub fn code(&self) -> &'static str {
        match self {
            Self::TypeNotAllowed => "type_not_allowed",
            Self::TypeMismatch => "type_mismatch",
            Self::ChecksumMismatch => "checksum_mismatch",
            Self::TooLarge { .. } => "too_large",
            Self::UnsafeFileName => "unsafe_file_name",
            Self::Threat => "threat_found",
            Self::ScanIncomplete => "scan_incomplete",
        }
    }

    /// What the sender reads: what happened and what to do.
    pub fn reply_text(&self) -> String {
        match self {
            Self::TypeNotAllowed => "We could not file your file: this type is not accepted. Please send a photo (JPEG, PNG, WebP, HEIC), a video (MP4, 3GP, MOV) or a PDF.".into(),
            Self::TypeMismatch => "We could not file your file: its content does not match its type (for example a document renamed as a photo). Please send the original file.".into(),
            Self::ChecksumMismatch => "We could not file your file: it was damaged on the way. Please send it again.".into(),
            Self::TooLarge { cap_mb } => format!("We could not file your file: it is larger than {cap_mb} MB. Please send a smaller version or share it another way."),
            Self::UnsafeFileName => "We could not file your document: its file name is not acceptable. Please rename it (letters, digits, spaces, dots, dashes) and send it again.".into(),
            Self::Threat => "We could not file your file: our security scan flagged it. Nothing was stored. Please check the file and your device, then contact your coordinator.".into(),
            Self::ScanIncomplete => "We could not file your file: the security scan did not complete. Nothing was stored. Please send it again later.".into(),
        }
    }
}

/// Checks the sniffed type against the allow list and the declared type (image/jpeg declared and
/// a PDF inside is a mismatch); returns the type to file it as.
pub fn check_type(
    declared: Option<&str>,
    sniffed: Option<&'static str>,
    allowed: &[String],
) -> Result<&'static str, Refusal> {
    let sniffed = sniffed.ok_or(Refusal::TypeNotAllowed)?;
    if let Some(declared) = declared {
        let declared = declared
            .split(';')
            .next()
            .unwrap_or("")
            .trim()
            .to_ascii_lowercase();
        let same = declared == sniffed
            || (declared == "image/jpg" && sniffed == "image/jpeg")
            || (declared == "image/heif" && sniffed == "image/heic")
            // Phones label MP4-family videos loosely; the container is what matters.
            || (declared.starts_with("video/") && sniffed.starts_with("video/"));
        if !same {
            return Err(Refusal::TypeMismatch);
        }
    }
    if !allowed.iter().any(|a| a.eq_ignore_ascii_case(sniffed)) {
        return Err(Refusal::TypeNotAllowed);
    }
    Ok(sniffed)
}

/// A document's file name, kept only as metadata: names with a path (`/`, `\`), `..`, control
/// characters or over 200 bytes are refused; others are kept with anything outside letters,
/// digits, space, `.`, `-`, `_`, `(`, `)` replaced by `_`.
pub fn safe_file_name(name: &str) -> Result<String, Refusal> {
    let unsafe_name = name.is_empty()
        || name.len() > 200
        || name.contains(['/', '\\'])
        || name.contains("..")
        || name.chars().any(char::is_control)
        || name.trim_start().starts_with('.');
    if unsafe_name {
        return Err(Refusal::UnsafeFileName);
    }
    Ok(name
        .chars()
        .map(|c| {
            if c.is_alphanumeric() || matches!(c, ' ' | '.' | '-' | '_' | '(' | ')') {
                c
            } else {
                '_'
            }
        })
        .collect())
}

/// The extension the DAM file gets, from the type it is filed as.
pub fn extension(mime: &str) -> &'static str {
    match mime {
        "image/jpeg" => "jpg",
        "image/png" => "png",
        "image/webp" => "webp",
        "image/heic" => "heic",
        "image/gif" => "gif",
        "video/mp4" => "mp4",
        "video/3gpp" => "3gp",
        "video/quicktime" => "mov",
        "application/pdf" => "pdf",
        _ => "bin",
    }
}

/// What a user sees a file called in a receipt.
pub fn kind_word(mime: &str) -> &'static str {
    if mime.starts_with("image/") {
        "photo"
    } else if mime.starts_with("video/") {
        "video"
    } else {
        "document"
    }
}

/// A position in degrees.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct GeoPoint {
    /// Latitude, degrees north.
    pub latitude: f64,
    /// Longitude, degrees east.
    pub longitude: f64,
}

impl GeoPoint {
    /// `lat,lon` with six decimals (about 10 cm), as the DAM field holds it.
    pub fn to_field(&self) -> String {
        format!("{:.6},{:.6}", self.latitude, self.longitude)
    }

    /// Whether both are inside their ranges.
    pub fn is_valid(&self) -> bool {
        self.latitude.is_finite()
            && self.longitude.is_finite()
            && (-90.0..=90.0).contains(&self.latitude)
            && (-180.0..=180.0).contains(&self.longitude)
    }
}

/// The GPS position in a JPEG's EXIF (APP1) segment, from the file's first bytes.
pub fn exif_gps(jpeg_head: &[u8]) -> Option<GeoPoint> {
    let tiff = exif_tiff(jpeg_head)?;
    let reader = Tiff::new(tiff)?;
    let ifd0 = reader.u32_at(4)? as usize;
    let gps_ifd = reader
        .entries(ifd0)?
        .find(|e| e.tag == 0x8825)
        .and_then(|e| reader.u32_at(e.value_offset))? as usize;
    let mut lat = None;
    let mut lat_ref = b'N';
    let mut lon = None;
    let mut lon_ref = b'E';
    for entry in reader.entries(gps_ifd)? {
        match entry.tag {
            1 => lat_ref = *reader.bytes.get(entry.value_offset)?,
            2 => lat = reader.degrees(&entry),
            3 => lon_ref = *reader.bytes.get(entry.value_offset)?,
            4 => lon = reader.degrees(&entry),
            _ => {}
        }
    }
    let sign = |r: u8, neg: u8| {
        if r.eq_ignore_ascii_case(&neg) {
            -1.0
        } else {
            1.0
        }
    };
    let point = GeoPoint {
        latitude: lat? * sign(lat_ref, b'S'),
        longitude: lon? * sign(lon_ref, b'W'),
    };
    point.is_valid().then_some(point)
}

/// The EXIF orientation (tag 0x0112, 1 to 8) of a JPEG, from its first bytes.
pub fn exif_orientation(jpeg_head: &[u8]) -> Option<u16> {
    let reader = Tiff::new(exif_tiff(jpeg_head)?)?;
    let ifd0 = reader.u32_at(4)? as usize;
    let entry = reader.entries(ifd0)?.find(|e| e.tag == 0x0112)?;
    let value = reader.u16_at(entry.value_offset)?;
    (1..=8).contains(&value).then_some(value)
}

/// The TIFF block of the JPEG's `Exif\0\0` APP1 segment.
fn exif_tiff(jpeg: &[u8]) -> Option<&[u8]> {
    if !jpeg.starts_with(&[0xFF, 0xD8]) {
        return None;
    }
    let mut at = 2;
    while at + 4 <= jpeg.len() {
        if jpeg[at] != 0xFF {
            return None;
        }
        let marker = jpeg[at + 1];
        if marker == 0xDA || marker == 0xD9 {
            return None;
        }
        let len = usize::from(u16::from_be_bytes([jpeg[at + 2], jpeg[at + 3]]));
        let body = jpeg.get(at + 4..at + 2 + len)?;
        if marker == 0xE1 && body.starts_with(b"Exif\0\0") {
            return Some(&body[6..]);
        }
        at += 2 + len;
    }
    None
}

struct Tiff<'a> {
    bytes: &'a [u8],
    little: bool,
}

struct IfdEntry {
    tag: u16,
    count: u32,
    /// Where the value is: inside the entry when it fits in 4 bytes, else at the offset it holds.
    value_offset: usize,
}

impl<'a> Tiff<'a> {
    fn new(bytes: &'a [u8]) -> Option<Self> {
        let little = match bytes.get(..2)? {
            b"II" => true,
            b"MM" => false,
            _ => return None,
        };
        Some(Self { bytes, little })
    }

    fn u16_at(&self, at: usize) -> Option<u16> {
        let b: [u8; 2] = self.bytes.get(at..at + 2)?.try_into().ok()?;
        Some(if self.little {
            u16::from_le_bytes(b)
        } else {
            u16::from_be_bytes(b)
        })
    }

    fn u32_at(&self, at: usize) -> Option<u32> {
        let b: [u8; 4] = self.bytes.get(at..at + 4)?.try_into().ok()?;
        Some(if self.little {
            u32::from_le_bytes(b)
        } else {
            u32::from_be_bytes(b)
        })
    }

    fn entries(&self, ifd: usize) -> Option<impl Iterator<Item = IfdEntry> + '_> {
        let count = usize::from(self.u16_at(ifd)?).min(512);
        Some((0..count).filter_map(move |i| {
            let at = ifd + 2 + i * 12;
            let tag = self.u16_at(at)?;
            let kind = self.u16_at(at + 2)?;
            let count = self.u32_at(at + 4)?;
            let unit: u32 = match kind {
                1 | 2 | 6 | 7 => 1,
                3 | 8 => 2,
                4 | 9 | 11 => 4,
                5 | 10 | 12 => 8,
                _ => return None,
            };
            let size = unit.checked_mul(count)?;
            let value_offset = if size <= 4 {
                at + 8
            } else {
                self.u32_at(at + 8)? as usize
            };
            Some(IfdEntry {
                tag,
                count,
                value_offset,
            })
        }))
    }

    /// Degrees, minutes, seconds as three RATIONALs.
    fn degrees(&self, entry: &IfdEntry) -> Option<f64> {
        if entry.count < 3 {
            return None;
        }
        let rational = |i: usize| -> Option<f64> {
            let at = entry.value_offset + i * 8;
            let (n, d) = (self.u32_at(at)?, self.u32_at(at + 4)?);
            (d != 0).then(|| f64::from(n) / f64::from(d))
        };
        Some(rational(0)? + rational(1)? / 60.0 + rational(2)? / 3600.0)
    }
}

/// One filed media item, as the receipt lists it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FiledItem {
    /// The DAM's identifier of the new asset.
    pub asset: String,
    /// The folder path it was filed in.
    pub folder: String,
    /// `photo`, `video`, `document`.
    pub kind: String,
}

/// The receipt of a burst: one line per filed item, in the order they were filed.
pub fn receipt_text(items: &[FiledItem]) -> String {
    match items {
        [one] => format!(
            "Thank you, we received your {} and filed it in {} as {}.",
            one.kind, one.folder, one.asset
        ),
        many => {
            let mut text = format!("Thank you, we received {} files:", many.len());
            for item in many {
                text.push_str(&format!(
                    "\n• {} {} in {}",
                    item.kind, item.asset, item.folder
                ));
            }
            text
        }
    }
}

/// The receipt template's three values: what (`3 photos`), where, which references.
pub fn receipt_template_values(items: &[FiledItem]) -> [String; 3] {
    let what = match items {
        [one] => one.kind.clone(),
        many => format!("{} files", many.len()),
    };
    let mut folders: Vec<&str> = items.iter().map(|i| i.folder.as_str()).collect();
    folders.dedup();
    let references: Vec<&str> = items.iter().map(|i| i.asset.as_str()).collect();
    [what, folders.join(", "), references.join(", ")]
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::connector_config::RoutingRule;

    fn routing() -> FieldIngestRouting {
        FieldIngestRouting {
            default_folder: "WhatsApp/Field/Unsorted".into(),
            rules: vec![
                RoutingRule {
                    project_tag: "BRIDGE-*".into(),
                    folder: "Projects/Bridge/Field".into(),
                    workflow: Some("Field review".into()),
                },
                RoutingRule {
                    project_tag: "SPRING26".into(),
                    folder: "Campaigns/Spring26/Field".into(),
                    workflow: None,
                },
            ],
            allowed_types: DEFAULT_ALLOWED_TYPES.map(String::from).to_vec(),
            max_file_mb: 100,
        }
    }

    #[test]
    fn a_caption_tag_routes_to_its_folder_and_an_unknown_tag_to_the_default() {
        let tag = caption_tag("#spring26 storefront, east side");
        assert_eq!(tag.as_ref().map(ProjectTag::as_str), Some("SPRING26"));
        assert_eq!(
            place(tag.as_ref(), &routing()).folder,
            "Campaigns/Spring26/Field"
        );
        let bridge = caption_tag("pier 3 #BRIDGE-12.").expect("tag");
        assert_eq!(
            place(Some(&bridge), &routing()),
            Placement {
                folder: "Projects/Bridge/Field".into(),
                workflow: Some("Field review".into())
            }
        );
        let other = ProjectTag::parse("HARBOUR").expect("tag");
        assert_eq!(
            place(Some(&other), &routing()).folder,
            "WhatsApp/Field/Unsorted"
        );
        assert_eq!(place(None, &routing()).folder, "WhatsApp/Field/Unsorted");
        assert_eq!(caption_tag("no tag # here"), None);
    }

    #[test]
    fn project_commands_set_or_clear_the_current_project() {
        assert_eq!(
            project_command("Project bridge-12"),
            Some(ProjectCommand::Set(
                ProjectTag::parse("BRIDGE-12").expect("tag")
            ))
        );
        assert_eq!(project_command("project none"), Some(ProjectCommand::Clear));
        assert_eq!(project_command("project"), None);
        assert_eq!(project_command("the project is late"), None);
        assert_eq!(project_command("project a b"), None);
    }

    #[test]
    fn a_pdf_declared_as_jpeg_is_a_mismatch_and_unknown_bytes_are_not_allowed() {
        let allowed: Vec<String> = DEFAULT_ALLOWED_TYPES.map(String::from).to_vec();
        assert_eq!(
            check_type(Some("image/jpeg"), sniff(b"%PDF-1.7\n"), &allowed),
            Err(Refusal::TypeMismatch)
        );
        assert_eq!(
            check_type(
                Some("image/jpeg"),
                sniff(&[0xFF, 0xD8, 0xFF, 0xE0]),
                &allowed
            ),
            Ok("image/jpeg")
        );
        assert_eq!(
            check_type(Some("application/zip"), sniff(b"PK\x03\x04"), &allowed),
            Err(Refusal::TypeNotAllowed)
        );
        assert_eq!(
            check_type(None, sniff(b"MZ\x90\x00"), &allowed),
            Err(Refusal::TypeNotAllowed)
        );
        let mp4 = b"\0\0\0\x18ftypisom\0\0\x02\0";
        assert_eq!(
            check_type(Some("video/mp4"), sniff(mp4), &allowed),
            Ok("video/mp4")
        );
    }

    #[test]
    fn path_traversal_names_are_refused_and_odd_characters_replaced() {
        assert_eq!(
            safe_file_name("../../etc/passwd.jpg"),
            Err(Refusal::UnsafeFileName)
        );
        assert_eq!(safe_file_name("C:\\boot.ini"), Err(Refusal::UnsafeFileName));
        assert_eq!(safe_file_name(".htaccess"), Err(Refusal::UnsafeFileName));
        assert_eq!(
            safe_file_name("site plan <v2>.pdf").as_deref(),
            Ok("site plan _v2_.pdf")
        );
    }

    /// A JPEG with an EXIF block holding GPS 48°51'29.6"N 2°17'40.2"E (big-endian TIFF).
    fn jpeg_with_gps() -> Vec<u8> {
        let mut tiff = Vec::new();
        tiff.extend_from_slice(b"MM\0\x2a\0\0\0\x08");
        // IFD0 at 8: one entry, GPS IFD pointer → 26.
        tiff.extend_from_slice(&1_u16.to_be_bytes());
        tiff.extend_from_slice(&[0x88, 0x25, 0, 4, 0, 0, 0, 1, 0, 0, 0, 26]);
        tiff.extend_from_slice(&0_u32.to_be_bytes());
        // GPS IFD at 26: 4 entries; rationals after it at 26 + 2 + 48 + 4 = 80.
        tiff.extend_from_slice(&4_u16.to_be_bytes());
        tiff.extend_from_slice(&[0, 1, 0, 2, 0, 0, 0, 2, b'N', 0, 0, 0]);
        tiff.extend_from_slice(&[0, 2, 0, 5, 0, 0, 0, 3, 0, 0, 0, 80]);
        tiff.extend_from_slice(&[0, 3, 0, 2, 0, 0, 0, 2, b'E', 0, 0, 0]);
        tiff.extend_from_slice(&[0, 4, 0, 5, 0, 0, 0, 3, 0, 0, 0, 104]);
        tiff.extend_from_slice(&0_u32.to_be_bytes());
        for (n, d) in [(48, 1), (51, 1), (296, 10), (2, 1), (17, 1), (402, 10)] {
            tiff.extend_from_slice(&(n as u32).to_be_bytes());
            tiff.extend_from_slice(&(d as u32).to_be_bytes());
        }
        let mut app1 = b"Exif\0\0".to_vec();
        app1.extend_from_slice(&tiff);
        let mut jpeg = vec![0xFF, 0xD8, 0xFF, 0xE1];
        jpeg.extend_from_slice(&u16::try_from(app1.len() + 2).expect("small").to_be_bytes());
        jpeg.extend_from_slice(&app1);
        jpeg.extend_from_slice(&[0xFF, 0xDA, 0, 2]);
        jpeg
    }

    #[test]
    fn the_gps_position_of_a_photo_is_read_from_its_exif() {
        let point = exif_gps(&jpeg_with_gps()).expect("gps");
        assert!((point.latitude - 48.858_222).abs() < 1e-5, "{point:?}");
        assert!((point.longitude - 2.294_5).abs() < 1e-5, "{point:?}");
        assert_eq!(point.to_field(), "48.858222,2.294500");
        assert_eq!(exif_gps(&[0xFF, 0xD8, 0xFF, 0xDA, 0, 2]), None);
        assert_eq!(exif_gps(b"%PDF-1.7"), None);
    }

    #[test]
    fn a_burst_receipt_lists_every_filed_item() {
        let items: Vec<FiledItem> = (1..=3)
            .map(|i| FiledItem {
                asset: format!("SIM{i}"),
                folder: "Projects/Bridge/Field".into(),
                kind: "photo".into(),
            })
            .collect();
        let text = receipt_text(&items);
        assert!(
            text.starts_with("Thank you, we received 3 files:"),
            "{text}"
        );
        for i in 1..=3 {
            assert!(text.contains(&format!("photo SIM{i} in Projects/Bridge/Field")));
        }
        assert_eq!(
            receipt_template_values(&items),
            [
                "3 files".to_owned(),
                "Projects/Bridge/Field".to_owned(),
                "SIM1, SIM2, SIM3".to_owned()
            ]
        );
        assert_eq!(
            receipt_text(&items[..1]),
            "Thank you, we received your photo and filed it in Projects/Bridge/Field as SIM1."
        );
    }
}

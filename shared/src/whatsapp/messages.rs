//! Outgoing Cloud API messages: typed builders, Meta's limits checked before anything is sent, and
//! the exact JSON bodies of `POST /{version}/{phone-number-id}/messages`.

use serde::{Deserialize, Serialize};
use serde_json::{Map, Value, json};
use std::fmt;

/// A pre-send check failed; `field` is the JSON path of the offending value.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ValidationError {
    /// A text is longer than Meta allows (counted in characters).
    #[error("{field} is {len} characters long; the limit is {max}")]
    TooLong {
        /// Path of the value.
        field: String,
        /// Its length.
        len: usize,
        /// Meta's limit.
        max: usize,
    },
    /// A required text is empty.
    #[error("{field} must not be empty")]
    Empty {
        /// Path of the value.
        field: String,
    },
    /// A list has too few or too many items.
    #[error("{field} has {count} items; between {min} and {max} are allowed")]
    Count {
        /// Path of the list.
        field: String,
        /// Items present.
        count: usize,
        /// Fewest allowed.
        min: usize,
        /// Most allowed.
        max: usize,
    },
    /// Two items that must be unique are not.
    #[error("{field} values must be unique")]
    Duplicate {
        /// Path of the list.
        field: String,
    },
    /// Any other rule.
    #[error("{field}: {problem}")]
    Invalid {
        /// Path of the value.
        field: String,
        /// The rule broken.
        problem: &'static str,
    },
}

/// Meta's limits (NOTES §4.2), in characters unless stated.
pub mod limits {
    /// Text message body.
    pub const TEXT_BODY: usize = 4096;
    /// Media caption (image, video, document).
    pub const CAPTION: usize = 1024;
    /// Reply buttons per message.
    pub const REPLY_BUTTONS: usize = 3;
    /// Reply button title.
    pub const BUTTON_TITLE: usize = 20;
    /// Reply button id.
    pub const BUTTON_ID: usize = 256;
    /// Interactive body of a reply-button message.
    pub const BUTTONS_BODY: usize = 1024;
    /// Interactive body of a list message.
    pub const LIST_BODY: usize = 4096;
    /// Interactive header text and footer.
    pub const HEADER_TEXT: usize = 60;
    /// Interactive footer.
    pub const FOOTER: usize = 60;
    /// List button label.
    pub const LIST_BUTTON: usize = 20;
    /// List sections.
    pub const LIST_SECTIONS: usize = 10;
    /// List rows across all sections.
    pub const LIST_ROWS: usize = 10;
    /// List section title.
    pub const SECTION_TITLE: usize = 24;
    /// List row id.
    pub const ROW_ID: usize = 200;
    /// List row title.
    pub const ROW_TITLE: usize = 24;
    /// List row description.
    pub const ROW_DESCRIPTION: usize = 72;
    /// Template header text parameter.
    pub const TEMPLATE_HEADER_TEXT: usize = 60;
    /// Named template parameter name.
    pub const PARAMETER_NAME: usize = 20;
    /// `biz_opaque_callback_data`, in bytes.
    pub const CALLBACK_DATA_BYTES: usize = 512;
    /// Template buttons (index 0..10).
    pub const TEMPLATE_BUTTONS: u8 = 10;
    /// Alphanumerics after the country code of a business-scoped user id.
    pub const BSUID_BODY: usize = 128;
}

fn check_len(field: impl fmt::Display, value: &str, max: usize) -> Result<(), ValidationError> {
    let len = value.chars().count();
    if len > max {
        return Err(ValidationError::TooLong {
            field: field.to_string(),
            len,
            max,
        });
    }
    Ok(())
}

fn check_text(field: impl fmt::Display, value: &str, max: usize) -> Result<(), ValidationError> {
    if value.trim().is_empty() {
        return Err(ValidationError::Empty {
            field: field.to_string(),
        });
    }
    check_len(field, value, max)
}

fn check_count(
    field: impl fmt::Display,
    count: usize,
    min: usize,
    max: usize,
) -> Result<(), ValidationError> {
    if count < min || count > max {
        return Err(ValidationError::Count {
            field: field.to_string(),
            count,
            min,
            max,
        });
    }
    Ok(())
}

fn check_unique<'a>(
    field: &str,
    values: impl Iterator<Item = &'a str>,
) -> Result<(), ValidationError> {
    let mut seen = std::collections::HashSet::new();
    for value in values {
        if !seen.insert(value) {
            return Err(ValidationError::Duplicate {
                field: field.to_owned(),
            });
        }
    }
    Ok(())
}

fn invalid(field: &str, problem: &'static str) -> ValidationError {
    ValidationError::Invalid {
        field: field.to_owned(),
        problem,
    }
}

/// Who a message goes to.
#[derive(Clone, PartialEq, Eq)]
pub enum Recipient {
    /// A phone number in international form, kept as `+` and digits.
    Phone(String),
    /// A business-scoped user id (`US.1349…`), for users known only by username.
    UserId(String),
}

impl fmt::Debug for Recipient {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        // Recipients are personal data; their Debug form shows only the kind.
        match self {
            Self::Phone(_) => f.write_str("Recipient::Phone(<redacted>)"),
            Self::UserId(_) => f.write_str("Recipient::UserId(<redacted>)"),
        }
    }
}

impl Recipient {
    /// A phone number; `+`, spaces, hyphens and parentheses are accepted and dropped.
    pub fn phone(number: &str) -> Result<Self, ValidationError> {
        if !number
            .chars()
            .all(|c| c.is_ascii_digit() || matches!(c, '+' | ' ' | '-' | '(' | ')'))
        {
            return Err(invalid(
                "to",
                "a phone number holds digits and + - ( ) only",
            ));
        }
        let digits: String = number.chars().filter(char::is_ascii_digit).collect();
        // E.164: at most 15 digits, country code included.
        if !(7..=15).contains(&digits.len()) {
            return Err(invalid("to", "a phone number has 7 to 15 digits"));
        }
        Ok(Self::Phone(format!("+{digits}")))
    }

    /// A business-scoped user id: country code, `.`, optionally `ENT.`, then up to 128 alphanumerics.
    pub fn user_id(bsuid: &str) -> Result<Self, ValidationError> {
        let parts: Vec<&str> = bsuid.split('.').collect();
        let country_ok = |c: &str| c.len() == 2 && c.chars().all(|c| c.is_ascii_uppercase());
        let body_ok = |b: &str| {
            !b.is_empty()
                && b.len() <= limits::BSUID_BODY
                && b.chars().all(|c| c.is_ascii_alphanumeric())
        };
        let valid = match parts.as_slice() {
            [country, body] => country_ok(country) && body_ok(body),
            [country, "ENT", body] => country_ok(country) && body_ok(body),
            _ => false,
        };
        if !valid {
            return Err(invalid(
                "recipient",
                "a business-scoped user id is CC.<alphanumerics>",
            ));
        }
        Ok(Self::UserId(bsuid.to_owned()))
    }
}

/// Media kinds the Cloud API sends and receives.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum MediaKind {
    /// JPEG or PNG, 5 MB.
    Image,
    /// MP4 or 3GPP, 16 MB.
    Video,
    /// AAC, AMR, MP3, MP4 audio or OGG/Opus, 16 MB.
    Audio,
    /// PDF, Office, plain text, 100 MB.
    Document,
    /// WebP, 500 KB.
    Sticker,
}

impl MediaKind {
    /// The `type` value and JSON key.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Image => "image",
            Self::Video => "video",
            Self::Audio => "audio",
            Self::Document => "document",
            Self::Sticker => "sticker",
        }
    }

    /// Parses a `type` value.
    pub fn parse(value: &str) -> Option<Self> {
        Some(match value {
            "image" => Self::Image,
            "video" => Self::Video,
            "audio" => Self::Audio,
            "document" => Self::Document,
            "sticker" => Self::Sticker,
            _ => return None,
        })
    }

    /// Meta's size limit for this kind (NOTES §3.2), in bytes (MB read as MiB, to never refuse what Meta takes).
    pub fn max_bytes(self) -> u64 {
        const MIB: u64 = 1024 * 1024;
        match self {
            Self::Image => 5 * MIB,
            Self::Video | Self::Audio => 16 * MIB,
            Self::Document => 100 * MIB,
            Self::Sticker => 500 * 1024,
        }
    }

    /// MIME types Meta accepts for this kind (parameters such as `; codecs=opus` ignored).
    pub fn accepts_mime(self, mime: &str) -> bool {
        let essence = mime.split(';').next().unwrap_or("").trim();
        let allowed: &[&str] = match self {
            Self::Image => &["image/jpeg", "image/png"],
            Self::Video => &["video/mp4", "video/3gpp"],
            Self::Audio => &[
                "audio/aac",
                "audio/amr",
                "audio/mpeg",
                "audio/mp4",
                "audio/ogg",
            ],
            Self::Document => &[
                "text/plain",
                "application/pdf",
                "application/msword",
                "application/vnd.openxmlformats-officedocument.wordprocessingml.document",
                "application/vnd.ms-excel",
                "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet",
                "application/vnd.ms-powerpoint",
                "application/vnd.openxmlformats-officedocument.presentationml.presentation",
            ],
            Self::Sticker => &["image/webp"],
        };
        allowed.contains(&essence)
    }
}

/// Where media comes from: an uploaded media id or a public link.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum MediaSource {
    /// A media id returned by an upload (preferred: no refetch by Meta).
    Id(String),
    /// An http(s) URL Meta fetches.
    Link(String),
}

impl MediaSource {
    fn validate(&self, field: &str) -> Result<(), ValidationError> {
        match self {
            Self::Id(id) if id.trim().is_empty() => Err(ValidationError::Empty {
                field: format!("{field}.id"),
            }),
            Self::Link(link) if !(link.starts_with("https://") || link.starts_with("http://")) => {
                Err(invalid(&format!("{field}.link"), "must be an http(s) URL"))
            }
            _ => Ok(()),
        }
    }

    fn to_json(&self) -> Map<String, Value> {
        let mut map = Map::new();
        match self {
            Self::Id(id) => map.insert("id".into(), json!(id)),
            Self::Link(link) => map.insert("link".into(), json!(link)),
        };
        map
    }
}

/// An image, video, audio, document or sticker message.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct MediaMessage {
    /// Which kind.
    pub kind: MediaKind,
    /// Id or link.
    pub source: MediaSource,
    /// Caption (image, video and document only).
    pub caption: Option<String>,
    /// File name with extension (document only; sets the icon).
    pub filename: Option<String>,
}

/// A template parameter value.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ParamValue {
    /// Plain text.
    Text(String),
    /// An amount with a fallback text.
    Currency {
        /// Shown where the amount cannot be localised.
        fallback_value: String,
        /// ISO 4217 code.
        code: String,
        /// Amount times 1000.
        amount_1000: i64,
    },
    /// A date shown as its fallback text.
    DateTime {
        /// The text shown.
        fallback_value: String,
    },
}

/// A body or header text parameter; `name` set for templates with named variables.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct TemplateParam {
    /// `parameter_name` for named templates; `None` for positional ones.
    pub name: Option<String>,
    /// The value.
    pub value: ParamValue,
}

impl TemplateParam {
    /// A positional text parameter.
    pub fn text(text: impl Into<String>) -> Self {
        Self {
            name: None,
            value: ParamValue::Text(text.into()),
        }
    }

    /// A named text parameter.
    pub fn named(name: impl Into<String>, text: impl Into<String>) -> Self {
        Self {
            name: Some(name.into()),
            value: ParamValue::Text(text.into()),
        }
    }

    fn to_json(&self) -> Value {
        let mut map = Map::new();
        match &self.value {
            ParamValue::Text(text) => {
                map.insert("type".into(), json!("text"));
                map.insert("text".into(), json!(text));
            }
            ParamValue::Currency {
                fallback_value,
                code,
                amount_1000,
            } => {
                map.insert("type".into(), json!("currency"));
                map.insert(
                    "currency".into(),
                    json!({"fallback_value": fallback_value, "code": code, "amount_1000": amount_1000}),
                );
            }
            ParamValue::DateTime { fallback_value } => {
                map.insert("type".into(), json!("date_time"));
                map.insert(
                    "date_time".into(),
                    json!({ "fallback_value": fallback_value }),
                );
            }
        }
        if let Some(name) = &self.name {
            map.insert("parameter_name".into(), json!(name));
        }
        Value::Object(map)
    }
}

/// A template header parameter.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum TemplateHeader {
    /// A text variable (max 60 characters).
    Text(TemplateParam),
    /// An image, video or document header.
    Media {
        /// Image, video or document.
        kind: MediaKind,
        /// Id or link.
        source: MediaSource,
        /// Document file name.
        filename: Option<String>,
    },
}

/// A template button that carries a variable.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum TemplateButton {
    /// Quick reply: `payload` comes back in the `button` webhook when tapped.
    QuickReply {
        /// 0-based position of the button in the template.
        index: u8,
        /// Returned in the webhook.
        payload: String,
    },
    /// URL button with a dynamic suffix.
    Url {
        /// 0-based position of the button in the template.
        index: u8,
        /// Appended to the template's URL.
        suffix: String,
    },
}

impl TemplateButton {
    fn index(&self) -> u8 {
        match self {
            Self::QuickReply { index, .. } | Self::Url { index, .. } => *index,
        }
    }
}

/// A template message.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Template {
    /// Template name as approved.
    pub name: String,
    /// Exact approved locale (`en_US`, not `en`, when that is what was approved).
    pub language: String,
    /// Header variable, if the template has one.
    pub header: Option<TemplateHeader>,
    /// Body variables in order (positional) or by name.
    pub body: Vec<TemplateParam>,
    /// Buttons with variables.
    pub buttons: Vec<TemplateButton>,
}

/// The header of an interactive message.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum InteractiveHeader {
    /// Text, max 60 characters.
    Text(String),
    /// Image, video or document.
    Media(MediaKind, MediaSource),
}

/// One reply button.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ReplyButton {
    /// Returned in the `button_reply` webhook; max 256, unique.
    pub id: String,
    /// Label; max 20, unique.
    pub title: String,
}

/// An interactive message with up to three reply buttons.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ReplyButtons {
    /// Optional header.
    pub header: Option<InteractiveHeader>,
    /// Body text, max 1024.
    pub body: String,
    /// Footer, max 60.
    pub footer: Option<String>,
    /// One to three buttons.
    pub buttons: Vec<ReplyButton>,
}

/// A list row.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ListRow {
    /// Returned in the `list_reply` webhook; max 200.
    pub id: String,
    /// Max 24.
    pub title: String,
    /// Max 72.
    pub description: Option<String>,
}

/// A list section.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ListSection {
    /// Max 24; required when there is more than one section.
    pub title: Option<String>,
    /// Rows of this section.
    pub rows: Vec<ListRow>,
}

/// An interactive list message.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ListMessage {
    /// Optional text header, max 60.
    pub header: Option<String>,
    /// Body, max 4096.
    pub body: String,
    /// Footer, max 60.
    pub footer: Option<String>,
    /// The label of the button that opens the list, max 20.
    pub button: String,
    /// 1 to 10 sections, at most 10 rows in all.
    pub sections: Vec<ListSection>,
}

/// What a message says.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum Content {
    /// Free-form text.
    Text {
        /// Max 4096 characters.
        body: String,
        /// Render a link preview of the first URL.
        preview_url: bool,
    },
    /// Image, video, audio, document or sticker.
    Media(MediaMessage),
    /// An approved template (the only kind allowed outside the 24-hour window).
    Template(Template),
    /// Reply buttons.
    Buttons(ReplyButtons),
    /// A list.
    List(ListMessage),
    /// A reaction to a message; an empty emoji removes it.
    Reaction {
        /// The wamid reacted to.
        message_id: String,
        /// The emoji.
        emoji: String,
    },
    /// A location pin.
    Location {
        /// Degrees, -90..=90.
        latitude: f64,
        /// Degrees, -180..=180.
        longitude: f64,
        /// Place name.
        name: Option<String>,
        /// Address.
        address: Option<String>,
    },
}

impl Content {
    /// The message `type`.
    pub fn type_name(&self) -> &'static str {
        match self {
            Self::Text { .. } => "text",
            Self::Media(media) => media.kind.as_str(),
            Self::Template(_) => "template",
            Self::Buttons(_) | Self::List(_) => "interactive",
            Self::Reaction { .. } => "reaction",
            Self::Location { .. } => "location",
        }
    }

    /// Templates are the only messages Meta delivers outside the 24-hour window.
    pub fn is_template(&self) -> bool {
        matches!(self, Self::Template(_))
    }
}

/// A message to send.
#[derive(Debug, Clone, PartialEq)]
pub struct OutgoingMessage {
    /// Phone number or business-scoped user id.
    pub to: Recipient,
    /// Quote-reply to this wamid.
    pub reply_to: Option<String>,
    /// Echoed in status webhooks (max 512 bytes); ties statuses back to what was sent.
    pub callback_data: Option<String>,
    /// The content.
    pub content: Content,
}

impl OutgoingMessage {
    /// A message without reply context or callback data.
    pub fn new(to: Recipient, content: Content) -> Self {
        Self {
            to,
            reply_to: None,
            callback_data: None,
            content,
        }
    }

    /// A text message.
    pub fn text(to: Recipient, body: impl Into<String>) -> Self {
        Self::new(
            to,
            Content::Text {
                body: body.into(),
                preview_url: false,
            },
        )
    }

    /// Checks every limit Meta enforces on this message.
    pub fn validate(&self) -> Result<(), ValidationError> {
        if let Some(reply_to) = &self.reply_to {
            if matches!(self.content, Content::Reaction { .. }) {
                return Err(invalid("context", "reactions cannot quote a message"));
            }
            check_text("context.message_id", reply_to, usize::MAX)?;
        }
        if let Some(data) = &self.callback_data
            && data.len() > limits::CALLBACK_DATA_BYTES
        {
            return Err(ValidationError::TooLong {
                field: "biz_opaque_callback_data".into(),
                len: data.len(),
                max: limits::CALLBACK_DATA_BYTES,
            });
        }
        match &self.content {
            Content::Text { body, .. } => check_text("text.body", body, limits::TEXT_BODY),
            Content::Media(media) => validate_media(media),
            Content::Template(template) => validate_template(template),
            Content::Buttons(buttons) => validate_buttons(buttons),
            Content::List(list) => validate_list(list),
            Content::Reaction { message_id, .. } => {
                check_text("reaction.message_id", message_id, usize::MAX)
            }
            Content::Location {
                latitude,
                longitude,
                ..
            } => {
                if !(-90.0..=90.0).contains(latitude) {
                    return Err(invalid("location.latitude", "must be within -90..=90"));
                }
                if !(-180.0..=180.0).contains(longitude) {
                    return Err(invalid("location.longitude", "must be within -180..=180"));
                }
                Ok(())
            }
        }
    }

    /// Validates, then renders the request body.
    pub fn body(&self) -> Result<Value, ValidationError> {
        self.validate()?;
        let mut body = Map::new();
        body.insert("messaging_product".into(), json!("whatsapp"));
        body.insert("recipient_type".into(), json!("individual"));
        match &self.to {
            Recipient::Phone(phone) => body.insert("to".into(), json!(phone)),
            Recipient::UserId(id) => body.insert("recipient".into(), json!(id)),
        };
        let kind = self.content.type_name();
        body.insert("type".into(), json!(kind));
        body.insert(kind.into(), content_json(&self.content));
        if let Some(reply_to) = &self.reply_to {
            body.insert("context".into(), json!({ "message_id": reply_to }));
        }
        if let Some(data) = &self.callback_data {
            body.insert("biz_opaque_callback_data".into(), json!(data));
        }
        Ok(Value::Object(body))
    }
}

/// The body that marks an inbound message (and the ones before it) as read, optionally showing
/// "typing…" for up to 25 seconds.
pub fn mark_read_body(message_id: &str, typing_indicator: bool) -> Result<Value, ValidationError> {
    check_text("message_id", message_id, usize::MAX)?;
    let mut body =
        json!({"messaging_product": "whatsapp", "status": "read", "message_id": message_id});
    if typing_indicator {
        body["typing_indicator"] = json!({"type": "text"});
    }
    Ok(body)
}

fn validate_media(media: &MediaMessage) -> Result<(), ValidationError> {
    let kind = media.kind.as_str();
    media.source.validate(kind)?;
    if let Some(caption) = &media.caption {
        if matches!(media.kind, MediaKind::Audio | MediaKind::Sticker) {
            return Err(invalid(
                &format!("{kind}.caption"),
                "audio and stickers take no caption",
            ));
        }
        check_len(format!("{kind}.caption"), caption, limits::CAPTION)?;
    }
    if let Some(filename) = &media.filename {
        if media.kind != MediaKind::Document {
            return Err(invalid(
                &format!("{kind}.filename"),
                "only documents take a file name",
            ));
        }
        check_text("document.filename", filename, 240)?;
    }
    Ok(())
}

fn validate_param(field: &str, param: &TemplateParam) -> Result<(), ValidationError> {
    if let Some(name) = &param.name {
        check_text(
            format!("{field}.parameter_name"),
            name,
            limits::PARAMETER_NAME,
        )?;
        if !name
            .chars()
            .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '_')
        {
            return Err(invalid(
                &format!("{field}.parameter_name"),
                "use lowercase letters, digits and _",
            ));
        }
    }
    match &param.value {
        ParamValue::Text(text) => check_text(format!("{field}.text"), text, usize::MAX),
        ParamValue::Currency {
            fallback_value,
            code,
            ..
        } => {
            check_text(
                format!("{field}.currency.fallback_value"),
                fallback_value,
                usize::MAX,
            )?;
            if code.len() != 3 || !code.chars().all(|c| c.is_ascii_uppercase()) {
                return Err(invalid(
                    &format!("{field}.currency.code"),
                    "an ISO 4217 code",
                ));
            }
            Ok(())
        }
        ParamValue::DateTime { fallback_value } => check_text(
            format!("{field}.date_time.fallback_value"),
            fallback_value,
            usize::MAX,
        ),
    }
}

fn validate_template(template: &Template) -> Result<(), ValidationError> {
    check_text("template.name", &template.name, 512)?;
    check_text("template.language.code", &template.language, 15)?;
    let mut params: Vec<&TemplateParam> = template.body.iter().collect();
    if let Some(header) = &template.header {
        match header {
            TemplateHeader::Text(param) => {
                validate_param("template.header", param)?;
                if let ParamValue::Text(text) = &param.value {
                    check_len("template.header.text", text, limits::TEMPLATE_HEADER_TEXT)?;
                }
                params.push(param);
            }
            TemplateHeader::Media {
                kind,
                source,
                filename,
            } => {
                if !matches!(
                    kind,
                    MediaKind::Image | MediaKind::Video | MediaKind::Document
                ) {
                    return Err(invalid(
                        "template.header",
                        "a media header is an image, video or document",
                    ));
                }
                source.validate("template.header")?;
                if filename.is_some() && *kind != MediaKind::Document {
                    return Err(invalid(
                        "template.header.filename",
                        "only documents take a file name",
                    ));
                }
            }
        }
    }
    for (i, param) in template.body.iter().enumerate() {
        validate_param(&format!("template.body[{i}]"), param)?;
    }
    let named = params.iter().filter(|p| p.name.is_some()).count();
    if named != 0 && named != params.len() {
        return Err(invalid(
            "template",
            "named and positional parameters cannot be mixed",
        ));
    }
    check_unique(
        "template.body.parameter_name",
        params.iter().filter_map(|p| p.name.as_deref()),
    )?;
    let mut indexes = std::collections::HashSet::new();
    for (i, button) in template.buttons.iter().enumerate() {
        let field = format!("template.buttons[{i}]");
        if button.index() >= limits::TEMPLATE_BUTTONS {
            return Err(invalid(&field, "button index is 0 to 9"));
        }
        if !indexes.insert(button.index()) {
            return Err(ValidationError::Duplicate {
                field: "template.buttons.index".into(),
            });
        }
        match button {
            TemplateButton::QuickReply { payload, .. } => {
                check_text(format!("{field}.payload"), payload, 1000)?;
            }
            TemplateButton::Url { suffix, .. } => {
                check_text(format!("{field}.text"), suffix, 2000)?;
            }
        }
    }
    Ok(())
}

fn header_json(header: &InteractiveHeader) -> Value {
    match header {
        InteractiveHeader::Text(text) => json!({"type": "text", "text": text}),
        InteractiveHeader::Media(kind, source) => {
            json!({"type": kind.as_str(), kind.as_str(): Value::Object(source.to_json())})
        }
    }
}

fn validate_header(header: &InteractiveHeader) -> Result<(), ValidationError> {
    match header {
        InteractiveHeader::Text(text) => {
            check_text("interactive.header.text", text, limits::HEADER_TEXT)
        }
        InteractiveHeader::Media(kind, source) => {
            if !matches!(
                kind,
                MediaKind::Image | MediaKind::Video | MediaKind::Document
            ) {
                return Err(invalid(
                    "interactive.header",
                    "a media header is an image, video or document",
                ));
            }
            source.validate("interactive.header")
        }
    }
}

fn validate_buttons(message: &ReplyButtons) -> Result<(), ValidationError> {
    if let Some(header) = &message.header {
        validate_header(header)?;
    }
    check_text("interactive.body.text", &message.body, limits::BUTTONS_BODY)?;
    if let Some(footer) = &message.footer {
        check_text("interactive.footer.text", footer, limits::FOOTER)?;
    }
    check_count(
        "interactive.action.buttons",
        message.buttons.len(),
        1,
        limits::REPLY_BUTTONS,
    )?;
    for (i, button) in message.buttons.iter().enumerate() {
        let field = format!("interactive.action.buttons[{i}].reply");
        check_text(format!("{field}.id"), &button.id, limits::BUTTON_ID)?;
        check_text(
            format!("{field}.title"),
            &button.title,
            limits::BUTTON_TITLE,
        )?;
    }
    check_unique(
        "interactive.action.buttons.reply.id",
        message.buttons.iter().map(|b| b.id.as_str()),
    )?;
    check_unique(
        "interactive.action.buttons.reply.title",
        message.buttons.iter().map(|b| b.title.as_str()),
    )
}

fn validate_list(list: &ListMessage) -> Result<(), ValidationError> {
    if let Some(header) = &list.header {
        check_text("interactive.header.text", header, limits::HEADER_TEXT)?;
    }
    check_text("interactive.body.text", &list.body, limits::LIST_BODY)?;
    if let Some(footer) = &list.footer {
        check_text("interactive.footer.text", footer, limits::FOOTER)?;
    }
    check_text(
        "interactive.action.button",
        &list.button,
        limits::LIST_BUTTON,
    )?;
    check_count(
        "interactive.action.sections",
        list.sections.len(),
        1,
        limits::LIST_SECTIONS,
    )?;
    let rows: usize = list.sections.iter().map(|s| s.rows.len()).sum();
    check_count(
        "interactive.action.sections[].rows",
        rows,
        1,
        limits::LIST_ROWS,
    )?;
    for (s, section) in list.sections.iter().enumerate() {
        let field = format!("interactive.action.sections[{s}]");
        match &section.title {
            Some(title) => check_text(format!("{field}.title"), title, limits::SECTION_TITLE)?,
            None if list.sections.len() > 1 => {
                return Err(ValidationError::Empty {
                    field: format!("{field}.title"),
                });
            }
            None => {}
        }
        for (r, row) in section.rows.iter().enumerate() {
            let field = format!("{field}.rows[{r}]");
            check_text(format!("{field}.id"), &row.id, limits::ROW_ID)?;
            check_text(format!("{field}.title"), &row.title, limits::ROW_TITLE)?;
            if let Some(description) = &row.description {
                check_len(
                    format!("{field}.description"),
                    description,
                    limits::ROW_DESCRIPTION,
                )?;
            }
        }
    }
    check_unique(
        "interactive.action.sections.rows.id",
        list.sections
            .iter()
            .flat_map(|s| s.rows.iter().map(|r| r.id.as_str())),
    )
}

fn content_json(content: &Content) -> Value {
    match content {
        Content::Text { body, preview_url } => {
            let mut text = json!({ "body": body });
            if *preview_url {
                text["preview_url"] = json!(true);
            }
            text
        }
        Content::Media(media) => {
            let mut map = media.source.to_json();
            if let Some(caption) = &media.caption {
                map.insert("caption".into(), json!(caption));
            }
            if let Some(filename) = &media.filename {
                map.insert("filename".into(), json!(filename));
            }
            Value::Object(map)
        }
        Content::Template(template) => template_json(template),
        Content::Buttons(message) => {
            let mut interactive = json!({
                "type": "button",
                "body": {"text": message.body},
                "action": {"buttons": message.buttons.iter().map(|b| json!({
                    "type": "reply", "reply": {"id": b.id, "title": b.title}
                })).collect::<Vec<_>>()},
            });
            if let Some(header) = &message.header {
                interactive["header"] = header_json(header);
            }
            if let Some(footer) = &message.footer {
                interactive["footer"] = json!({ "text": footer });
            }
            interactive
        }
        Content::List(list) => {
            let sections: Vec<Value> = list
                .sections
                .iter()
                .map(|section| {
                    let rows: Vec<Value> = section
                        .rows
                        .iter()
                        .map(|row| {
                            let mut value = json!({"id": row.id, "title": row.title});
                            if let Some(description) = &row.description {
                                value["description"] = json!(description);
                            }
                            value
                        })
                        .collect();
                    let mut value = json!({ "rows": rows });
                    if let Some(title) = &section.title {
                        value["title"] = json!(title);
                    }
                    value
                })
                .collect();
            let mut interactive = json!({
                "type": "list",
                "body": {"text": list.body},
                "action": {"button": list.button, "sections": sections},
            });
            if let Some(header) = &list.header {
                interactive["header"] = json!({"type": "text", "text": header});
            }
            if let Some(footer) = &list.footer {
                interactive["footer"] = json!({ "text": footer });
            }
            interactive
        }
        Content::Reaction { message_id, emoji } => {
            json!({"message_id": message_id, "emoji": emoji})
        }
        Content::Location {
            latitude,
            longitude,
            name,
            address,
        } => {
            let mut location = json!({"latitude": latitude, "longitude": longitude});
            if let Some(name) = name {
                location["name"] = json!(name);
            }
            if let Some(address) = address {
                location["address"] = json!(address);
            }
            location
        }
    }
}

fn template_json(template: &Template) -> Value {
    let mut components = Vec::new();
    if let Some(header) = &template.header {
        let parameter = match header {
            TemplateHeader::Text(param) => param.to_json(),
            TemplateHeader::Media {
                kind,
                source,
                filename,
            } => {
                let mut media = source.to_json();
                if let Some(filename) = filename {
                    media.insert("filename".into(), json!(filename));
                }
                json!({"type": kind.as_str(), kind.as_str(): Value::Object(media)})
            }
        };
        components.push(json!({"type": "header", "parameters": [parameter]}));
    }
    if !template.body.is_empty() {
        components.push(json!({
            "type": "body",
            "parameters": template.body.iter().map(TemplateParam::to_json).collect::<Vec<_>>(),
        }));
    }
    for button in &template.buttons {
        components.push(match button {
            TemplateButton::QuickReply { index, payload } => json!({
                "type": "button", "sub_type": "quick_reply", "index": index.to_string(),
                "parameters": [{"type": "payload", "payload": payload}],
            }),
            TemplateButton::Url { index, suffix } => json!({
                "type": "button", "sub_type": "url", "index": index.to_string(),
                "parameters": [{"type": "text", "text": suffix}],
            }),
        });
    }
    let mut value = json!({"name": template.name, "language": {"code": template.language}});
    if !components.is_empty() {
        value["components"] = Value::Array(components);
    }
    value
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A request body of the repository's fixtures (`fixtures/whatsapp/send/`).
    fn fixture(name: &str) -> Value {
        let path = format!(
            "{}/../fixtures/whatsapp/send/{name}",
            env!("CARGO_MANIFEST_DIR")
        );
        let raw = std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{path}: {e}"));
        serde_json::from_str(&raw).unwrap_or_else(|e| panic!("{path}: {e}"))
    }

    /// The fixtures' user, written the way a person types it.
    fn to() -> Recipient {
        Recipient::phone("+1 (312) 555-0147").expect("valid")
    }

    fn buttons(n: usize) -> ReplyButtons {
        ReplyButtons {
            header: Some(InteractiveHeader::Text("Order #4411".into())),
            body: "Your order is ready. What would you like to do?".into(),
            footer: Some("Example Shop".into()),
            buttons: (0..n)
                .map(|i| ReplyButton {
                    id: format!("b{i}"),
                    title: format!("Button {i}"),
                })
                .collect(),
        }
    }

    #[test]
    fn text_body_matches_the_documented_shape() {
        let message = OutgoingMessage::new(
            to(),
            Content::Text {
                body: "Your proofs are ready to review: https://example.com/p/7731".into(),
                preview_url: true,
            },
        );
        assert_eq!(message.body().expect("valid"), fixture("text-request.json"));
    }

    #[test]
    fn reply_with_context_matches_the_documented_shape() {
        let mut message = OutgoingMessage::text(to(), "Noted, we'll book the visit.");
        message.reply_to = Some("wamid.RklYVFVSRS5JTi5SRVBMWS4wMDAx".into());
        assert_eq!(
            message.body().expect("valid"),
            fixture("text-reply-with-context-request.json")
        );
    }

    #[test]
    fn media_bodies_match_the_documented_shapes() {
        let image = OutgoingMessage::new(
            to(),
            Content::Media(MediaMessage {
                kind: MediaKind::Image,
                source: MediaSource::Id("9300000000000001".into()),
                caption: Some("Your approved artwork".into()),
                filename: None,
            }),
        );
        assert_eq!(
            image.body().expect("valid"),
            fixture("image-by-id-request.json")
        );
        let document = OutgoingMessage::new(
            to(),
            Content::Media(MediaMessage {
                kind: MediaKind::Document,
                source: MediaSource::Link("https://files.example.com/briefs/7731.pdf".into()),
                caption: Some("Brief #7731".into()),
                filename: Some("brief-7731.pdf".into()),
            }),
        );
        assert_eq!(
            document.body().expect("valid"),
            fixture("document-by-link-request.json")
        );
    }

    #[test]
    fn template_bodies_match_the_documented_shapes() {
        let positional = Template {
            name: "proof_ready".into(),
            language: "en_GB".into(),
            header: Some(TemplateHeader::Media {
                kind: MediaKind::Document,
                source: MediaSource::Id("9300000000000002".into()),
                filename: Some("proof-7731.pdf".into()),
            }),
            body: vec![
                TemplateParam::text("Avery"),
                TemplateParam::text("#7731"),
                TemplateParam {
                    name: None,
                    value: ParamValue::Currency {
                        fallback_value: "$18.75".into(),
                        code: "USD".into(),
                        amount_1000: 18750,
                    },
                },
            ],
            buttons: vec![
                TemplateButton::Url {
                    index: 0,
                    suffix: "7731".into(),
                },
                TemplateButton::QuickReply {
                    index: 1,
                    payload: "PROOF_QUESTION_7731".into(),
                },
            ],
        };
        assert_eq!(
            OutgoingMessage::new(to(), Content::Template(positional))
                .body()
                .expect("valid"),
            fixture("template-request.json")
        );
        let named = Template {
            name: "visit_reminder".into(),
            language: "fr".into(),
            header: Some(TemplateHeader::Media {
                kind: MediaKind::Image,
                source: MediaSource::Link("https://cdn.example.com/visit-banner.png".into()),
                filename: None,
            }),
            body: vec![
                TemplateParam::named("first_name", "Avery"),
                TemplateParam::named("visit_time", "jeudi 14:30"),
            ],
            buttons: vec![],
        };
        assert_eq!(
            OutgoingMessage::new(to(), Content::Template(named))
                .body()
                .expect("valid"),
            fixture("template-named-params-image-header-request.json")
        );
    }

    #[test]
    fn interactive_bodies_match_the_documented_shapes() {
        let mut message = buttons(3);
        message.header = Some(InteractiveHeader::Text("Asset #7731".into()));
        message.body = "A new version is ready. Approve it?".into();
        message.footer = Some("Fixture Studio".into());
        for (button, (id, title)) in message.buttons.iter_mut().zip([
            ("asset-7731-approve", "Approve"),
            ("asset-7731-reject", "Reject"),
            ("asset-7731-comment", "Comment"),
        ]) {
            button.id = id.into();
            button.title = title.into();
        }
        assert_eq!(
            OutgoingMessage::new(to(), Content::Buttons(message))
                .body()
                .expect("valid"),
            fixture("interactive-reply-buttons-request.json")
        );
        let row = |id: &str, title: &str, description: Option<&str>| ListRow {
            id: id.into(),
            title: title.into(),
            description: description.map(Into::into),
        };
        let list = ListMessage {
            header: Some("Regions".into()),
            body: "Which region should receive asset #7731?".into(),
            footer: Some("One choice only".into()),
            button: "Pick region".into(),
            sections: vec![
                ListSection {
                    title: Some("Domestic".into()),
                    rows: vec![
                        row(
                            "region_north",
                            "North region",
                            Some("Stores north of the river"),
                        ),
                        row(
                            "region_south",
                            "South region",
                            Some("Stores south of the river"),
                        ),
                    ],
                },
                ListSection {
                    title: Some("Export".into()),
                    rows: vec![row("region_eu", "Europe", None)],
                },
            ],
        };
        assert_eq!(
            OutgoingMessage::new(to(), Content::List(list))
                .body()
                .expect("valid"),
            fixture("interactive-list-request.json")
        );
    }

    #[test]
    fn mark_read_bodies_match_the_documented_shapes() {
        let id = "wamid.RklYVFVSRS5JTi5URVhULjAwMDE=";
        assert_eq!(
            mark_read_body(id, false).expect("valid"),
            fixture("mark-read-request.json")
        );
        assert_eq!(
            mark_read_body(id, true).expect("valid"),
            fixture("mark-read-typing-request.json")
        );
    }

    #[test]
    fn a_user_id_recipient_is_sent_as_recipient_not_to() {
        let to = Recipient::user_id("US.13491208655302741918").expect("valid");
        let body = OutgoingMessage::text(to, "hi").body().expect("valid");
        assert_eq!(body["recipient"], "US.13491208655302741918");
        assert!(body.get("to").is_none());
        assert!(Recipient::user_id("US.ENT.1181").is_ok());
        for bad in ["us.1", "US.", "USA.1", "US.12-3", "447700900123"] {
            assert!(Recipient::user_id(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn phone_numbers_are_normalised_and_checked() {
        assert_eq!(
            Recipient::phone("+44 (7700) 900-123").expect("valid"),
            Recipient::Phone("+447700900123".into())
        );
        assert!(Recipient::phone("call me").is_err());
        assert!(Recipient::phone("+1234567890123456").is_err());
        assert!(!format!("{:?}", to()).contains("5550147"));
    }

    #[test]
    fn text_longer_than_4096_characters_is_refused() {
        let ok = OutgoingMessage::text(to(), "é".repeat(4096));
        assert!(ok.validate().is_ok(), "limits count characters, not bytes");
        let long = OutgoingMessage::text(to(), "a".repeat(4097));
        assert_eq!(
            long.validate(),
            Err(ValidationError::TooLong {
                field: "text.body".into(),
                len: 4097,
                max: 4096
            })
        );
        assert!(OutgoingMessage::text(to(), "  ").validate().is_err());
    }

    #[test]
    fn reply_button_limits_are_enforced() {
        let check = |message: ReplyButtons| {
            OutgoingMessage::new(to(), Content::Buttons(message)).validate()
        };
        assert!(check(buttons(3)).is_ok());
        assert!(matches!(
            check(buttons(4)),
            Err(ValidationError::Count {
                count: 4,
                max: 3,
                ..
            })
        ));
        assert!(matches!(
            check(buttons(0)),
            Err(ValidationError::Count { .. })
        ));
        let mut long_title = buttons(1);
        long_title.buttons[0].title = "x".repeat(21);
        assert_eq!(
            check(long_title),
            Err(ValidationError::TooLong {
                field: "interactive.action.buttons[0].reply.title".into(),
                len: 21,
                max: 20
            })
        );
        let mut long_id = buttons(1);
        long_id.buttons[0].id = "x".repeat(257);
        assert!(matches!(
            check(long_id),
            Err(ValidationError::TooLong { max: 256, .. })
        ));
        let mut twins = buttons(2);
        twins.buttons[1].title = twins.buttons[0].title.clone();
        assert!(matches!(
            check(twins),
            Err(ValidationError::Duplicate { .. })
        ));
        let mut long_body = buttons(1);
        long_body.body = "x".repeat(1025);
        assert!(matches!(
            check(long_body),
            Err(ValidationError::TooLong { max: 1024, .. })
        ));
        let mut long_footer = buttons(1);
        long_footer.footer = Some("x".repeat(61));
        assert!(matches!(
            check(long_footer),
            Err(ValidationError::TooLong { max: 60, .. })
        ));
    }

    #[test]
    fn list_limits_are_enforced() {
        let list = |sections: usize, rows: usize| ListMessage {
            header: None,
            body: "Pick one".into(),
            footer: None,
            button: "Choose".into(),
            sections: (0..sections)
                .map(|s| ListSection {
                    title: Some(format!("S{s}")),
                    rows: (0..rows)
                        .map(|r| ListRow {
                            id: format!("{s}-{r}"),
                            title: format!("Row {r}"),
                            description: None,
                        })
                        .collect(),
                })
                .collect(),
        };
        let check = |l: ListMessage| OutgoingMessage::new(to(), Content::List(l)).validate();
        assert!(check(list(2, 5)).is_ok());
        assert!(matches!(
            check(list(2, 6)),
            Err(ValidationError::Count {
                count: 12,
                max: 10,
                ..
            })
        ));
        assert!(matches!(
            check(list(11, 0)),
            Err(ValidationError::Count { .. })
        ));
        let mut untitled = list(2, 1);
        untitled.sections[1].title = None;
        assert!(matches!(
            check(untitled),
            Err(ValidationError::Empty { .. })
        ));
        let mut long_row = list(1, 1);
        long_row.sections[0].rows[0].title = "x".repeat(25);
        assert!(matches!(
            check(long_row),
            Err(ValidationError::TooLong { max: 24, .. })
        ));
        let mut long_description = list(1, 1);
        long_description.sections[0].rows[0].description = Some("x".repeat(73));
        assert!(matches!(
            check(long_description),
            Err(ValidationError::TooLong { max: 72, .. })
        ));
        let mut long_button = list(1, 1);
        long_button.button = "x".repeat(21);
        assert!(matches!(
            check(long_button),
            Err(ValidationError::TooLong { max: 20, .. })
        ));
    }

    #[test]
    fn media_rules_are_enforced() {
        let media = |kind, caption: Option<&str>, filename: Option<&str>, source| {
            OutgoingMessage::new(
                to(),
                Content::Media(MediaMessage {
                    kind,
                    source,
                    caption: caption.map(Into::into),
                    filename: filename.map(Into::into),
                }),
            )
            .validate()
        };
        let id = || MediaSource::Id("1".into());
        assert!(media(MediaKind::Image, Some(&"x".repeat(1024)), None, id()).is_ok());
        assert!(matches!(
            media(MediaKind::Image, Some(&"x".repeat(1025)), None, id()),
            Err(ValidationError::TooLong { max: 1024, .. })
        ));
        assert!(media(MediaKind::Audio, Some("hi"), None, id()).is_err());
        assert!(media(MediaKind::Image, None, Some("a.png"), id()).is_err());
        assert!(
            media(
                MediaKind::Video,
                None,
                None,
                MediaSource::Link("ftp://x/y.mp4".into())
            )
            .is_err()
        );
    }

    #[test]
    fn template_rules_are_enforced() {
        let template = |body: Vec<TemplateParam>, buttons: Vec<TemplateButton>| {
            OutgoingMessage::new(
                to(),
                Content::Template(Template {
                    name: "t".into(),
                    language: "en_US".into(),
                    header: None,
                    body,
                    buttons,
                }),
            )
            .validate()
        };
        assert!(template(vec![TemplateParam::text("a")], vec![]).is_ok());
        assert!(
            template(
                vec![TemplateParam::named("a", "x"), TemplateParam::text("b")],
                vec![]
            )
            .is_err(),
            "mixed named and positional"
        );
        assert!(template(vec![TemplateParam::named("First", "x")], vec![]).is_err());
        assert!(template(vec![TemplateParam::text("")], vec![]).is_err());
        let quick = |index| TemplateButton::QuickReply {
            index,
            payload: "p".into(),
        };
        assert!(template(vec![], vec![quick(0), quick(1)]).is_ok());
        assert!(template(vec![], vec![quick(0), quick(0)]).is_err());
        assert!(template(vec![], vec![quick(10)]).is_err());
    }

    #[test]
    fn callback_data_and_reaction_context_are_checked() {
        let mut message = OutgoingMessage::text(to(), "hi");
        message.callback_data = Some("x".repeat(513));
        assert!(matches!(
            message.validate(),
            Err(ValidationError::TooLong { max: 512, .. })
        ));
        let mut reaction = OutgoingMessage::new(
            to(),
            Content::Reaction {
                message_id: "wamid.X".into(),
                emoji: "👍".into(),
            },
        );
        assert!(reaction.validate().is_ok());
        reaction.reply_to = Some("wamid.Y".into());
        assert!(reaction.validate().is_err());
    }
}

//! DAM-side domain: the events Orange Logic's webhook reports, the asset state the connector
//! remembers, and the rules that turn "asset edited" into the business events the flows act on.
//! Pure: no I/O, so every rule is unit-tested without async.

use crate::connector_config::{DamConcept, DamSettings};
use jiff::civil::DateTime;
use jiff::tz::TimeZone;
use jiff::{Timestamp, ZonedDateTime};
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;
use std::fmt;

/// An Orange Logic asset's `RecordID` (the Media Encrypted Identifier), validated.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(try_from = "String", into = "String")]
pub struct AssetId(String);

/// A string that cannot be an Orange Logic record id.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("not an Orange Logic record id (1-64 letters, digits, `_` or `-`)")]
pub struct InvalidAssetId;

impl AssetId {
    /// Accepts 1-64 ASCII letters, digits, `_` and `-` (record ids look like `2RLQZBQ84U` or `2QDTWAOP1_5`).
    pub fn parse(raw: &str) -> Result<Self, InvalidAssetId> {
        let valid = !raw.is_empty()
            && raw.len() <= 64
            && raw
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || b == b'_' || b == b'-');
        if valid {
            Ok(Self(raw.to_owned()))
        } else {
            Err(InvalidAssetId)
        }
    }

    /// The id as Orange Logic spells it.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl TryFrom<String> for AssetId {
    type Error = InvalidAssetId;
    fn try_from(value: String) -> Result<Self, Self::Error> {
        Self::parse(&value)
    }
}

impl From<AssetId> for String {
    fn from(value: AssetId) -> Self {
        value.0
    }
}

impl fmt::Display for AssetId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

/// What happened to an asset, as the DAM's webhook says it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum DamEventKind {
    /// Uploaded or created.
    Created,
    /// Saved (metadata or file).
    Edited,
    /// Deleted or binned.
    Deleted,
}

/// One DAM event as queued on `dam-events`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct DamEvent {
    /// The DAM's unique event id (redeliveries repeat it), or `poll:` ids for polled changes.
    pub event_id: String,
    /// What happened.
    pub kind: DamEventKind,
    /// The asset.
    pub asset: AssetId,
    /// When the DAM says it happened, as sent.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub occurred_at: Option<String>,
}

/// A webhook body split into events.
#[derive(Debug, PartialEq, Eq)]
pub struct SplitDamWebhook {
    /// Events to enqueue.
    pub events: Vec<DamEvent>,
    /// Topics ignored on purpose (not about assets).
    pub ignored: Vec<String>,
    /// Events refused on their own, by index; the others are unaffected.
    pub rejected: Vec<RejectedEvent>,
}

/// One event of a webhook body that can never be used, by its index in `events`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RejectedEvent {
    /// Position in `events` (0 for a single-event body).
    pub index: usize,
    /// Why.
    pub problem: EventProblem,
}

/// Why an event was refused.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum EventProblem {
    /// The element is not a JSON object (`null`, a number, a list...).
    NotAnObject,
    /// `topic` is missing or not a string.
    Topic,
    /// `eventId` is missing, not a string, empty or over [`MAX_EVENT_ID_LEN`] characters.
    EventId,
    /// `recordId` is missing or not a string.
    RecordIdMissing,
    /// `recordId` is not a valid record id.
    RecordIdInvalid,
    /// `occurredAt` is neither a date string nor epoch seconds / milliseconds.
    OccurredAt,
}

impl EventProblem {
    /// A short fixed description, for the answer to the DAM and the log.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::NotAnObject => "the event is not a JSON object",
            Self::Topic => "topic is missing or not a string",
            Self::EventId => "eventId is missing, not a string, empty or over 200 characters",
            Self::RecordIdMissing => "recordId is missing or not a string",
            Self::RecordIdInvalid => "recordId is not a valid record id",
            Self::OccurredAt => {
                "occurredAt is neither a date string nor epoch seconds or milliseconds"
            }
        }
    }
}

/// A webhook body that is not what the connector expects.
#[derive(Debug, thiserror::Error)]
pub enum DamWebhookError {
    /// Not JSON (or nested deeper than serde_json's recursion limit).
    #[error("the DAM webhook body is not JSON")]
    Json(#[source] serde_json::Error),
    /// JSON, but not an object, or `events` is not a list.
    #[error("the DAM webhook body is not of the documented shape: {0}")]
    Shape(&'static str),
}

/// Longest event id accepted; ids are keys in DynamoDB and SQS attributes.
pub const MAX_EVENT_ID_LEN: usize = 200;

/// Longest `occurredAt` string kept; a date in any common format is far shorter.
const MAX_OCCURRED_AT_LEN: usize = 64;

/// Epoch numbers below this are seconds (up to the year 5138), at or above it milliseconds
/// (from 1973 on): a DAM automation plausibly sends either.
const EPOCH_MS_FROM: f64 = 1e11;

/// Splits a DAM webhook body: `{"events":[{eventId, topic, recordId, occurredAt}]}` or one such
/// object. The payload shape is this connector's contract with the DAM-side automation
/// (Orange Logic does not publish one; see docs/orange-logic.md). Each event is judged on its
/// own: a bad one is reported by index and costs the others nothing.
pub fn split_webhook(body: &[u8]) -> Result<SplitDamWebhook, DamWebhookError> {
    use serde_json::Value;

    let value: Value = serde_json::from_slice(body).map_err(DamWebhookError::Json)?;
    let Value::Object(mut top) = value else {
        return Err(DamWebhookError::Shape("the body is not a JSON object"));
    };
    let wire_events = match top.remove("events") {
        Some(Value::Array(events)) => events,
        Some(_) => return Err(DamWebhookError::Shape("`events` is not a list")),
        None => vec![Value::Object(top)],
    };
    let mut split = SplitDamWebhook {
        events: Vec::with_capacity(wire_events.len()),
        ignored: Vec::new(),
        rejected: Vec::new(),
    };
    for (index, event) in wire_events.iter().enumerate() {
        match read_event(event) {
            Ok(Read::Event(event)) => split.events.push(event),
            Ok(Read::Ignored(topic)) => split.ignored.push(topic),
            Err(problem) => split.rejected.push(RejectedEvent { index, problem }),
        }
    }
    Ok(split)
}

enum Read {
    Event(DamEvent),
    Ignored(String),
}

fn read_event(event: &serde_json::Value) -> Result<Read, EventProblem> {
    use serde_json::Value;

    let Value::Object(event) = event else {
        return Err(EventProblem::NotAnObject);
    };
    let topic = event
        .get("topic")
        .and_then(Value::as_str)
        .ok_or(EventProblem::Topic)?;
    let kind = match topic.to_ascii_lowercase().as_str() {
        "asset.created" | "asset.create" => DamEventKind::Created,
        "asset.edited" | "asset.edit" | "asset.updated" => DamEventKind::Edited,
        "asset.deleted" | "asset.delete" => DamEventKind::Deleted,
        _ => return Ok(Read::Ignored(topic.to_owned())),
    };
    let event_id = event
        .get("eventId")
        .and_then(Value::as_str)
        .filter(|id| !id.is_empty() && id.len() <= MAX_EVENT_ID_LEN)
        .ok_or(EventProblem::EventId)?;
    let asset = event
        .get("recordId")
        .and_then(Value::as_str)
        .ok_or(EventProblem::RecordIdMissing)?;
    let asset = AssetId::parse(asset).map_err(|_| EventProblem::RecordIdInvalid)?;
    let occurred_at = match event.get("occurredAt") {
        None | Some(Value::Null) => None,
        Some(Value::String(at)) if !at.is_empty() && at.len() <= MAX_OCCURRED_AT_LEN => {
            Some(at.clone())
        }
        Some(Value::Number(epoch)) => {
            Some(epoch_to_rfc3339(epoch).ok_or(EventProblem::OccurredAt)?)
        }
        Some(_) => return Err(EventProblem::OccurredAt),
    };
    Ok(Read::Event(DamEvent {
        event_id: event_id.to_owned(),
        kind,
        asset,
        occurred_at,
    }))
}

/// Epoch seconds or milliseconds (see [`EPOCH_MS_FROM`]) as an RFC 3339 UTC date; `None` for a
/// negative number or one past the year 9999.
fn epoch_to_rfc3339(epoch: &serde_json::Number) -> Option<String> {
    let millis: i128 = match epoch.as_u64() {
        Some(n) if (n as f64) < EPOCH_MS_FROM => i128::from(n) * 1000,
        Some(n) => i128::from(n),
        None => {
            let n = epoch.as_f64().filter(|n| n.is_finite() && *n >= 0.0)?;
            let millis = if n < EPOCH_MS_FROM { n * 1000.0 } else { n };
            // Finite and under 2^63 here, so the conversion is exact enough for a date.
            #[allow(clippy::cast_possible_truncation)]
            let millis = millis.round() as i128;
            millis
        }
    };
    let at =
        time::OffsetDateTime::from_unix_timestamp_nanos(millis.checked_mul(1_000_000)?).ok()?;
    if at.year() > 9999 {
        return None;
    }
    at.format(&time::format_description::well_known::Rfc3339)
        .ok()
}

/// An asset's metadata as read from the DAM: field name → value (multi-values joined with `|`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AssetSnapshot {
    /// The asset.
    pub id: AssetId,
    /// Field values by the instance's field names.
    pub fields: BTreeMap<String, String>,
}

impl AssetSnapshot {
    /// The value of `name`, matched as Orange Logic matches field names: exactly, else ignoring
    /// ASCII case (`CoreField.photographer` is `CoreField.Photographer`).
    pub fn field(&self, name: &str) -> Option<&str> {
        self.fields
            .get(name)
            .or_else(|| {
                self.fields
                    .iter()
                    .find(|(k, _)| k.eq_ignore_ascii_case(name))
                    .map(|(_, v)| v)
            })
            .map(String::as_str)
    }
}

/// An instant as an Orange Logic date denotes it, to the second.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct DamInstant(Timestamp);

impl DamInstant {
    /// The instant `seconds` after the Unix epoch.
    pub fn from_unix_seconds(seconds: i64) -> Option<Self> {
        Timestamp::from_second(seconds).ok().map(Self)
    }

    /// Seconds since the Unix epoch.
    pub fn unix_seconds(self) -> i64 {
        self.0.as_second()
    }

    /// The instant `seconds` earlier (saturating at the earliest representable instant).
    pub fn minus_seconds(self, seconds: i64) -> Self {
        Self::from_unix_seconds(self.unix_seconds().saturating_sub(seconds)).unwrap_or(self)
    }

    /// The connector's own spelling: UTC `yyyy-MM-ddTHH:mm:ss`. Used for the watermark, stored
    /// states and domain events, so that text order is time order.
    pub fn canonical(self) -> String {
        self.0
            .to_zoned_datetime(TimeZone::UTC)
            .strftime("%Y-%m-%dT%H:%M:%S")
            .to_string()
    }

    /// Reads [`DamInstant::canonical`] back (or any ISO 8601 text, UTC unless it has an offset).
    pub fn parse_canonical(text: &str) -> Option<Self> {
        parse_iso(text.trim(), &TimeZone::UTC)
    }
}

fn second_of(timestamp: Timestamp) -> DamInstant {
    DamInstant(Timestamp::from_second(timestamp.as_second()).unwrap_or(timestamp))
}

fn parse_iso(text: &str, zone: &TimeZone) -> Option<DamInstant> {
    if let Ok(timestamp) = text.parse::<Timestamp>() {
        return Some(second_of(timestamp));
    }
    let civil: DateTime = text.parse().ok()?;
    civil
        .to_zoned_datetime(zone.clone())
        .ok()
        .map(|z| second_of(z.timestamp()))
}

/// A date setting that cannot be used.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("`{0}` is not a known IANA time zone name")]
pub struct UnknownTimeZone(pub String);

/// How this instance writes dates and how its search syntax wants them: ISO 8601 always, the
/// configured display formats (`11/22/2019 10:23:19 AM`), in the instance's time zone.
#[derive(Debug, Clone)]
pub struct DamDates {
    zone: TimeZone,
    formats: Vec<String>,
    search_format: String,
}

impl Default for DamDates {
    fn default() -> Self {
        Self::from_settings(&crate::connector_config::DamDates::default()).unwrap_or_else(|_| {
            Self {
                zone: TimeZone::UTC,
                formats: Vec::new(),
                search_format: "%Y-%m-%dT%H.%M.%S".into(),
            }
        })
    }
}

impl DamDates {
    /// From the `dam.dates` settings.
    pub fn from_settings(
        settings: &crate::connector_config::DamDates,
    ) -> Result<Self, UnknownTimeZone> {
        let zone = TimeZone::get(&settings.time_zone)
            .map_err(|_| UnknownTimeZone(settings.time_zone.clone()))?;
        Ok(Self {
            zone,
            formats: settings.formats.clone(),
            search_format: settings.search_format.clone(),
        })
    }

    /// The instant `text` denotes, or `None` when it is empty or in no known format. A date
    /// without an offset is local to the instance; one that falls into a daylight-saving gap or
    /// overlap takes the earlier reading.
    pub fn parse(&self, text: &str) -> Option<DamInstant> {
        let text = text.trim();
        if text.is_empty() {
            return None;
        }
        parse_iso(text, &self.zone).or_else(|| {
            self.formats.iter().find_map(|format| {
                let broken = jiff::fmt::strtime::parse(format, text).ok()?;
                let civil = broken.to_datetime().ok()?;
                civil
                    .to_zoned_datetime(self.zone.clone())
                    .ok()
                    .map(|z| second_of(z.timestamp()))
            })
        })
    }

    /// `at` written as the search syntax expects it: local to the instance, in the search format.
    pub fn search_text(&self, at: DamInstant) -> String {
        self.local_text(at, &self.search_format)
    }

    /// `at` local to the instance, in any strftime `format`.
    pub fn local_text(&self, at: DamInstant, format: &str) -> String {
        let local: ZonedDateTime = at.0.to_zoned_datetime(self.zone.clone());
        local.strftime(format).to_string()
    }

    /// `text` in the canonical spelling when it is a date, else as it is (trimmed).
    pub fn normalize(&self, text: &str) -> String {
        self.parse(text)
            .map_or_else(|| text.trim().to_owned(), DamInstant::canonical)
    }
}

/// What the connector remembers of an asset between events.
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
pub struct AssetState {
    /// Status value.
    #[serde(default)]
    pub status: Option<String>,
    /// Expiry date, canonical when it is a date the instance's formats read, else as spelt.
    #[serde(default)]
    pub expiry: Option<String>,
    /// Licence end date, canonical when it is a date, else as spelt.
    #[serde(default)]
    pub licence_end: Option<String>,
    /// Required fields that were empty.
    #[serde(default)]
    pub missing_required: Vec<String>,
    /// Whether the brand-compliance field said non-compliant.
    #[serde(default)]
    pub brand_blocked: bool,
    /// The DAM's edit date when this state was seen, canonical (UTC `yyyy-MM-ddTHH:mm:ss`).
    #[serde(default)]
    pub edited_at: Option<String>,
    /// The current file version when this state was seen.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub version: Option<String>,
}

/// Why an asset is blocked.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum PolicyReason {
    /// Its status is the configured "blocked" value.
    Status,
    /// Its brand-compliance field says non-compliant.
    BrandCompliance,
}

/// A business event derived from a change.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum DomainEventKind {
    /// Status became "ready for review" with every required field filled (flow 1).
    ReadyForReview,
    /// Status became "approved".
    Approved,
    /// Status became "rejected" (flow 7).
    Rejected,
    /// Status became "ready for review" but required fields are empty (flow 7).
    MissingRequiredMetadata {
        /// The empty fields.
        missing: Vec<String>,
    },
    /// Blocked by policy (flow 7).
    BlockedByPolicy {
        /// Why.
        reason: PolicyReason,
    },
    /// A campaign package was approved (flow 4).
    CampaignPackageApproved {
        /// The campaign.
        campaign: String,
    },
    /// The expiry or licence end date changed (flow 3 recomputes its windows).
    ExpiryChanged {
        /// New expiry date.
        expiry: Option<String>,
        /// New licence end date.
        licence_end: Option<String>,
    },
    /// The asset was deleted in the DAM: its state is dropped, and flow 3 drops the alerts it
    /// still has pending for it.
    AssetDeleted,
}

/// The flow queue a domain event goes to.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Flow {
    /// Review requests and their closing (flow 1).
    Review,
    /// Issue alerts (flow 7).
    IssueAlert,
    /// Campaign rollout (flow 4).
    Campaign,
    /// Rights expiry (flow 3).
    RightsExpiry,
}

impl DomainEventKind {
    /// Where the event goes.
    pub fn flow(&self) -> Flow {
        match self {
            Self::ReadyForReview | Self::Approved => Flow::Review,
            Self::Rejected
            | Self::MissingRequiredMetadata { .. }
            | Self::BlockedByPolicy { .. } => Flow::IssueAlert,
            Self::CampaignPackageApproved { .. } => Flow::Campaign,
            Self::ExpiryChanged { .. } | Self::AssetDeleted => Flow::RightsExpiry,
        }
    }

    fn tag(&self) -> &'static str {
        match self {
            Self::ReadyForReview => "ready_for_review",
            Self::Approved => "approved",
            Self::Rejected => "rejected",
            Self::MissingRequiredMetadata { .. } => "missing_required_metadata",
            Self::BlockedByPolicy { .. } => "blocked_by_policy",
            Self::CampaignPackageApproved { .. } => "campaign_package_approved",
            Self::ExpiryChanged { .. } => "expiry_changed",
            Self::AssetDeleted => "asset_deleted",
        }
    }
}

/// A domain event as put on a flow queue.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct DomainEvent {
    /// Deterministic id: the same change always yields the same id (queue deduplication key).
    pub id: String,
    /// The asset.
    pub asset: AssetId,
    /// The DAM's edit date of the version that caused it (canonical, UTC).
    #[serde(default)]
    pub edited_at: Option<String>,
    /// The asset's file version when it happened ("the version that was reviewed").
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub version: Option<String>,
    /// What happened.
    #[serde(flatten)]
    pub kind: DomainEventKind,
}

/// The field names and values change detection reads, taken from the connector configuration.
#[derive(Debug, Clone)]
pub struct ChangeRules {
    status_field: String,
    ready_for_review: String,
    approved: String,
    rejected: String,
    blocked: Option<String>,
    required_fields: Vec<String>,
    campaign_field: String,
    expiry_field: String,
    licence_end_field: String,
    brand_field: String,
    brand_blocked_values: Vec<String>,
    doc_subtype_field: String,
    campaign_package_subtypes: Vec<String>,
    edit_date_field: String,
    version_field: String,
    dates: DamDates,
}

impl ChangeRules {
    /// Builds the rules from the validated DAM settings.
    pub fn from_settings(dam: &DamSettings) -> Self {
        let field = |concept| dam.field_map.get(&concept).cloned().unwrap_or_default();
        Self {
            status_field: field(DamConcept::Status),
            ready_for_review: dam.status_values.ready_for_review.clone(),
            approved: dam.status_values.approved.clone(),
            rejected: dam.status_values.rejected.clone(),
            blocked: dam.status_values.blocked.clone(),
            required_fields: dam.required_fields.clone(),
            campaign_field: field(DamConcept::Campaign),
            expiry_field: field(DamConcept::ExpiryDate),
            licence_end_field: field(DamConcept::LicenceEnd),
            brand_field: field(DamConcept::BrandCompliance),
            brand_blocked_values: dam
                .brand_non_compliant_values
                .iter()
                .map(|v| v.to_lowercase())
                .collect(),
            doc_subtype_field: dam.doc_subtype_field.clone(),
            campaign_package_subtypes: dam.campaign_package_subtypes.clone(),
            edit_date_field: dam.edit_date_field.clone(),
            version_field: dam.version_field.clone(),
            // The time zone is validated with the rest of the configuration at cold start.
            dates: DamDates::from_settings(&dam.dates).unwrap_or_default(),
        }
    }

    /// How the instance writes dates.
    pub fn dates(&self) -> &DamDates {
        &self.dates
    }

    /// The instant `snapshot` was last edited, if its edit date reads as one.
    pub fn edited_at(&self, snapshot: &AssetSnapshot) -> Option<DamInstant> {
        self.dates.parse(snapshot.field(&self.edit_date_field)?)
    }

    /// The domain event telling the flows that `id` was deleted.
    pub fn deleted(&self, id: &AssetId) -> DomainEvent {
        let kind = DomainEventKind::AssetDeleted;
        DomainEvent {
            id: crate::crypto::sha256_hex(&[id.as_str().as_bytes(), b"\n", kind.tag().as_bytes()]),
            asset: id.clone(),
            edited_at: None,
            version: None,
            kind,
        }
    }

    /// Every field detection reads, for the DAM read and search calls.
    pub fn fields(&self) -> Vec<String> {
        let mut fields = vec![
            self.status_field.clone(),
            self.campaign_field.clone(),
            self.expiry_field.clone(),
            self.licence_end_field.clone(),
            self.brand_field.clone(),
            self.doc_subtype_field.clone(),
            self.edit_date_field.clone(),
            self.version_field.clone(),
        ];
        fields.extend(self.required_fields.iter().cloned());
        fields.sort();
        fields.dedup();
        fields
    }

    /// The edit-date field (polling criterion).
    pub fn edit_date_field(&self) -> &str {
        &self.edit_date_field
    }

    /// The state worth remembering of `snapshot`.
    pub fn observe(&self, snapshot: &AssetSnapshot) -> AssetState {
        let value = |name: &str| {
            snapshot
                .field(name)
                .map(str::trim)
                .filter(|v| !v.is_empty())
                .map(str::to_owned)
        };
        let date = |name: &str| value(name).map(|v| self.dates.normalize(&v));
        AssetState {
            status: value(&self.status_field),
            expiry: date(&self.expiry_field),
            licence_end: date(&self.licence_end_field),
            missing_required: self
                .required_fields
                .iter()
                .filter(|f| value(f).is_none())
                .cloned()
                .collect(),
            brand_blocked: value(&self.brand_field)
                .is_some_and(|v| self.brand_blocked_values.contains(&v.to_lowercase())),
            edited_at: date(&self.edit_date_field),
            version: value(&self.version_field),
        }
    }

    /// The domain events the move from `previous` (none on first sight) to `current` produces.
    /// Status events fire on a change of status only, so the same state seen twice yields nothing.
    pub fn detect(
        &self,
        snapshot: &AssetSnapshot,
        previous: Option<&AssetState>,
        current: &AssetState,
    ) -> Vec<DomainEvent> {
        let mut kinds = Vec::new();
        let status = current.status.as_deref();
        let status_changed = previous.map(|p| p.status.as_deref()) != Some(status);
        let is = |value: &str| status == Some(value);
        if status_changed {
            if is(&self.ready_for_review) {
                kinds.push(ready_or_missing(current));
            } else if is(&self.approved) {
                kinds.push(DomainEventKind::Approved);
                if let Some(campaign) = self.campaign_package(snapshot) {
                    kinds.push(DomainEventKind::CampaignPackageApproved { campaign });
                }
            } else if is(&self.rejected) {
                kinds.push(DomainEventKind::Rejected);
            } else if self.blocked.as_deref().is_some_and(is) {
                kinds.push(DomainEventKind::BlockedByPolicy {
                    reason: PolicyReason::Status,
                });
            }
        } else if is(&self.ready_for_review)
            && current.missing_required.is_empty()
            && previous.is_some_and(|p| !p.missing_required.is_empty())
        {
            // The owner filled the missing fields: now the reviewers can have it.
            kinds.push(DomainEventKind::ReadyForReview);
        }
        if current.brand_blocked && !previous.is_some_and(|p| p.brand_blocked) {
            kinds.push(DomainEventKind::BlockedByPolicy {
                reason: PolicyReason::BrandCompliance,
            });
        }
        if let Some(previous) = previous
            && (previous.expiry != current.expiry || previous.licence_end != current.licence_end)
        {
            kinds.push(DomainEventKind::ExpiryChanged {
                expiry: current.expiry.clone(),
                licence_end: current.licence_end.clone(),
            });
        }
        let version = current.edited_at.clone().unwrap_or_else(|| {
            crate::crypto::sha256_hex(&[serde_json::to_string(current)
                .unwrap_or_default()
                .as_bytes()])
        });
        kinds
            .into_iter()
            .map(|kind| DomainEvent {
                id: crate::crypto::sha256_hex(&[
                    snapshot.id.as_str().as_bytes(),
                    b"\n",
                    kind.tag().as_bytes(),
                    b"\n",
                    version.as_bytes(),
                ]),
                asset: snapshot.id.clone(),
                edited_at: current.edited_at.clone(),
                version: current.version.clone(),
                kind,
            })
            .collect()
    }

    fn campaign_package(&self, snapshot: &AssetSnapshot) -> Option<String> {
        let subtype = snapshot.field(&self.doc_subtype_field)?;
        if !self
            .campaign_package_subtypes
            .iter()
            .any(|s| s.eq_ignore_ascii_case(subtype.trim()))
        {
            return None;
        }
        snapshot
            .field(&self.campaign_field)
            .map(str::trim)
            .filter(|c| !c.is_empty())
            .map(str::to_owned)
    }
}

fn ready_or_missing(current: &AssetState) -> DomainEventKind {
    if current.missing_required.is_empty() {
        DomainEventKind::ReadyForReview
    } else {
        DomainEventKind::MissingRequiredMetadata {
            missing: current.missing_required.clone(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::connector_config::ConnectorConfig;

    fn rules() -> ChangeRules {
        let config = ConnectorConfig::parse(include_str!("../../../local/connector.yaml"))
            .expect("local config");
        ChangeRules::from_settings(&config.dam)
    }

    fn snapshot(pairs: &[(&str, &str)]) -> AssetSnapshot {
        let mut fields: BTreeMap<String, String> = [
            ("CoreField.Title", "Bridge at dusk"),
            ("CoreField.Photographer", "A. Field"),
            ("Custom.Campaign", "SUMMER26"),
            ("CoreField.EditDate", "2026-11-26T10:00:00"),
        ]
        .iter()
        .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
        .collect();
        for (k, v) in pairs {
            fields.insert((*k).to_owned(), (*v).to_owned());
        }
        AssetSnapshot {
            id: AssetId::parse("2RLQZBQ84U").expect("id"),
            fields,
        }
    }

    fn kinds(events: &[DomainEvent]) -> Vec<DomainEventKind> {
        events.iter().map(|e| e.kind.clone()).collect()
    }

    fn transition(before: &[(&str, &str)], after: &[(&str, &str)]) -> Vec<DomainEventKind> {
        let rules = rules();
        let previous = rules.observe(&snapshot(before));
        let now = snapshot(after);
        kinds(&rules.detect(&now, Some(&previous), &rules.observe(&now)))
    }

    #[test]
    fn status_becoming_ready_for_review_is_one_review_event() {
        assert_eq!(
            transition(
                &[("CoreField.Status", "Draft")],
                &[("CoreField.Status", "Ready for Review")]
            ),
            [DomainEventKind::ReadyForReview]
        );
    }

    #[test]
    fn the_same_state_seen_twice_produces_nothing() {
        let ready = [("CoreField.Status", "Ready for Review")];
        assert!(transition(&ready, &ready).is_empty());
    }

    #[test]
    fn ready_for_review_with_empty_required_fields_is_an_issue_not_a_review() {
        assert_eq!(
            transition(
                &[("CoreField.Status", "Draft")],
                &[
                    ("CoreField.Status", "Ready for Review"),
                    ("CoreField.Photographer", " ")
                ]
            ),
            [DomainEventKind::MissingRequiredMetadata {
                missing: vec!["CoreField.Photographer".into()]
            }]
        );
    }

    #[test]
    fn filling_the_missing_fields_of_a_waiting_asset_requests_the_review() {
        assert_eq!(
            transition(
                &[
                    ("CoreField.Status", "Ready for Review"),
                    ("CoreField.Photographer", "")
                ],
                &[("CoreField.Status", "Ready for Review")]
            ),
            [DomainEventKind::ReadyForReview]
        );
    }

    #[test]
    fn rejection_and_blocking_are_issue_alerts() {
        let rejected = transition(
            &[("CoreField.Status", "Ready for Review")],
            &[("CoreField.Status", "Rejected")],
        );
        assert_eq!(rejected, [DomainEventKind::Rejected]);
        assert_eq!(rejected[0].flow(), Flow::IssueAlert);
        assert_eq!(
            transition(
                &[("CoreField.Status", "Approved")],
                &[("CoreField.Status", "Blocked by Policy")]
            ),
            [DomainEventKind::BlockedByPolicy {
                reason: PolicyReason::Status
            }]
        );
    }

    #[test]
    fn a_brand_compliance_failure_blocks_once() {
        let failing = [("Custom.BrandCompliant", "No")];
        assert_eq!(
            transition(&[], &failing),
            [DomainEventKind::BlockedByPolicy {
                reason: PolicyReason::BrandCompliance
            }]
        );
        assert!(transition(&failing, &failing).is_empty());
    }

    #[test]
    fn approving_a_campaign_package_also_tells_the_campaign_flow() {
        let events = transition(
            &[
                ("CoreField.Status", "Ready for Review"),
                ("CoreField.DocSubType", "Campaign-Package"),
            ],
            &[
                ("CoreField.Status", "Approved"),
                ("CoreField.DocSubType", "Campaign-Package"),
            ],
        );
        assert_eq!(
            events,
            [
                DomainEventKind::Approved,
                DomainEventKind::CampaignPackageApproved {
                    campaign: "SUMMER26".into()
                }
            ]
        );
        let plain = transition(
            &[("CoreField.Status", "Ready for Review")],
            &[("CoreField.Status", "Approved")],
        );
        assert_eq!(plain, [DomainEventKind::Approved]);
    }

    #[test]
    fn a_new_expiry_date_is_reported_with_its_value() {
        assert_eq!(
            transition(
                &[("CoreField.ExpirationDate", "2027-01-01")],
                &[("CoreField.ExpirationDate", "2027-06-30")]
            ),
            [DomainEventKind::ExpiryChanged {
                expiry: Some("2027-06-30T00:00:00".into()),
                licence_end: None
            }]
        );
    }

    #[test]
    fn the_same_expiry_in_another_format_is_no_change() {
        assert!(
            transition(
                &[("CoreField.ExpirationDate", "2027-06-30T00:00:00")],
                &[("CoreField.ExpirationDate", "6/30/2027 12:00:00 AM")]
            )
            .is_empty()
        );
    }

    fn dates(zone: &str) -> DamDates {
        DamDates::from_settings(&crate::connector_config::DamDates {
            time_zone: zone.into(),
            ..crate::connector_config::DamDates::default()
        })
        .expect("zone")
    }

    #[test]
    fn display_format_dates_are_read_in_the_instance_time_zone() {
        let dates = dates("America/New_York");
        let at = dates
            .parse("11/22/2019 10:23:19 AM")
            .expect("display format");
        assert_eq!(at.canonical(), "2019-11-22T15:23:19");
        assert_eq!(dates.parse("2019-11-22T10:23:19"), Some(at));
        assert_eq!(dates.parse("2019-11-22T15:23:19Z"), Some(at));
        assert_eq!(dates.parse("2019-11-22T10:23:19.997"), Some(at));
        assert_eq!(dates.search_text(at), "2019-11-22T10.23.19");
        assert_eq!(
            dates
                .parse("1/5/2020 9:03:04 PM")
                .expect("unpadded")
                .canonical(),
            "2020-01-06T02:03:04"
        );
        assert_eq!(dates.parse("soon"), None);
        assert_eq!(dates.parse(" "), None);
    }

    #[test]
    fn display_format_dates_order_by_time_across_month_and_year_ends() {
        let dates = dates("UTC");
        let texts = [
            "9/30/2026 11:59:59 PM",
            "10/1/2026 12:00:00 AM",
            "12/31/2026 11:59:59 PM",
            "1/1/2027 12:00:01 AM",
            "1/1/2027 1:00:00 PM",
        ];
        let instants: Vec<DamInstant> = texts
            .iter()
            .map(|t| dates.parse(t).expect("date"))
            .collect();
        assert!(instants.windows(2).all(|w| w[0] < w[1]), "{instants:?}");
        let mut as_text = texts;
        as_text.sort_unstable();
        assert_ne!(as_text, texts, "as text they would not be in time order");
        let canonical: Vec<String> = instants.iter().map(|i| i.canonical()).collect();
        let mut sorted = canonical.clone();
        sorted.sort();
        assert_eq!(
            sorted, canonical,
            "the canonical spelling sorts as time does"
        );
    }

    #[test]
    fn a_time_in_the_spring_forward_gap_takes_the_later_offset() {
        let dates = dates("America/New_York");
        let at = dates.parse("3/8/2026 2:30:00 AM").expect("gap");
        assert_eq!(at.canonical(), "2026-03-08T07:30:00");
    }

    #[test]
    fn a_field_under_another_case_is_not_missing() {
        let rules = rules();
        let mut snapshot = snapshot(&[("CoreField.Status", "Ready for Review")]);
        let value = snapshot
            .fields
            .remove("CoreField.Photographer")
            .expect("seeded");
        snapshot
            .fields
            .insert("CoreField.photographer".into(), value);
        let state = rules.observe(&snapshot);
        assert!(
            state.missing_required.is_empty(),
            "{:?}",
            state.missing_required
        );
        assert_eq!(
            kinds(&rules.detect(&snapshot, None, &state)),
            [DomainEventKind::ReadyForReview]
        );
    }

    #[test]
    fn events_carry_the_version_they_were_seen_at() {
        let rules = rules();
        let previous = rules.observe(&snapshot(&[("CoreField.Status", "Draft")]));
        let now = snapshot(&[
            ("CoreField.Status", "Ready for Review"),
            ("CoreField.Version", "3"),
        ]);
        let events = rules.detect(&now, Some(&previous), &rules.observe(&now));
        assert_eq!(events[0].version.as_deref(), Some("3"));
    }

    #[test]
    fn a_deletion_event_is_stable_per_asset_and_goes_to_rights_expiry() {
        let rules = rules();
        let id = AssetId::parse("2RLQZBQ84U").expect("id");
        assert_eq!(rules.deleted(&id), rules.deleted(&id));
        assert_eq!(rules.deleted(&id).kind.flow(), Flow::RightsExpiry);
    }

    #[test]
    fn first_sight_reports_trigger_statuses_but_not_dates() {
        let rules = rules();
        let now = snapshot(&[
            ("CoreField.Status", "Ready for Review"),
            ("CoreField.ExpirationDate", "2027-01-01"),
        ]);
        let events = rules.detect(&now, None, &rules.observe(&now));
        assert_eq!(kinds(&events), [DomainEventKind::ReadyForReview]);
        let draft = snapshot(&[("CoreField.Status", "Draft")]);
        assert!(
            rules
                .detect(&draft, None, &rules.observe(&draft))
                .is_empty()
        );
    }

    #[test]
    fn event_ids_are_stable_per_change_and_differ_between_edits() {
        let rules = rules();
        let previous = rules.observe(&snapshot(&[("CoreField.Status", "Draft")]));
        let a = snapshot(&[("CoreField.Status", "Ready for Review")]);
        let b = snapshot(&[
            ("CoreField.Status", "Ready for Review"),
            ("CoreField.EditDate", "2026-11-26T11:00:00"),
        ]);
        let first = rules.detect(&a, Some(&previous), &rules.observe(&a));
        let again = rules.detect(&a, Some(&previous), &rules.observe(&a));
        let later = rules.detect(&b, Some(&previous), &rules.observe(&b));
        assert_eq!(first[0].id, again[0].id);
        assert_ne!(first[0].id, later[0].id);
    }

    #[test]
    fn a_webhook_batch_is_split_and_foreign_topics_are_ignored() {
        let body = br#"{"events":[
            {"eventId":"e1","topic":"asset.edited","recordId":"2RLQZBQ84U","occurredAt":"2026-11-26T10:00:00"},
            {"eventId":"e2","topic":"user.login","recordId":"X"},
            {"eventId":"e3","topic":"asset.deleted","recordId":"2QDTWAOP1_5"}]}"#;
        let split = split_webhook(body).expect("valid");
        assert_eq!(split.events.len(), 2);
        assert_eq!(split.events[0].kind, DamEventKind::Edited);
        assert_eq!(split.events[1].asset.as_str(), "2QDTWAOP1_5");
        assert_eq!(split.ignored, ["user.login"]);
        assert!(split.rejected.is_empty());
    }

    #[test]
    fn a_single_event_object_is_accepted() {
        let body = br#"{"eventId":"e1","topic":"asset.created","recordId":"ABC"}"#;
        assert_eq!(split_webhook(body).expect("valid").events.len(), 1);
    }

    #[test]
    fn a_single_event_with_a_bad_record_id_is_rejected_as_event_zero() {
        let body = br#"{"eventId":"e1","topic":"asset.created","recordId":"../etc"}"#;
        let split = split_webhook(body).expect("JSON of the documented shape");
        assert!(split.events.is_empty());
        assert_eq!(
            split.rejected,
            [RejectedEvent {
                index: 0,
                problem: EventProblem::RecordIdInvalid
            }]
        );
    }

    fn good(n: usize) -> String {
        format!(
            r#"{{"eventId":"e{n}","topic":"asset.edited","recordId":"REC{n}","occurredAt":"2026-11-26T10:00:00Z"}}"#
        )
    }

    fn rejected(body: &str) -> Vec<(usize, EventProblem)> {
        split_webhook(body.as_bytes())
            .expect("JSON of the documented shape")
            .rejected
            .iter()
            .map(|r| (r.index, r.problem))
            .collect()
    }

    #[test]
    fn four_good_events_and_one_with_a_bad_occurred_at_yield_four_events_and_index_four() {
        let body = format!(
            r#"{{"events":[{},{},{},{},{{"eventId":"e5","topic":"asset.edited","recordId":"REC5","occurredAt":true}}]}}"#,
            good(1),
            good(2),
            good(3),
            good(4)
        );
        let split = split_webhook(body.as_bytes()).expect("valid");
        let ids: Vec<&str> = split.events.iter().map(|e| e.event_id.as_str()).collect();
        assert_eq!(ids, ["e1", "e2", "e3", "e4"]);
        assert_eq!(rejected(&body), [(4, EventProblem::OccurredAt)]);
    }

    #[test]
    fn wrong_typed_fields_are_rejected_by_index_not_read_as_an_empty_single_event() {
        let body = format!(
            r#"{{"events":[null,{},{{"eventId":42,"topic":"asset.edited","recordId":"R"}},
              {{"eventId":"e3","topic":7,"recordId":"R"}},{{"eventId":"e4","topic":"asset.edited","recordId":7}},
              {{"eventId":"e5","topic":"asset.edited","recordId":"R","occurredAt":-5}},
              {{"eventId":"e6","topic":"asset.edited","recordId":"R","occurredAt":{{"at":1}}}},
              {{"eventId":"","topic":"asset.edited","recordId":"R"}},"text",[]]}}"#,
            good(1)
        );
        assert_eq!(
            rejected(&body),
            [
                (0, EventProblem::NotAnObject),
                (2, EventProblem::EventId),
                (3, EventProblem::Topic),
                (4, EventProblem::RecordIdMissing),
                (5, EventProblem::OccurredAt),
                (6, EventProblem::OccurredAt),
                (7, EventProblem::EventId),
                (8, EventProblem::NotAnObject),
                (9, EventProblem::NotAnObject),
            ]
        );
        let split = split_webhook(body.as_bytes()).expect("valid");
        assert_eq!(split.events.len(), 1);
        assert_eq!(split.events[0].event_id, "e1");
    }

    #[test]
    fn an_epoch_occurred_at_in_seconds_or_milliseconds_becomes_a_utc_date() {
        let at = |value: &str| {
            let body = format!(
                r#"{{"eventId":"e","topic":"asset.edited","recordId":"R","occurredAt":{value}}}"#
            );
            split_webhook(body.as_bytes()).expect("valid").events[0]
                .occurred_at
                .clone()
        };
        assert_eq!(at("1764151200").as_deref(), Some("2025-11-26T10:00:00Z"));
        assert_eq!(
            at("1764151200123").as_deref(),
            Some("2025-11-26T10:00:00.123Z")
        );
        assert_eq!(
            at("1764151200.5").as_deref(),
            Some("2025-11-26T10:00:00.5Z")
        );
        assert_eq!(at("null"), None);
        assert_eq!(
            rejected(r#"{"eventId":"e","topic":"asset.edited","recordId":"R","occurredAt":1e300}"#),
            [(0, EventProblem::OccurredAt)]
        );
    }

    #[test]
    fn a_body_that_is_not_an_object_or_whose_events_is_not_a_list_is_refused_whole() {
        for body in [&b"[]"[..], b"null", b"5", br#"{"events":{"eventId":"e"}}"#] {
            assert!(
                matches!(split_webhook(body), Err(DamWebhookError::Shape(_))),
                "{}",
                String::from_utf8_lossy(body)
            );
        }
        assert!(matches!(
            split_webhook(b"not json"),
            Err(DamWebhookError::Json(_))
        ));
        let deep = format!("{}{}", "[".repeat(100_000), "]".repeat(100_000));
        let deep = format!(r#"{{"events":[{deep}]}}"#);
        assert!(matches!(
            split_webhook(deep.as_bytes()),
            Err(DamWebhookError::Json(_))
        ));
    }
}

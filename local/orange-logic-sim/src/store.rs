//! The simulator's in-memory DAM: folders (a tree of titles), assets with a type, a subtype and
//! versions, fields (core and custom prefixed, matched ignoring case and answered in the
//! instance's own spelling), allowed values, dates kept as instants and written in the instance's
//! style and time zone; the search query subset; the DataTable operators; the deletion log.

use jiff::civil::DateTime;
use jiff::tz::TimeZone;
use jiff::{Timestamp, ZonedDateTime};
use serde::{Deserialize, Serialize};
use std::collections::{BTreeMap, BTreeSet};

/// Core fields every asset may carry.
pub const CORE_FIELDS: [&str; 16] = [
    "CoreField.Title",
    "CoreField.Description",
    "CoreField.Keywords",
    "CoreField.Status",
    "CoreField.Owner",
    "CoreField.UsageRights",
    "CoreField.ExpirationDate",
    "CoreField.ProjectTag",
    "CoreField.Photographer",
    "CoreField.DocType",
    "CoreField.DocSubType",
    "CoreField.Parent-folder",
    "CoreField.Visibility-class",
    "CoreField.CreateDate",
    "CoreField.EditDate",
    "CoreField.Version",
];

/// Fields the DAM maintains itself; writes to them are ignored like Orange Logic's read-only fields.
const READ_ONLY: [&str; 6] = [
    "CoreField.CreateDate",
    "CoreField.EditDate",
    "CoreField.Identifier",
    "CoreField.DocType",
    "CoreField.DocSubType",
    "CoreField.Version",
];

/// Date fields of the default instance.
pub const DEFAULT_DATE_FIELDS: [&str; 4] = [
    "CoreField.CreateDate",
    "CoreField.EditDate",
    "CoreField.ExpirationDate",
    "Custom.LicenceEnd",
];

/// How the instance writes dates in its answers.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DateStyle {
    /// `yyyy-MM-ddTHH:mm:ss` (the API's documented default).
    Iso,
    /// The US display format, `M/d/yyyy h:mm:ss tt` (`11/22/2019 10:23:19 AM`), as searches
    /// answer without `DateFormat`.
    Display,
}

/// The instance's time zone and date style.
#[derive(Debug, Clone)]
pub struct Clock {
    /// Dates without an offset are local to this zone.
    pub zone: TimeZone,
    /// How dates are written.
    pub style: DateStyle,
}

impl Default for Clock {
    fn default() -> Self {
        Self {
            zone: TimeZone::UTC,
            style: DateStyle::Iso,
        }
    }
}

const STORED: &str = "%Y-%m-%dT%H:%M:%S";
const DISPLAY: &str = "%-m/%-d/%Y %-I:%M:%S %p";
/// The documented date format of search criteria (`1977-04-22T16.00.00`).
pub const SEARCH_DATE: &str = "%Y-%m-%dT%H.%M.%S";

impl Clock {
    fn local(&self, civil: DateTime) -> Option<Timestamp> {
        civil
            .to_zoned_datetime(self.zone.clone())
            .ok()
            .map(|z: ZonedDateTime| z.timestamp())
    }

    /// A stored (UTC) date as the instance writes it.
    pub fn render(&self, stored: &str) -> String {
        let Some(at) = parse_stored(stored) else {
            return stored.to_owned();
        };
        let local = at.to_zoned_datetime(self.zone.clone());
        match self.style {
            DateStyle::Iso => local.strftime(STORED).to_string(),
            DateStyle::Display => local.strftime(DISPLAY).to_string(),
        }
    }

    /// A date written to the instance (ISO, local unless it has an offset, or the display
    /// format) as stored.
    pub fn accept(&self, text: &str) -> Option<String> {
        let text = text.trim();
        let at = text
            .parse::<Timestamp>()
            .ok()
            .or_else(|| self.local(text.parse::<DateTime>().ok()?))
            .or_else(|| {
                let civil = jiff::fmt::strtime::parse(DISPLAY, text)
                    .ok()?
                    .to_datetime()
                    .ok()?;
                self.local(civil)
            })?;
        Some(stored(at))
    }

    /// A search criterion's date: the documented `YYYY-MM-DDTHH.MM.SS`, or a plain date.
    pub fn criterion(&self, text: &str) -> Option<Timestamp> {
        let text = text.trim();
        [SEARCH_DATE, "%Y-%m-%d"].iter().find_map(|format| {
            let civil = jiff::fmt::strtime::parse(format, text)
                .ok()?
                .to_datetime()
                .ok()?;
            self.local(civil)
        })
    }
}

fn parse_stored(text: &str) -> Option<Timestamp> {
    let civil: DateTime = text.parse().ok()?;
    civil
        .to_zoned_datetime(TimeZone::UTC)
        .ok()
        .map(|z| z.timestamp())
}

fn stored(at: Timestamp) -> String {
    at.to_zoned_datetime(TimeZone::UTC)
        .strftime(STORED)
        .to_string()
}

/// One stored file version.
#[derive(Debug, Clone, Serialize)]
pub struct Version {
    /// 1-based.
    pub number: u32,
    /// As uploaded.
    pub file_name: String,
    /// Bytes received.
    pub size: u64,
    /// SHA-256 of the bytes, hex.
    pub sha256: String,
    /// The first [`KEPT_BYTES`] bytes received, so a test can read what the DAM holds (EXIF).
    #[serde(skip)]
    pub head: Vec<u8>,
}

/// How many bytes of each upload the simulator keeps (the rest is counted and hashed only).
pub const KEPT_BYTES: usize = 1024 * 1024;

/// An asset.
#[derive(Debug, Clone, Serialize)]
pub struct Asset {
    /// RecordID.
    pub record_id: String,
    /// Unique (system) identifier.
    pub identifier: String,
    /// Field values in the instance's spelling; multi-values joined with `|`; dates stored UTC.
    pub fields: BTreeMap<String, String>,
    /// File versions.
    pub versions: Vec<Version>,
}

impl Asset {
    /// The value of `field`, ignoring ASCII case.
    pub fn field(&self, field: &str) -> Option<&str> {
        self.fields
            .get(field)
            .or_else(|| {
                self.fields
                    .iter()
                    .find(|(k, _)| k.eq_ignore_ascii_case(field))
                    .map(|(_, v)| v)
            })
            .map(String::as_str)
    }

    /// Its document type (`Image` unless set).
    pub fn doc_type(&self) -> &str {
        self.field("CoreField.DocType").unwrap_or("Image")
    }

    /// Its subtype (`Default` unless set).
    pub fn doc_subtype(&self) -> &str {
        self.field("CoreField.DocSubType").unwrap_or("Default")
    }
}

/// A folder.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Folder {
    /// RecordID.
    pub record_id: String,
    /// Unique identifier.
    pub identifier: String,
    /// Title.
    pub title: String,
    /// Parent folder RecordID.
    #[serde(default)]
    pub parent: Option<String>,
}

/// A deleted asset, as the deleted-objects API lists it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Deletion {
    /// RecordID.
    pub record_id: String,
    /// Unique identifier.
    pub identifier: String,
    /// When, stored UTC.
    pub at: String,
}

/// A change that Orange Logic would announce by webhook.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Change {
    /// Created.
    Created(String),
    /// Edited.
    Edited(String),
    /// Deleted.
    Deleted(String),
}

/// A DataTable operator.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Op {
    /// `:=`.
    Set,
    /// `+=`: values must already exist in the field's authority list.
    Add,
    /// `++=`: values are created as needed.
    AddCreating,
    /// `--=`: remove values; empty clears.
    Remove,
}

/// Why an update failed (reported inside HTTP 200, as Orange Logic does).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum UpdateError {
    /// No such record.
    #[error("no record matches {0}")]
    NoRecord(String),
    /// A value is not in the field's list.
    #[error("value {value:?} is not allowed in {field}")]
    NotAllowed { field: String, value: String },
    /// A folder reference resolved to nothing.
    #[error("folder reference {0} does not resolve to a folder RecordID")]
    NoFolder(String),
    /// A date field was given something that is not a date.
    #[error("{field} needs a date")]
    NotADate { field: String },
}

/// Date field → (instant, RecordID), sorted.
type DateIndex = BTreeMap<String, Vec<(Timestamp, String)>>;

/// The DAM's content.
#[derive(Debug, Default)]
pub struct Store {
    /// Assets by RecordID.
    pub assets: BTreeMap<String, Asset>,
    /// Folders by RecordID.
    pub folders: BTreeMap<String, Folder>,
    /// Custom fields (e.g. `Custom.Campaign`), beyond [`CORE_FIELDS`].
    pub custom_fields: BTreeSet<String>,
    /// Fields whose values come from a list.
    pub allowed_values: BTreeMap<String, BTreeSet<String>>,
    /// Lower-case name → the instance's spelling.
    spelling: BTreeMap<String, String>,
    /// Date fields (instance spelling).
    pub date_fields: BTreeSet<String>,
    /// Deleted assets, oldest first.
    pub deleted: Vec<Deletion>,
    /// The instance's time zone and date style.
    pub clock: Clock,
    next_id: u64,
    /// Incremented on every change (invalidates cached search results).
    pub generation: u64,
    /// The clock: set by the simulator before each mutation (UTC `yyyy-MM-ddTHH:mm:ss`).
    pub now: String,
    /// Date fields' values sorted by instant, built on the first date-range search after a change
    /// (the store generation it was built at): a range search then reads only its matches, as a
    /// search index would, instead of every asset.
    date_index: std::sync::Mutex<Option<(u64, DateIndex)>>,
}

impl Store {
    /// An empty instance with these custom fields and value lists; `spellings` overrides how the
    /// instance spells some fields (`CoreField.photographer`).
    pub fn new(
        custom_fields: BTreeSet<String>,
        allowed_values: BTreeMap<String, BTreeSet<String>>,
        spellings: &[String],
    ) -> Self {
        let mut store = Self {
            custom_fields,
            ..Self::default()
        };
        let known: Vec<String> = CORE_FIELDS
            .iter()
            .map(|f| (*f).to_owned())
            .chain(store.custom_fields.iter().cloned())
            .collect();
        for field in known {
            store.spelling.insert(field.to_ascii_lowercase(), field);
        }
        for spelt in spellings {
            store
                .spelling
                .insert(spelt.to_ascii_lowercase(), spelt.clone());
        }
        store.custom_fields = store
            .custom_fields
            .iter()
            .filter_map(|f| store.canonical(f))
            .collect();
        store.allowed_values = allowed_values
            .into_iter()
            .filter_map(|(k, v)| Some((store.canonical(&k)?, v)))
            .collect();
        store.date_fields = DEFAULT_DATE_FIELDS
            .iter()
            .filter_map(|f| store.canonical(f))
            .collect();
        store
    }

    /// The instance's spelling of `field`, if the instance has it (matched ignoring case).
    pub fn canonical(&self, field: &str) -> Option<String> {
        self.spelling.get(&field.to_ascii_lowercase()).cloned()
    }

    /// Whether `field` exists on this instance.
    pub fn knows_field(&self, field: &str) -> bool {
        self.canonical(field).is_some() || is_identifier(field)
    }

    fn is_date(&self, field: &str) -> bool {
        self.canonical(field)
            .is_some_and(|f| self.date_fields.contains(&f))
    }

    /// A fresh RecordID and identifier.
    pub fn new_ids(&mut self) -> (String, String) {
        self.next_id += 1;
        let n = self.next_id;
        (format!("2S{n:08X}"), format!("SIM{n}"))
    }

    /// Adds a folder.
    pub fn add_folder(&mut self, title: &str, parent: Option<String>) -> String {
        let (record_id, identifier) = self.new_ids();
        self.folders.insert(
            record_id.clone(),
            Folder {
                record_id: record_id.clone(),
                identifier,
                title: title.to_owned(),
                parent,
            },
        );
        record_id
    }

    /// The folder at `path` (titles separated by `/`, from the top), creating what is missing.
    pub fn folder_path(&mut self, path: &str) -> String {
        let mut parent: Option<String> = None;
        for title in path.split('/').map(str::trim).filter(|t| !t.is_empty()) {
            let existing = self
                .folders
                .values()
                .find(|f| f.title == title && f.parent == parent)
                .map(|f| f.record_id.clone());
            let id = existing.unwrap_or_else(|| self.add_folder(title, parent.clone()));
            parent = Some(id);
        }
        parent.unwrap_or_else(|| self.add_folder(path, None))
    }

    /// The folder at `path`, if it exists.
    pub fn find_folder_path(&self, path: &str) -> Option<&Folder> {
        let mut parent: Option<&str> = None;
        let mut found = None;
        for title in path.split('/').map(str::trim).filter(|t| !t.is_empty()) {
            let folder = self
                .folders
                .values()
                .find(|f| f.title == title && f.parent.as_deref() == parent)?;
            parent = Some(&folder.record_id);
            found = Some(folder);
        }
        found
    }

    /// The folder a RecordID names: Orange Logic's upload and parent-folder parameters take a
    /// folder's RecordID, not its title.
    pub fn resolve_folder(&self, record_id: &str) -> Option<&Folder> {
        self.folders.get(record_id.trim())
    }

    /// Adds an asset with `fields` (names taken in the instance's spelling; dates as written to
    /// the instance); dates are set from the clock unless given.
    pub fn add_asset(&mut self, fields: BTreeMap<String, String>) -> String {
        let (record_id, identifier) = self.new_ids();
        let fields = fields
            .into_iter()
            .map(|(k, v)| {
                let name = self.canonical(&k).unwrap_or(k);
                let value = if self.date_fields.contains(&name) {
                    self.clock.accept(&v).unwrap_or(v)
                } else {
                    v
                };
                (name, value)
            })
            .collect();
        let mut asset = Asset {
            record_id: record_id.clone(),
            identifier,
            fields,
            versions: Vec::new(),
        };
        for date in ["CoreField.CreateDate", "CoreField.EditDate"] {
            asset
                .fields
                .entry(date.into())
                .or_insert_with(|| self.now.clone());
        }
        let version = self
            .canonical("CoreField.Version")
            .unwrap_or_else(|| "CoreField.Version".into());
        asset.fields.entry(version).or_insert_with(|| "1".into());
        self.assets.insert(record_id.clone(), asset);
        record_id
    }

    /// Deletes an asset, logging when.
    pub fn delete(&mut self, record_id: &str) -> bool {
        match self.assets.remove(record_id) {
            Some(asset) => {
                self.deleted.push(Deletion {
                    record_id: asset.record_id,
                    identifier: asset.identifier,
                    at: self.now.clone(),
                });
                true
            }
            None => false,
        }
    }

    /// The asset a key names: RecordID, or the identifier fields.
    pub fn find(&self, key_field: &str, key: &str) -> Option<&Asset> {
        match key_field.to_ascii_lowercase().as_str() {
            "recordid" => self.assets.get(key),
            "corefield.identifier" | "corefield.unique-identifier" | "systemidentifier" => {
                self.assets.values().find(|a| a.identifier == key)
            }
            _ => None,
        }
    }

    /// Applies DataTable assignments to one asset; returns the fields ignored as unknown or
    /// read-only. Nothing is applied when one assignment fails.
    pub fn update(
        &mut self,
        record_id: &str,
        assignments: &[(String, Op, String)],
    ) -> Result<Vec<String>, UpdateError> {
        if !self.assets.contains_key(record_id) {
            return Err(UpdateError::NoRecord(record_id.to_owned()));
        }
        let mut ignored = Vec::new();
        let mut resolved = Vec::new();
        for (field, op, value) in assignments {
            let Some(name) = self.canonical(field) else {
                ignored.push(format!("{field}{}", op_suffix(*op)));
                continue;
            };
            if READ_ONLY.iter().any(|r| r.eq_ignore_ascii_case(&name)) {
                ignored.push(format!("{field}{}", op_suffix(*op)));
                continue;
            }
            let value = if name == "CoreField.Parent-folder" {
                let reference = folder_reference(value);
                self.resolve_folder(&reference)
                    .map(|f| f.record_id.clone())
                    .ok_or(UpdateError::NoFolder(reference))?
            } else if self.is_date(&name) && !value.trim().is_empty() {
                self.clock
                    .accept(value)
                    .ok_or_else(|| UpdateError::NotADate {
                        field: name.clone(),
                    })?
            } else {
                value.clone()
            };
            if let (Some(allowed), Op::Set | Op::Add) = (self.allowed_values.get(&name), op)
                && let Some(bad) = split(&value).find(|v| !allowed.contains(*v))
            {
                return Err(UpdateError::NotAllowed {
                    field: name,
                    value: bad.to_owned(),
                });
            }
            resolved.push((name, *op, value));
        }
        let now = self.now.clone();
        let mut created_values = Vec::new();
        let asset = self
            .assets
            .get_mut(record_id)
            .ok_or_else(|| UpdateError::NoRecord(record_id.to_owned()))?;
        for (field, op, value) in resolved {
            // Text fields keep a `:=` value whole (a comment log holds newlines and any
            // character); list fields take `|`-separated values.
            if op == Op::Set
                && !self.allowed_values.contains_key(&field)
                && field != "CoreField.Keywords"
            {
                asset.fields.insert(field, value);
                continue;
            }
            let current = asset.fields.get(&field).cloned().unwrap_or_default();
            let mut values: Vec<String> = split(&current).map(str::to_owned).collect();
            match op {
                Op::Set => values = split(&value).map(str::to_owned).collect(),
                Op::Add | Op::AddCreating => {
                    for v in split(&value) {
                        if !values.iter().any(|x| x == v) {
                            values.push(v.to_owned());
                        }
                        if op == Op::AddCreating {
                            created_values.push((field.clone(), v.to_owned()));
                        }
                    }
                }
                Op::Remove if value.is_empty() => values.clear(),
                Op::Remove => values.retain(|x| !split(&value).any(|v| v == x)),
            }
            values.retain(|v| !v.is_empty());
            asset.fields.insert(field, values.join("|"));
        }
        asset.fields.insert("CoreField.EditDate".into(), now);
        for (field, value) in created_values {
            if let Some(list) = self.allowed_values.get_mut(&field) {
                list.insert(value);
            }
        }
        Ok(ignored)
    }

    /// Adds a file version (as "upload new version" would).
    pub fn new_version(&mut self, record_id: &str, file_name: &str) -> Option<u32> {
        let now = self.now.clone();
        let asset = self.assets.get_mut(record_id)?;
        // Seeded assets stand for one version that was never uploaded here.
        let number = (asset.versions.len() as u32).max(1) + 1;
        asset.versions.push(Version {
            number,
            file_name: file_name.to_owned(),
            size: 0,
            sha256: String::new(),
            head: Vec::new(),
        });
        asset.fields.insert("CoreField.EditDate".into(), now);
        let version = asset
            .fields
            .keys()
            .find(|k| k.eq_ignore_ascii_case("CoreField.Version"))
            .cloned()
            .unwrap_or_else(|| "CoreField.Version".into());
        asset.fields.insert(version, number.to_string());
        Some(number)
    }

    /// A value as the instance writes it in an answer (dates in its style and zone).
    pub fn written(&self, field: &str, value: &str) -> String {
        if self.is_date(field) {
            self.clock.render(value)
        } else {
            value.to_owned()
        }
    }

    /// The record DataTable returns for an asset.
    pub fn record(&self, asset: &Asset) -> serde_json::Map<String, serde_json::Value> {
        let mut record: serde_json::Map<String, serde_json::Value> = asset
            .fields
            .iter()
            .map(|(k, v)| (k.clone(), serde_json::Value::String(self.written(k, v))))
            .collect();
        record.insert("RecordID".into(), asset.record_id.clone().into());
        record.insert(
            "CoreField.Identifier".into(),
            asset.identifier.clone().into(),
        );
        record.insert(
            "CoreField.Unique-identifier".into(),
            asset.identifier.clone().into(),
        );
        record.insert("CoreField.DocType".into(), asset.doc_type().into());
        record.insert("CoreField.DocSubType".into(), asset.doc_subtype().into());
        record
    }

    /// The record DataTable returns for a folder.
    pub fn folder_record(&self, folder: &Folder) -> serde_json::Map<String, serde_json::Value> {
        let mut record = serde_json::Map::new();
        record.insert("RecordID".into(), folder.record_id.clone().into());
        record.insert(
            "CoreField.Unique-identifier".into(),
            folder.identifier.clone().into(),
        );
        record.insert("CoreField.Title".into(), folder.title.clone().into());
        record.insert(
            "CoreField.Parent-folder".into(),
            folder.parent.clone().unwrap_or_default().into(),
        );
        record
    }

    /// The stored value of a search field for an asset (dates UTC; see [`Store::written`]).
    pub fn search_value<'a>(&'a self, asset: &'a Asset, field: &str) -> Option<&'a str> {
        let is = |name: &str| field.eq_ignore_ascii_case(name);
        if is("RecordID") || is("MediaEncryptedIdentifier") {
            Some(&asset.record_id)
        } else if is("SystemIdentifier")
            || is("CoreField.Identifier")
            || is("CoreField.Unique-identifier")
        {
            Some(&asset.identifier)
        } else if is("ParentFolderIdentifier") {
            asset
                .field("CoreField.Parent-folder")
                .and_then(|f| self.folders.get(f))
                .map(|f| f.identifier.as_str())
        } else if is("Title") {
            asset.field("CoreField.Title")
        } else if is("CoreField.DocType") || is("DocType") {
            Some(asset.doc_type())
        } else if is("CoreField.DocSubType") || is("DocSubType") {
            Some(asset.doc_subtype())
        } else if is("GlobalEditDate") || is("EditDate") {
            asset.field("CoreField.EditDate")
        } else {
            asset.field(field)
        }
    }

    fn is_date_criterion(&self, field: &str) -> bool {
        ["GlobalEditDate", "EditDate", "CreateDate"]
            .iter()
            .any(|f| f.eq_ignore_ascii_case(field))
            || self.is_date(field)
    }

    /// RecordIDs whose `field` holds an instant within the bounds, from the date index.
    fn indexed(
        &self,
        field: &str,
        from: Option<Timestamp>,
        to: Option<Timestamp>,
    ) -> Option<Vec<String>> {
        let name = self
            .canonical(field)
            .filter(|f| self.date_fields.contains(f))?;
        let mut guard = self
            .date_index
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        if guard
            .as_ref()
            .is_none_or(|(generation, _)| *generation != self.generation)
        {
            let mut index: DateIndex = BTreeMap::new();
            for asset in self.assets.values() {
                for date in &self.date_fields {
                    if let Some(at) = asset.field(date).and_then(parse_stored) {
                        index
                            .entry(date.clone())
                            .or_default()
                            .push((at, asset.record_id.clone()));
                    }
                }
            }
            for values in index.values_mut() {
                values.sort();
            }
            *guard = Some((self.generation, index));
        }
        let values = guard.as_ref().and_then(|(_, index)| index.get(&name));
        let Some(values) = values else {
            return Some(Vec::new());
        };
        let start = from.map_or(0, |at| values.partition_point(|(v, _)| *v < at));
        let end = to.map_or(values.len(), |at| values.partition_point(|(v, _)| *v <= at));
        Some(
            values[start..end.max(start)]
                .iter()
                .map(|(_, id)| id.clone())
                .collect(),
        )
    }

    /// Assets matching `query`, in RecordID order. Date ranges must use the documented format.
    pub fn search<'a>(&'a self, query: &Query) -> Result<Vec<&'a Asset>, QueryError> {
        let mut bounds = Vec::new();
        for criterion in &query.0 {
            if let Criterion::AtLeast(field, value) | Criterion::AtMost(field, value) = criterion {
                if self.is_date_criterion(field) {
                    let at = self.clock.criterion(value).ok_or_else(|| {
                        QueryError(format!("{field}: dates are written YYYY-MM-DDTHH.MM.SS"))
                    })?;
                    bounds.push(Some(at));
                } else {
                    bounds.push(None);
                }
            } else {
                bounds.push(None);
            }
        }
        // A date range narrows the candidates through the index; every criterion is still checked.
        let ranged =
            query
                .0
                .iter()
                .zip(&bounds)
                .find_map(|(criterion, bound)| match (criterion, bound) {
                    (Criterion::AtLeast(field, _) | Criterion::AtMost(field, _), Some(_)) => {
                        Some(field.clone())
                    }
                    _ => None,
                });
        let candidates: Vec<&Asset> = match ranged.as_deref().and_then(|field| {
            let bound_of = |at_least: bool| {
                query.0.iter().zip(&bounds).find_map(|(criterion, bound)| {
                    match (criterion, bound) {
                        (Criterion::AtLeast(f, _), Some(at))
                            if at_least && f.eq_ignore_ascii_case(field) =>
                        {
                            Some(*at)
                        }
                        (Criterion::AtMost(f, _), Some(at))
                            if !at_least && f.eq_ignore_ascii_case(field) =>
                        {
                            Some(*at)
                        }
                        _ => None,
                    }
                })
            };
            self.indexed(field, bound_of(true), bound_of(false))
        }) {
            Some(mut ids) => {
                ids.sort();
                ids.dedup();
                ids.iter().filter_map(|id| self.assets.get(id)).collect()
            }
            None => self.assets.values().collect(),
        };
        Ok(candidates
            .into_iter()
            .filter(|asset| {
                query.0.iter().zip(&bounds).all(|(criterion, bound)| {
                    let value_of = |field: &str| self.search_value(asset, field);
                    let instant = |field: &str| value_of(field).and_then(parse_stored);
                    match (criterion, bound) {
                        (Criterion::Equals(field, wanted), _) => value_of(field).is_some_and(|v| {
                            v.eq_ignore_ascii_case(wanted)
                                || split(v).any(|v| v.eq_ignore_ascii_case(wanted))
                        }),
                        (Criterion::AtLeast(field, _), Some(at)) => {
                            instant(field).is_some_and(|v| v >= *at)
                        }
                        (Criterion::AtMost(field, _), Some(at)) => {
                            instant(field).is_some_and(|v| v <= *at)
                        }
                        (Criterion::AtLeast(field, bound), None) => {
                            value_of(field).is_some_and(|v| !v.is_empty() && v >= bound.as_str())
                        }
                        (Criterion::AtMost(field, bound), None) => {
                            value_of(field).is_some_and(|v| !v.is_empty() && v <= bound.as_str())
                        }
                    }
                })
            })
            .collect())
    }

    /// Sorts search results as `sort` says: `<field> asc|desc` (dates as instants), or the
    /// named orders that change nothing here (`Relevancy`, `Newest`).
    pub fn sort(&self, assets: &mut [&Asset], sort: &str) -> Result<(), QueryError> {
        let sort = sort.trim();
        if sort.is_empty() || sort.eq_ignore_ascii_case("Relevancy") {
            return Ok(());
        }
        if sort.eq_ignore_ascii_case("Newest") {
            return self.sort(assets, "CoreField.CreateDate desc");
        }
        let (field, direction) = sort.rsplit_once(' ').unwrap_or((sort, "asc"));
        let descending = match direction.to_ascii_lowercase().as_str() {
            "asc" => false,
            "desc" => true,
            _ => return Err(QueryError(format!("unsupported sort {sort:?}"))),
        };
        let field = field.trim();
        if !self.knows_field(field) && !self.is_date_criterion(field) {
            return Err(QueryError(format!("unknown sort field {field:?}")));
        }
        let date = self.is_date_criterion(field);
        assets.sort_by(|a, b| {
            let (x, y) = (self.search_value(a, field), self.search_value(b, field));
            let order = if date {
                x.and_then(parse_stored).cmp(&y.and_then(parse_stored))
            } else {
                x.cmp(&y)
            };
            if descending { order.reverse() } else { order }
        });
        Ok(())
    }
}

fn is_identifier(field: &str) -> bool {
    [
        "RecordID",
        "CoreField.Identifier",
        "CoreField.Unique-identifier",
    ]
    .iter()
    .any(|f| f.eq_ignore_ascii_case(field))
}

fn op_suffix(op: Op) -> &'static str {
    match op {
        Op::Set => ":",
        Op::Add => "+",
        Op::AddCreating => "++",
        Op::Remove => "--",
    }
}

/// Splits a DataTable key into field and operator: `CoreField.Title:` → (`CoreField.Title`, Set).
pub fn parse_assignment(key: &str) -> Option<(String, Op)> {
    for (suffix, op) in [
        ("++", Op::AddCreating),
        ("--", Op::Remove),
        ("+", Op::Add),
        (":", Op::Set),
    ] {
        if let Some(field) = key.strip_suffix(suffix) {
            return Some((field.to_owned(), op));
        }
    }
    None
}

fn split(value: &str) -> impl Iterator<Item = &str> {
    value.split('|').map(str::trim).filter(|v| !v.is_empty())
}

/// A folder reference: a plain RecordID, or a sub-call `[...:Read?RecordID=X]`.
fn folder_reference(value: &str) -> String {
    let inner = value.trim();
    match inner.strip_prefix('[').and_then(|v| v.strip_suffix(']')) {
        Some(call) => match call.rsplit_once('?').map(|(_, q)| q.split_once('=')) {
            Some(Some((key, id))) if key.eq_ignore_ascii_case("RecordID") => id.to_owned(),
            _ => String::new(),
        },
        None => inner.to_owned(),
    }
}

/// One criterion of the supported query subset.
#[derive(Debug, Clone, PartialEq, Eq)]
enum Criterion {
    Equals(String, String),
    AtLeast(String, String),
    AtMost(String, String),
}

/// A parsed search query: criteria joined by AND (space or `AND`).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Query(Vec<Criterion>);

/// A query outside the supported subset.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("unsupported query near {0:?}")]
pub struct QueryError(pub String);

impl Query {
    /// Parses `a:b c>:d AND e:"f g"`; an empty query or `*` matches everything.
    pub fn parse(text: &str) -> Result<Self, QueryError> {
        let mut criteria = Vec::new();
        for token in tokens(text) {
            if token == "AND" || token == "*" {
                continue;
            }
            let criterion = if let Some((field, value)) = token.split_once(">:") {
                Criterion::AtLeast(field.to_owned(), unquote(value))
            } else if let Some((field, value)) = token.split_once("<:") {
                Criterion::AtMost(field.to_owned(), unquote(value))
            } else if let Some((field, value)) = token.split_once(':') {
                Criterion::Equals(field.to_owned(), unquote(value))
            } else {
                return Err(QueryError(token));
            };
            criteria.push(criterion);
        }
        Ok(Self(criteria))
    }
}

fn unquote(value: &str) -> String {
    value.trim_matches('"').to_owned()
}

fn tokens(text: &str) -> Vec<String> {
    let mut tokens = Vec::new();
    let mut current = String::new();
    let mut quoted = false;
    for c in text.chars() {
        match c {
            '"' => {
                quoted = !quoted;
                current.push(c);
            }
            c if c.is_whitespace() && !quoted => {
                if !current.is_empty() {
                    tokens.push(std::mem::take(&mut current));
                }
            }
            c => current.push(c),
        }
    }
    if !current.is_empty() {
        tokens.push(current);
    }
    tokens
}

#[cfg(test)]
mod tests {
    use super::*;

    fn store() -> Store {
        let mut store = Store::new(
            ["Custom.Campaign".to_owned()].into(),
            [(
                "CoreField.Status".to_owned(),
                ["Draft", "Approved"].map(String::from).into(),
            )]
            .into(),
            &[],
        );
        store.now = "2026-11-26T10:00:00".into();
        store
    }

    #[test]
    fn queries_combine_equality_quotes_and_date_ranges_in_the_documented_format() {
        let mut store = store();
        let fields = |status: &str, date: &str| {
            [
                ("CoreField.Status".to_owned(), status.to_owned()),
                ("CoreField.EditDate".to_owned(), date.to_owned()),
                ("Custom.Campaign".to_owned(), "Super Bowl".to_owned()),
            ]
            .into()
        };
        store.add_asset(fields("Draft", "2026-11-01T00:00:00"));
        store.add_asset(fields("Approved", "2026-11-20T00:00:00"));
        let query = Query::parse(
            r#"Custom.Campaign:"Super Bowl" AND CoreField.EditDate>:2026-11-10T00.00.00"#,
        )
        .expect("query");
        let found: Vec<_> = store
            .search(&query)
            .expect("search")
            .iter()
            .map(|a| a.identifier.clone())
            .collect();
        assert_eq!(found, ["SIM2"]);
        let colons = Query::parse("CoreField.EditDate>:2026-11-10T00:00:00").expect("query");
        assert!(
            store.search(&colons).is_err(),
            "only the documented date format"
        );
    }

    #[test]
    fn updates_apply_operators_and_report_unknown_fields() {
        let mut store = store();
        let id = store.add_asset(BTreeMap::new());
        let ignored = store
            .update(
                &id,
                &[
                    ("CoreField.Keywords".into(), Op::AddCreating, "a|b".into()),
                    ("Custom.Nope".into(), Op::Set, "x".into()),
                ],
            )
            .expect("ok");
        assert_eq!(ignored, ["Custom.Nope:"]);
        store
            .update(
                &id,
                &[("CoreField.Keywords".into(), Op::Remove, "a".into())],
            )
            .expect("ok");
        assert_eq!(store.assets[&id].fields["CoreField.Keywords"], "b");
        let refused = store.update(&id, &[("CoreField.Status".into(), Op::Set, "Bogus".into())]);
        assert!(matches!(refused, Err(UpdateError::NotAllowed { .. })));
    }

    #[test]
    fn field_names_match_ignoring_case_and_answer_in_the_instance_spelling() {
        let mut store = Store::new(
            BTreeSet::new(),
            BTreeMap::new(),
            &["CoreField.photographer".into()],
        );
        let id = store.add_asset([("CoreField.Photographer".to_owned(), "A".to_owned())].into());
        let record = store.record(&store.assets[&id]);
        assert_eq!(record["CoreField.photographer"], "A");
        assert!(!record.contains_key("CoreField.Photographer"));
    }

    #[test]
    fn a_folder_sub_call_resolves_by_record_id_only() {
        let mut store = store();
        let folder = store.add_folder("Field", None);
        let id = store.add_asset(BTreeMap::new());
        let sub_call =
            format!("[/API/DataTable/V2.2/Documents.Folder.Default:Read?RecordID={folder}]");
        store
            .update(
                &id,
                &[("CoreField.Parent-folder".into(), Op::Set, sub_call)],
            )
            .expect("moved");
        assert_eq!(store.assets[&id].fields["CoreField.Parent-folder"], folder);
        let by_title = store.update(
            &id,
            &[("CoreField.Parent-folder".into(), Op::Set, "Field".into())],
        );
        assert!(matches!(by_title, Err(UpdateError::NoFolder(_))));
    }

    #[test]
    fn dates_are_written_in_the_display_style_and_the_instance_zone() {
        let clock = Clock {
            zone: TimeZone::get("America/New_York").expect("zone"),
            style: DateStyle::Display,
        };
        assert_eq!(
            clock.render("2019-11-22T15:23:19"),
            "11/22/2019 10:23:19 AM"
        );
        assert_eq!(clock.render("2027-01-01T05:00:01"), "1/1/2027 12:00:01 AM");
        assert_eq!(
            clock.accept("11/22/2019 10:23:19 AM").as_deref(),
            Some("2019-11-22T15:23:19")
        );
        assert_eq!(
            clock
                .criterion("2019-11-22T10.23.19")
                .map(stored)
                .as_deref(),
            Some("2019-11-22T15:23:19")
        );
    }

    #[test]
    fn folder_paths_are_trees_of_titles() {
        let mut store = store();
        let field = store.folder_path("Projects/Bridge/Field");
        assert_eq!(store.folder_path("Projects/Bridge/Field"), field);
        assert_eq!(store.folders.len(), 3);
        assert_eq!(
            store
                .find_folder_path("Projects/Bridge/Field")
                .map(|f| f.record_id.clone()),
            Some(field)
        );
        assert!(store.find_folder_path("Projects/Field").is_none());
    }
}

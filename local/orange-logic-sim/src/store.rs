//! The simulator's in-memory DAM: folders, assets with versions, fields (core and custom
//! prefixed), allowed values, dates; the search query subset; the DataTable operators.

use serde::{Deserialize, Serialize};
use std::collections::{BTreeMap, BTreeSet};

/// Core fields every asset may carry.
pub const CORE_FIELDS: [&str; 14] = [
    "CoreField.Title",
    "CoreField.Description",
    "CoreField.Keywords",
    "CoreField.Status",
    "CoreField.Owner",
    "CoreField.UsageRights",
    "CoreField.ExpirationDate",
    "CoreField.ProjectTag",
    "CoreField.Photographer",
    "CoreField.DocSubType",
    "CoreField.Parent-folder",
    "CoreField.Visibility-class",
    "CoreField.CreateDate",
    "CoreField.EditDate",
];

/// Fields the DAM maintains itself; writes to them are ignored like Orange Logic's read-only fields.
const READ_ONLY: [&str; 3] = [
    "CoreField.CreateDate",
    "CoreField.EditDate",
    "CoreField.Identifier",
];

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
}

/// An asset.
#[derive(Debug, Clone, Serialize)]
pub struct Asset {
    /// RecordID.
    pub record_id: String,
    /// Unique (system) identifier.
    pub identifier: String,
    /// Field values; multi-values joined with `|`.
    pub fields: BTreeMap<String, String>,
    /// File versions.
    pub versions: Vec<Version>,
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
    #[error("folder reference {0} does not resolve")]
    NoFolder(String),
}

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
    next_id: u64,
    /// Incremented on every change (invalidates cached search results).
    pub generation: u64,
    /// The clock: set by the simulator before each mutation (`yyyy-MM-ddTHH:mm:ss`).
    pub now: String,
}

impl Store {
    /// An empty instance with these custom fields and value lists.
    pub fn new(
        custom_fields: BTreeSet<String>,
        allowed_values: BTreeMap<String, BTreeSet<String>>,
    ) -> Self {
        Self {
            custom_fields,
            allowed_values,
            ..Self::default()
        }
    }

    /// Whether `field` exists on this instance.
    pub fn knows_field(&self, field: &str) -> bool {
        CORE_FIELDS.contains(&field)
            || self.custom_fields.contains(field)
            || field == "CoreField.Identifier"
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

    /// The folder a RecordID, identifier or title names.
    pub fn resolve_folder(&self, reference: &str) -> Option<&Folder> {
        self.folders.get(reference).or_else(|| {
            self.folders
                .values()
                .find(|f| f.identifier == reference || f.title == reference)
        })
    }

    /// Adds an asset with `fields`; dates are set from the clock unless given.
    pub fn add_asset(&mut self, fields: BTreeMap<String, String>) -> String {
        let (record_id, identifier) = self.new_ids();
        let mut asset = Asset {
            record_id: record_id.clone(),
            identifier,
            fields,
            versions: Vec::new(),
        };
        asset
            .fields
            .entry("CoreField.CreateDate".into())
            .or_insert_with(|| self.now.clone());
        asset
            .fields
            .entry("CoreField.EditDate".into())
            .or_insert_with(|| self.now.clone());
        self.assets.insert(record_id.clone(), asset);
        record_id
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

    /// Applies DataTable assignments to one asset; returns the fields ignored as unknown.
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
            if !self.knows_field(field) || READ_ONLY.contains(&field.as_str()) {
                ignored.push(format!("{field}{}", op_suffix(*op)));
                continue;
            }
            let value = if field == "CoreField.Parent-folder" {
                let reference = folder_reference(value);
                self.resolve_folder(&reference)
                    .map(|f| f.record_id.clone())
                    .ok_or(UpdateError::NoFolder(reference))?
            } else {
                value.clone()
            };
            if let (Some(allowed), Op::Set | Op::Add) = (self.allowed_values.get(field), op)
                && let Some(bad) = split(&value).find(|v| !allowed.contains(*v))
            {
                return Err(UpdateError::NotAllowed {
                    field: field.clone(),
                    value: bad.to_owned(),
                });
            }
            resolved.push((field.clone(), *op, value));
        }
        let now = self.now.clone();
        let mut created_values = Vec::new();
        let asset = self
            .assets
            .get_mut(record_id)
            .ok_or_else(|| UpdateError::NoRecord(record_id.to_owned()))?;
        for (field, op, value) in resolved {
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

    /// The record DataTable returns for an asset.
    pub fn record(&self, asset: &Asset) -> serde_json::Map<String, serde_json::Value> {
        let mut record: serde_json::Map<String, serde_json::Value> = asset
            .fields
            .iter()
            .map(|(k, v)| (k.clone(), serde_json::Value::String(v.clone())))
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
        record
    }

    /// The value of a search field for an asset.
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
                .fields
                .get("CoreField.Parent-folder")
                .and_then(|f| self.folders.get(f))
                .map(|f| f.identifier.as_str())
        } else if is("Title") {
            asset.fields.get("CoreField.Title").map(String::as_str)
        } else {
            asset.fields.get(field).map(String::as_str)
        }
    }

    /// Assets matching `query`, in RecordID order.
    pub fn search<'a>(&'a self, query: &Query) -> impl Iterator<Item = &'a Asset> + 'a {
        let query = query.clone();
        self.assets
            .values()
            .filter(move |asset| query.matches(|field| self.search_value(asset, field)))
    }
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

/// A folder reference: a plain id, or a sub-call `[...:Read?RecordID=X]` / `[...Unique-Identifier=X]`.
fn folder_reference(value: &str) -> String {
    let inner = value.trim();
    match inner.strip_prefix('[').and_then(|v| v.strip_suffix(']')) {
        Some(call) => call
            .rsplit_once('=')
            .map(|(_, id)| id.to_owned())
            .unwrap_or_default(),
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

    fn matches<'a>(&self, value_of: impl Fn(&str) -> Option<&'a str>) -> bool {
        self.0.iter().all(|criterion| match criterion {
            Criterion::Equals(field, wanted) => value_of(field).is_some_and(|v| {
                v.eq_ignore_ascii_case(wanted) || split(v).any(|v| v.eq_ignore_ascii_case(wanted))
            }),
            Criterion::AtLeast(field, bound) => {
                value_of(field).is_some_and(|v| !v.is_empty() && v >= bound.as_str())
            }
            Criterion::AtMost(field, bound) => {
                value_of(field).is_some_and(|v| !v.is_empty() && v <= bound.as_str())
            }
        })
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
        let mut store = Store {
            now: "2026-11-26T10:00:00".into(),
            ..Store::default()
        };
        store.custom_fields.insert("Custom.Campaign".into());
        store.allowed_values.insert(
            "CoreField.Status".into(),
            ["Draft", "Approved"].map(String::from).into(),
        );
        store
    }

    #[test]
    fn queries_combine_equality_quotes_and_ranges() {
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
            r#"Custom.Campaign:"Super Bowl" AND CoreField.EditDate>:2026-11-10T00:00:00"#,
        )
        .expect("query");
        let found: Vec<_> = store.search(&query).map(|a| a.identifier.clone()).collect();
        assert_eq!(found, ["SIM2"]);
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
    fn a_folder_sub_call_resolves_to_the_folder() {
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
    }
}

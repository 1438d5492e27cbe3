//! The [`AssetSource`] port on Orange Logic: DataTable reads for one asset, Search for the poll.

use super::{OrangeLogicClient, OrangeLogicError, Record, SearchQuery};
use crate::domain::dam::{AssetId, AssetSnapshot};
use crate::error::Retryable;
use crate::ports::{AssetSource, DamError};
use futures::TryStreamExt as _;
use serde_json::Value;
use std::collections::BTreeMap;
use std::sync::Arc;

/// Reads assets for change detection.
#[derive(Debug, Clone)]
pub struct OrangeLogicAssets {
    client: Arc<OrangeLogicClient>,
    fields: Vec<String>,
    edit_date_field: String,
}

impl OrangeLogicAssets {
    /// Reads `fields` of assets; polls on `edit_date_field`.
    pub fn new(
        client: Arc<OrangeLogicClient>,
        fields: Vec<String>,
        edit_date_field: impl Into<String>,
    ) -> Self {
        Self {
            client,
            fields,
            edit_date_field: edit_date_field.into(),
        }
    }
}

fn to_port(error: OrangeLogicError) -> DamError {
    if error.is_retryable() {
        DamError::Unavailable(Box::new(error))
    } else {
        DamError::Refused(Box::new(error))
    }
}

/// Field values as text: lists joined with `|` (DataTable's multi-value separator).
pub fn snapshot_of(id: AssetId, record: &Record) -> AssetSnapshot {
    let fields: BTreeMap<String, String> = record
        .iter()
        .filter_map(|(name, value)| {
            let text = match value {
                Value::Null => return None,
                Value::String(s) => s.clone(),
                Value::Array(values) => values
                    .iter()
                    .map(|v| v.as_str().map_or_else(|| v.to_string(), str::to_owned))
                    .collect::<Vec<_>>()
                    .join("|"),
                other => other.to_string(),
            };
            Some((name.clone(), text))
        })
        .collect();
    AssetSnapshot { id, fields }
}

impl AssetSource for OrangeLogicAssets {
    async fn read(&self, id: &AssetId) -> Result<Option<AssetSnapshot>, DamError> {
        let record = self
            .client
            .read_record("RecordID", id.as_str())
            .await
            .map_err(to_port)?;
        Ok(record.map(|r| snapshot_of(id.clone(), &r)))
    }

    async fn edited_since(&self, since: &str) -> Result<Vec<AssetSnapshot>, DamError> {
        let mut fields = self.fields.clone();
        fields.push("RecordID".into());
        let query = SearchQuery {
            query: format!("{}>:{since}", self.edit_date_field),
            fields,
            per_page: super::MAX_PER_PAGE,
            sort: None,
        };
        let mut found = Vec::new();
        let mut pages = std::pin::pin!(self.client.search(query));
        while let Some(page) = pages.try_next().await.map_err(to_port)? {
            for item in &page.items {
                let Some(id) = item
                    .get("RecordID")
                    .and_then(Value::as_str)
                    .and_then(|r| AssetId::parse(r).ok())
                else {
                    tracing::warn!("search item without a usable RecordID skipped");
                    continue;
                };
                found.push(snapshot_of(id, item));
            }
        }
        Ok(found)
    }
}

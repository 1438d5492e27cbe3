//! The [`AssetSource`] port on Orange Logic: DataTable reads for one asset, Search for the poll
//! (page by page, sorted on the edit date), deleted objects.

use super::{OrangeLogicClient, OrangeLogicError, Record, SearchQuery};
use crate::connector_config::{DamSettings, DeletionSettings};
use crate::domain::dam::{AssetId, AssetSnapshot, ChangeRules, DamDates, DamInstant};
use crate::error::Retryable;
use crate::ports::{AssetSource, DamError};
use futures::StreamExt as _;
use serde_json::Value;
use std::collections::BTreeMap;
use std::sync::Arc;

/// Reads assets for change detection.
#[derive(Debug, Clone)]
pub struct OrangeLogicAssets {
    client: Arc<OrangeLogicClient>,
    fields: Vec<String>,
    edit_date_field: String,
    dates: DamDates,
    sort: String,
    deletions: DeletionSettings,
}

impl OrangeLogicAssets {
    /// Reads the fields `rules` need; polls on the edit date, sorted as `dam.search.poll_sort`
    /// says (default: the edit date ascending), and deleted objects as `dam.deletions` says.
    pub fn new(client: Arc<OrangeLogicClient>, rules: &ChangeRules, dam: &DamSettings) -> Self {
        Self {
            client,
            fields: rules.fields(),
            edit_date_field: rules.edit_date_field().to_owned(),
            dates: rules.dates().clone(),
            sort: dam
                .search
                .poll_sort
                .clone()
                .unwrap_or_else(|| format!("{} asc", dam.edit_date_field)),
            deletions: dam.deletions.clone(),
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

fn record_id(item: &Record) -> Option<AssetId> {
    super::field_text(item, "RecordID").and_then(|r| AssetId::parse(&r).ok())
}

impl AssetSource for OrangeLogicAssets {
    async fn read(&self, id: &AssetId) -> Result<Option<AssetSnapshot>, DamError> {
        let record = self.client.read_asset(id.as_str()).await.map_err(to_port)?;
        Ok(record.map(|r| snapshot_of(id.clone(), &r)))
    }

    fn edited_since(
        &self,
        since: DamInstant,
    ) -> impl futures::Stream<Item = Result<Vec<AssetSnapshot>, DamError>> + Send + '_ {
        let mut fields = self.fields.clone();
        fields.push("RecordID".into());
        let query = SearchQuery {
            query: format!(
                "{}>:{}",
                self.edit_date_field,
                self.dates.search_text(since)
            ),
            fields,
            per_page: super::MAX_PER_PAGE,
            sort: Some(self.sort.clone()),
        };
        self.client
            .search(query)
            .map(|page| match page {
                Ok(page) => Some(Ok(page
                    .items
                    .iter()
                    .filter_map(|item| match record_id(item) {
                        Some(id) => Some(snapshot_of(id, item)),
                        None => {
                            tracing::warn!("search item without a usable RecordID skipped");
                            None
                        }
                    })
                    .collect())),
                Err(OrangeLogicError::SearchCut { reason, pages }) => {
                    // The poll resumes from the watermark: what was read is kept, the rest waits.
                    tracing::warn!(
                        reason = %reason,
                        pages,
                        "poll search stopped early; the next poll goes on from the watermark"
                    );
                    None
                }
                Err(error) => Some(Err(to_port(error))),
            })
            .take_while(|page| futures::future::ready(page.is_some()))
            .filter_map(futures::future::ready)
    }

    async fn deleted_since(&self, since: DamInstant) -> Result<Vec<AssetId>, DamError> {
        if !self.deletions.enabled {
            return Ok(Vec::new());
        }
        let since = self.dates.local_text(since, &self.deletions.since_format);
        let ids = self
            .client
            .deleted_objects(&self.deletions.since_parameter, &since)
            .await
            .map_err(to_port)?;
        Ok(ids
            .iter()
            .filter_map(|id| AssetId::parse(id).ok())
            .collect())
    }
}

//! The [`ExpiryCatalogue`] port on Orange Logic: Search v4.0 date ranges (sorted on the date,
//! paged), equality searches for alternatives, DataTable reads and writes.

use super::source::snapshot_of;
use super::{FieldUpdate, OrangeLogicClient, OrangeLogicError, Record, SearchQuery};
use crate::domain::dam::{AssetId, AssetSnapshot, DamDates};
use crate::error::Retryable;
use crate::ports::{DamError, EndingQuery, ExpiryCatalogue};
use futures::StreamExt as _;
use std::sync::Arc;

/// Searches and writes assets for flow 3.
#[derive(Debug, Clone)]
pub struct OrangeLogicExpiryCatalogue {
    client: Arc<OrangeLogicClient>,
    fields: Vec<String>,
    dates: DamDates,
    comments_field: String,
}

impl OrangeLogicExpiryCatalogue {
    /// Reads `fields` with every result; writes comments into `comments_field`.
    pub fn new(
        client: Arc<OrangeLogicClient>,
        fields: Vec<String>,
        dates: DamDates,
        comments_field: impl Into<String>,
    ) -> Self {
        let mut fields = fields;
        if !fields.iter().any(|f| f.eq_ignore_ascii_case("RecordID")) {
            fields.push("RecordID".into());
        }
        Self {
            client,
            fields,
            dates,
            comments_field: comments_field.into(),
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

/// A value as a search criterion: quoted, since values hold spaces (`Ready for Review`).
fn quoted(value: &str) -> String {
    format!("\"{}\"", value.replace('"', ""))
}

fn snapshots(items: &[Record]) -> Vec<AssetSnapshot> {
    items
        .iter()
        .filter_map(|item| {
            let id = super::field_text(item, "RecordID").and_then(|r| AssetId::parse(&r).ok());
            match id {
                Some(id) => Some(snapshot_of(id, item)),
                None => {
                    tracing::warn!("search item without a usable RecordID skipped");
                    None
                }
            }
        })
        .collect()
}

impl ExpiryCatalogue for OrangeLogicExpiryCatalogue {
    fn ending_between(
        &self,
        query: EndingQuery,
    ) -> impl futures::Stream<Item = Result<Vec<AssetSnapshot>, DamError>> + Send + '_ {
        let mut text = format!(
            "{field}>:{from} AND {field}<:{to}",
            field = query.field,
            from = self.dates.search_text(query.from),
            to = self.dates.search_text(query.to),
        );
        if let Some((status_field, status)) = &query.status {
            text.push_str(&format!(" AND {status_field}:{}", quoted(status)));
        }
        let search = SearchQuery {
            query: text,
            fields: self.fields.clone(),
            per_page: super::MAX_PER_PAGE,
            sort: Some(format!("{} asc", query.field)),
        };
        self.client
            .search(search)
            .map(|page| page.map(|p| snapshots(&p.items)).map_err(to_port))
    }

    async fn read(&self, id: &AssetId) -> Result<Option<AssetSnapshot>, DamError> {
        let record = self.client.read_asset(id.as_str()).await.map_err(to_port)?;
        Ok(record.map(|r| snapshot_of(id.clone(), &r)))
    }

    async fn matching(
        &self,
        criteria: &[(String, String)],
        limit: u8,
    ) -> Result<Vec<AssetSnapshot>, DamError> {
        let text = criteria
            .iter()
            .map(|(field, value)| format!("{field}:{}", quoted(value)))
            .collect::<Vec<_>>()
            .join(" AND ");
        let search = SearchQuery {
            query: text,
            fields: self.fields.clone(),
            per_page: limit.clamp(1, super::MAX_PER_PAGE),
            sort: None,
        };
        let mut pages = std::pin::pin!(self.client.search(search));
        match pages.next().await {
            Some(page) => Ok(snapshots(&page.map_err(to_port)?.items)),
            None => Ok(Vec::new()),
        }
    }

    async fn append_comment(&self, id: &AssetId, line: &str) -> Result<(), DamError> {
        self.client
            .append_to_field(id.as_str(), &self.comments_field, line)
            .await
            // Appended or already there (a redelivery): either way the line is on the asset.
            .map(|_| ())
            .map_err(to_port)
    }

    async fn set_field(&self, id: &AssetId, field: &str, value: &str) -> Result<(), DamError> {
        self.client
            .update_record(id.as_str(), &[FieldUpdate::set(field, value)])
            .await
            .map_err(to_port)
    }
}

//! Folder paths of the configuration (`Projects/Bridge/Field`) → folder RecordIDs: one DataTable
//! read by title per segment, matched on the parent's RecordID; missing folders created when
//! `dam.folders.create_missing` allows; cached per cold start.

use super::{OrangeLogicClient, OrangeLogicError, Record, field_text};
use serde_json::Value;

impl OrangeLogicClient {
    /// The RecordID of the folder at `path` (segments separated by `/`, from `dam.folders.root`
    /// or from the top). An unknown folder is [`OrangeLogicError::UnknownFolder`] naming the path,
    /// never an upload to some other place; a title found twice under one parent is a
    /// configuration error too.
    pub async fn folder_record_id(&self, path: &str) -> Result<String, OrangeLogicError> {
        let segments: Vec<&str> = path
            .split('/')
            .map(str::trim)
            .filter(|s| !s.is_empty())
            .collect();
        if segments.is_empty() {
            return Err(OrangeLogicError::Configuration(
                "an empty folder path was configured".into(),
            ));
        }
        let normalized = segments.join("/");
        if let Some(id) = self
            .folders
            .lock()
            .ok()
            .and_then(|cache| cache.get(&normalized).cloned())
        {
            return Ok(id);
        }
        let mut parent = self.settings.folders.root.clone();
        for (depth, title) in segments.iter().enumerate() {
            let here = segments[..=depth].join("/");
            let found = self.child_folders(parent.as_deref(), title).await?;
            let id = match found.as_slice() {
                [one] => one.clone(),
                [] if self.settings.folders.create_missing => {
                    let id = self.create_folder(title, parent.as_deref()).await?;
                    tracing::info!(depth, "created a missing folder of a configured path");
                    id
                }
                [] => return Err(OrangeLogicError::UnknownFolder { path: normalized }),
                _ => {
                    return Err(OrangeLogicError::Configuration(format!(
                        "more than one folder is at `{here}`; set dam.folders.root or rename one"
                    )));
                }
            };
            if let Ok(mut cache) = self.folders.lock() {
                cache.insert(here, id.clone());
            }
            parent = Some(id);
        }
        parent.ok_or(OrangeLogicError::UnknownFolder { path: normalized })
    }

    /// RecordIDs of the folders titled `title` under `parent` (any parent for a top segment
    /// without a configured root).
    async fn child_folders(
        &self,
        parent: Option<&str>,
        title: &str,
    ) -> Result<Vec<String>, OrangeLogicError> {
        let path = format!(
            "/API/DataTable/v2.2/{}:Read",
            self.settings.folders.resource
        );
        let json = match self
            .call(&path, &[("CoreField.Title".to_owned(), title.to_owned())])
            .await
        {
            Err(OrangeLogicError::NotFound | OrangeLogicError::RecordNotFound) => {
                return Ok(Vec::new());
            }
            other => other?,
        };
        let records: Vec<Record> = match json.get("Response") {
            Some(Value::Array(records)) => records
                .iter()
                .filter_map(|r| r.as_object().cloned())
                .collect(),
            Some(Value::Object(record)) => vec![record.clone()],
            _ => Vec::new(),
        };
        Ok(records
            .iter()
            .filter(|record| {
                field_text(record, "CoreField.Title")
                    .is_some_and(|t| t.trim().eq_ignore_ascii_case(title))
            })
            .filter(|record| {
                parent.is_none_or(|parent| {
                    field_text(record, "CoreField.Parent-folder").as_deref() == Some(parent)
                })
            })
            .filter_map(|record| field_text(record, "RecordID"))
            .collect())
    }

    async fn create_folder(
        &self,
        title: &str,
        parent: Option<&str>,
    ) -> Result<String, OrangeLogicError> {
        let path = format!(
            "/API/DataTable/v2.2/{}:Create",
            self.settings.folders.resource
        );
        let mut params = vec![("CoreField.Title:".to_owned(), title.to_owned())];
        if let Some(parent) = parent {
            params.push(("CoreField.Parent-folder:".to_owned(), parent.to_owned()));
        }
        let json = self.write(&path, &params).await?;
        let response = json.get("Response").unwrap_or(&json);
        response
            .get("RecordID")
            .and_then(Value::as_str)
            .or_else(|| {
                response
                    .get("RecordsAffected")
                    .and_then(Value::as_array)
                    .and_then(|a| a.first())
                    .and_then(|r| r.get("RecordID"))
                    .and_then(Value::as_str)
            })
            .map(str::to_owned)
            .ok_or_else(|| {
                OrangeLogicError::Decode("folder creation answer has no RecordID".into())
            })
    }
}

//! Flow 2's table: how far each media item got (so a retry resumes instead of repeating), the
//! bursts that share one receipt, and each contributor's last location pin.
//!
//! Items: `ingest#<wamid>` (progress), `open#<user>#<number>` (the open burst's id),
//! `burst#<id>` (its filed items and whether its receipt went out), `loc#<user>#<number>`.

use crate::adapters::dynamodb::{Failure, classify, n, s, store_error};
use crate::domain::field_ingest::{FiledItem, GeoPoint};
use crate::ports::StoreError;
use aws_sdk_dynamodb::types::{AttributeValue, ReturnValue};
use std::collections::HashMap;

/// Progress and bursts are kept this long after their last write (Meta redelivers for 7 days).
const KEEP_SECONDS: i64 = 8 * 24 * 3600;

/// How far one media item got.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Progress {
    /// The staged object's key, once it is in S3 and verified.
    pub staged_key: Option<String>,
    /// Its size.
    pub bytes: u64,
    /// The type it is filed as.
    pub mime: Option<String>,
    /// The folder path it goes to.
    pub folder: Option<String>,
    /// An upload to the DAM was started (its answer may have been lost: look before uploading again).
    pub upload_started: bool,
    /// The DAM's identifier, once uploaded.
    pub asset: Option<String>,
    /// It was uploaded with a location.
    pub located: bool,
    /// The DAM's RecordID, once uploaded.
    pub record_id: Option<String>,
    /// Refused (with this code): the reply went out, nothing reaches the DAM.
    pub refused: Option<String>,
}

/// The table.
#[derive(Debug, Clone)]
pub struct DynamoFieldIngestStore {
    client: aws_sdk_dynamodb::Client,
    table: String,
}

fn text(item: &HashMap<String, AttributeValue>, name: &str) -> Option<String> {
    item.get(name)?.as_s().ok().cloned()
}

fn num(item: &HashMap<String, AttributeValue>, name: &str) -> Option<f64> {
    item.get(name)?.as_n().ok()?.parse().ok()
}

fn flag(item: &HashMap<String, AttributeValue>, name: &str) -> bool {
    item.get(name)
        .and_then(|v| v.as_bool().ok())
        .copied()
        .unwrap_or(false)
}

impl DynamoFieldIngestStore {
    /// Wraps a client and the table name.
    pub fn new(client: aws_sdk_dynamodb::Client, table: impl Into<String>) -> Self {
        Self {
            client,
            table: table.into(),
        }
    }

    async fn get(&self, pk: String) -> Result<Option<HashMap<String, AttributeValue>>, StoreError> {
        let out = self
            .client
            .get_item()
            .table_name(&self.table)
            .key("pk", s(pk))
            .consistent_read(true)
            .send()
            .await
            .map_err(store_error)?;
        Ok(out.item)
    }

    /// The progress of `wamid` (default: nothing done yet).
    pub async fn progress(&self, wamid: &str) -> Result<Progress, StoreError> {
        let Some(item) = self.get(format!("ingest#{wamid}")).await? else {
            return Ok(Progress::default());
        };
        Ok(Progress {
            staged_key: text(&item, "staged_key"),
            bytes: num(&item, "bytes").map_or(0, |b| b as u64),
            mime: text(&item, "mime"),
            folder: text(&item, "folder"),
            upload_started: flag(&item, "upload_started"),
            located: flag(&item, "located"),
            asset: text(&item, "asset"),
            record_id: text(&item, "record_id"),
            refused: text(&item, "refused"),
        })
    }

    /// Saves `progress` for `wamid`.
    pub async fn save_progress(
        &self,
        wamid: &str,
        progress: &Progress,
        now: i64,
    ) -> Result<(), StoreError> {
        let mut request = self
            .client
            .put_item()
            .table_name(&self.table)
            .item("pk", s(format!("ingest#{wamid}")))
            .item("bytes", n(progress.bytes))
            .item(
                "upload_started",
                AttributeValue::Bool(progress.upload_started),
            )
            .item("located", AttributeValue::Bool(progress.located))
            .item("expires_at", n(now + KEEP_SECONDS));
        for (name, value) in [
            ("staged_key", &progress.staged_key),
            ("mime", &progress.mime),
            ("folder", &progress.folder),
            ("asset", &progress.asset),
            ("record_id", &progress.record_id),
            ("refused", &progress.refused),
        ] {
            if let Some(value) = value {
                request = request.item(name, s(value.clone()));
            }
        }
        request.send().await.map_err(store_error)?;
        Ok(())
    }

    /// Adds a filed item to the open burst of `user` on `number` (opening one when none is
    /// open, or when the open one's receipt already went out). Returns the burst's id.
    /// Adding the same `wamid` again changes nothing, so a retry cannot list an item twice.
    pub async fn join_burst(
        &self,
        user: &str,
        number: &str,
        wamid: &str,
        entry: &BurstEntry,
        now_ms: i64,
    ) -> Result<String, StoreError> {
        let pointer = format!("open#{user}#{number}");
        for _ in 0..4 {
            let burst = match self.open_burst(&pointer, now_ms).await? {
                Some(id) => id,
                None => continue,
            };
            let mut fields = HashMap::from([
                ("asset".to_owned(), s(entry.item.asset.clone())),
                ("folder".to_owned(), s(entry.item.folder.clone())),
                ("kind".to_owned(), s(entry.item.kind.clone())),
                ("at".to_owned(), n(entry.at_ms)),
                ("located".to_owned(), AttributeValue::Bool(entry.located)),
            ]);
            if let Some(record_id) = &entry.record_id {
                fields.insert("record_id".to_owned(), s(record_id.clone()));
            }
            let entry = AttributeValue::M(fields);
            let result = self
                .client
                .update_item()
                .table_name(&self.table)
                .key("pk", s(format!("burst#{burst}")))
                .update_expression(
                    "SET entries.#wamid = if_not_exists(entries.#wamid, :entry), \
                     #user = :user, #number = :number, expires_at = :expires",
                )
                .condition_expression("attribute_exists(pk) AND closed = :open")
                .expression_attribute_names("#wamid", wamid)
                .expression_attribute_names("#user", "user")
                .expression_attribute_names("#number", "number")
                .expression_attribute_values(":entry", entry)
                .expression_attribute_values(":user", s(user))
                .expression_attribute_values(":number", s(number))
                .expression_attribute_values(":open", AttributeValue::Bool(false))
                .expression_attribute_values(":expires", n(now_ms / 1000 + KEEP_SECONDS))
                .send()
                .await;
            match result {
                Ok(_) => return Ok(burst),
                Err(error) => match classify(error) {
                    // Its receipt went out meanwhile: this item starts the next burst.
                    Failure::ConditionFailed => self.forget_pointer(&pointer, &burst).await?,
                    Failure::Store(e) => return Err(e),
                },
            }
        }
        Err(StoreError::Rejected {
            reason: "the open burst kept closing under this item".into(),
        })
    }

    /// The open burst's id, creating the pointer and the burst when there is none; `None` when
    /// another writer raced us (try again).
    async fn open_burst(&self, pointer: &str, now_ms: i64) -> Result<Option<String>, StoreError> {
        if let Some(item) = self.get(pointer.to_owned()).await?
            && let Some(id) = text(&item, "burst")
        {
            return Ok(Some(id));
        }
        let id = format!("{}-{}", now_ms, crate::crypto::random_hex(6));
        self.client
            .put_item()
            .table_name(&self.table)
            .item("pk", s(format!("burst#{id}")))
            .item("closed", AttributeValue::Bool(false))
            .item("entries", AttributeValue::M(HashMap::new()))
            .item("expires_at", n(now_ms / 1000 + KEEP_SECONDS))
            .send()
            .await
            .map_err(store_error)?;
        let created = self
            .client
            .put_item()
            .table_name(&self.table)
            .item("pk", s(pointer))
            .item("burst", s(id.clone()))
            .item("expires_at", n(now_ms / 1000 + KEEP_SECONDS))
            .condition_expression("attribute_not_exists(pk)")
            .send()
            .await;
        match created {
            Ok(_) => Ok(Some(id)),
            Err(error) => match classify(error) {
                Failure::ConditionFailed => Ok(None),
                Failure::Store(e) => Err(e),
            },
        }
    }

    async fn forget_pointer(&self, pointer: &str, burst: &str) -> Result<(), StoreError> {
        let result = self
            .client
            .delete_item()
            .table_name(&self.table)
            .key("pk", s(pointer))
            .condition_expression("burst = :burst")
            .expression_attribute_values(":burst", s(burst))
            .send()
            .await;
        match result {
            Ok(_) => Ok(()),
            Err(error) => match classify(error) {
                Failure::ConditionFailed => Ok(()),
                Failure::Store(e) => Err(e),
            },
        }
    }

    /// Closes the burst (later items open a new one) and returns its items with their wamids,
    /// in the order they were filed, plus the user and number it belongs to. Closing a closed
    /// burst returns the same items, so a retried receipt lists the same files.
    pub async fn close_burst(&self, burst: &str) -> Result<Option<ClosedBurst>, StoreError> {
        let result = self
            .client
            .update_item()
            .table_name(&self.table)
            .key("pk", s(format!("burst#{burst}")))
            .update_expression("SET closed = :closed")
            .condition_expression("attribute_exists(pk)")
            .expression_attribute_values(":closed", AttributeValue::Bool(true))
            .return_values(ReturnValue::AllNew)
            .send()
            .await;
        let item = match result {
            Ok(out) => out.attributes.unwrap_or_default(),
            Err(error) => match classify(error) {
                Failure::ConditionFailed => return Ok(None),
                Failure::Store(e) => return Err(e),
            },
        };
        let (Some(user), Some(number)) = (text(&item, "user"), text(&item, "number")) else {
            return Ok(None);
        };
        self.forget_pointer(&format!("open#{user}#{number}"), burst)
            .await?;
        let mut entries: Vec<(String, BurstEntry)> = item
            .get("entries")
            .and_then(|e| e.as_m().ok())
            .map(|entries| {
                entries
                    .iter()
                    .filter_map(|(wamid, entry)| {
                        let entry = entry.as_m().ok()?;
                        Some((
                            wamid.clone(),
                            BurstEntry {
                                item: FiledItem {
                                    asset: text(entry, "asset")?,
                                    folder: text(entry, "folder")?,
                                    kind: text(entry, "kind")?,
                                },
                                record_id: text(entry, "record_id"),
                                located: flag(entry, "located"),
                                at_ms: num(entry, "at")? as i64,
                            },
                        ))
                    })
                    .collect()
            })
            .unwrap_or_default();
        entries.sort_by(|a, b| (a.1.at_ms, &a.0).cmp(&(b.1.at_ms, &b.0)));
        Ok(Some(ClosedBurst {
            user,
            number,
            entries,
        }))
    }

    /// Records the contributor's latest location pin (an older one never replaces a newer one).
    pub async fn record_location(
        &self,
        user: &str,
        number: &str,
        point: GeoPoint,
        at_ms: i64,
    ) -> Result<(), StoreError> {
        let result = self
            .client
            .put_item()
            .table_name(&self.table)
            .item("pk", s(format!("loc#{user}#{number}")))
            .item("lat", n(point.latitude))
            .item("lon", n(point.longitude))
            .item("at", n(at_ms))
            .item("expires_at", n(at_ms / 1000 + KEEP_SECONDS))
            .condition_expression("attribute_not_exists(pk) OR #at <= :at")
            .expression_attribute_names("#at", "at")
            .expression_attribute_values(":at", n(at_ms))
            .send()
            .await;
        match result {
            Ok(_) => Ok(()),
            Err(error) => match classify(error) {
                Failure::ConditionFailed => Ok(()),
                Failure::Store(e) => Err(e),
            },
        }
    }

    /// The contributor's latest location pin and when it was sent.
    pub async fn location(
        &self,
        user: &str,
        number: &str,
    ) -> Result<Option<(GeoPoint, i64)>, StoreError> {
        let Some(item) = self.get(format!("loc#{user}#{number}")).await? else {
            return Ok(None);
        };
        Ok(
            match (num(&item, "lat"), num(&item, "lon"), num(&item, "at")) {
                (Some(latitude), Some(longitude), Some(at)) => Some((
                    GeoPoint {
                        latitude,
                        longitude,
                    },
                    at as i64,
                )),
                _ => None,
            },
        )
    }
}

/// One filed item of a burst.
#[derive(Debug, Clone, PartialEq)]
pub struct BurstEntry {
    /// What the receipt says about it.
    pub item: FiledItem,
    /// Its RecordID (a location pin sent after it is written there).
    pub record_id: Option<String>,
    /// Whether it already has a location.
    pub located: bool,
    /// When it was sent (the message's time), Unix ms.
    pub at_ms: i64,
}

/// A burst whose receipt is due.
#[derive(Debug, Clone)]
pub struct ClosedBurst {
    /// The contributor's pseudonym.
    pub user: String,
    /// The business number they wrote to.
    pub number: String,
    /// (wamid, entry), in the order the media were sent.
    pub entries: Vec<(String, BurstEntry)>,
}

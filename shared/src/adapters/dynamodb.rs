//! DynamoDB adapters: asset state with optimistic versions, the poll watermark, idempotency claims.
//! Only this module knows what a failed condition check means.

use crate::domain::dam::{AssetId, AssetState};
use crate::ports::{
    AssetStateStore, Claim, IdempotencyStore, OwnerToken, Saved, StateVersion, StoreError,
};
use aws_sdk_dynamodb::error::{ProvideErrorMetadata, SdkError};
use aws_sdk_dynamodb::types::AttributeValue;

const WATERMARK_KEY: &str = "poll#watermark";
const IN_PROGRESS: &str = "INPROGRESS";
const COMPLETED: &str = "COMPLETED";

/// Error codes of requests that can never succeed as sent (a malformed expression, an item over
/// the size limit). Every other failure — throttling, `ServiceUnavailable`, 5xx, a code this version
/// does not know, a missing table or permission while a deployment settles — is worth retrying:
/// retrying costs a receive, dropping loses accepted work.
const PERMANENT_CODES: [&str; 2] = ["ValidationException", "SerializationException"];

pub(crate) enum Failure {
    ConditionFailed,
    Store(StoreError),
}

pub(crate) fn classify<E, R>(error: SdkError<E, R>) -> Failure
where
    E: ProvideErrorMetadata + std::error::Error + Send + Sync + 'static,
    R: std::fmt::Debug + Send + Sync + 'static,
{
    match &error {
        SdkError::ServiceError(service) => match service.err().code() {
            Some("ConditionalCheckFailedException") => Failure::ConditionFailed,
            Some(code) if PERMANENT_CODES.contains(&code) => Failure::Store(StoreError::Rejected {
                reason: crate::error::chain(&error),
            }),
            _ => Failure::Store(StoreError::Unavailable(Box::new(error))),
        },
        _ => Failure::Store(StoreError::Unavailable(Box::new(error))),
    }
}

pub(crate) fn store_error<E, R>(error: SdkError<E, R>) -> StoreError
where
    E: ProvideErrorMetadata + std::error::Error + Send + Sync + 'static,
    R: std::fmt::Debug + Send + Sync + 'static,
{
    match classify(error) {
        Failure::ConditionFailed => StoreError::Rejected {
            reason: "unexpected condition failure".into(),
        },
        Failure::Store(e) => e,
    }
}

pub(crate) fn s(value: impl Into<String>) -> AttributeValue {
    AttributeValue::S(value.into())
}

pub(crate) fn n(value: impl ToString) -> AttributeValue {
    AttributeValue::N(value.to_string())
}

/// Asset states (`asset#<RecordID>`) and the poll watermark, in one table.
#[derive(Debug, Clone)]
pub struct DynamoAssetStateStore {
    client: aws_sdk_dynamodb::Client,
    table: String,
}

impl DynamoAssetStateStore {
    /// Wraps a client and the table name.
    pub fn new(client: aws_sdk_dynamodb::Client, table: impl Into<String>) -> Self {
        Self {
            client,
            table: table.into(),
        }
    }
}

/// A strongly consistent read of the item with partition key `pk`.
async fn read_item(
    client: &aws_sdk_dynamodb::Client,
    table: &str,
    pk: AttributeValue,
) -> Result<Option<std::collections::HashMap<String, AttributeValue>>, StoreError> {
    Ok(client
        .get_item()
        .table_name(table)
        .key("pk", pk)
        .consistent_read(true)
        .send()
        .await
        .map_err(store_error)?
        .item)
}

fn asset_key(id: &AssetId) -> AttributeValue {
    s(format!("asset#{id}"))
}

impl AssetStateStore for DynamoAssetStateStore {
    async fn load(&self, id: &AssetId) -> Result<Option<(AssetState, StateVersion)>, StoreError> {
        let item = read_item(&self.client, &self.table, asset_key(id)).await?;
        let Some(item) = item else {
            return Ok(None);
        };
        let state = item
            .get("state")
            .and_then(|v| v.as_s().ok())
            .ok_or_else(|| StoreError::Rejected {
                reason: format!("asset state of {id} has no state attribute"),
            })?;
        let state: AssetState = serde_json::from_str(state).map_err(|e| StoreError::Rejected {
            reason: format!("asset state of {id} is unreadable: {e}"),
        })?;
        let version = item
            .get("version")
            .and_then(|v| v.as_n().ok())
            .and_then(|v| v.parse().ok())
            .unwrap_or(0);
        Ok(Some((state, StateVersion(version))))
    }

    async fn save(
        &self,
        id: &AssetId,
        state: &AssetState,
        expected: Option<StateVersion>,
    ) -> Result<Saved, StoreError> {
        let json = serde_json::to_string(state).map_err(|e| StoreError::Rejected {
            reason: e.to_string(),
        })?;
        let next = expected.map_or(1, |v| v.0 + 1);
        let mut request = self
            .client
            .put_item()
            .table_name(&self.table)
            .item("pk", asset_key(id))
            .item("state", s(json))
            .item("version", n(next));
        request = match expected {
            None => request.condition_expression("attribute_not_exists(pk)"),
            Some(version) => request
                .condition_expression("version = :expected")
                .expression_attribute_values(":expected", n(version.0)),
        };
        match request.send().await {
            Ok(_) => Ok(Saved::Written),
            Err(error) => match classify(error) {
                Failure::ConditionFailed => Ok(Saved::Conflict),
                Failure::Store(e) => Err(e),
            },
        }
    }

    async fn forget(&self, id: &AssetId) -> Result<(), StoreError> {
        self.client
            .delete_item()
            .table_name(&self.table)
            .key("pk", asset_key(id))
            .send()
            .await
            .map_err(store_error)?;
        Ok(())
    }

    async fn watermark(&self) -> Result<Option<String>, StoreError> {
        Ok(read_item(&self.client, &self.table, s(WATERMARK_KEY))
            .await?
            .and_then(|item| item.get("edited_at")?.as_s().ok().cloned()))
    }

    async fn advance_watermark(&self, to: &str) -> Result<(), StoreError> {
        let result = self
            .client
            .put_item()
            .table_name(&self.table)
            .item("pk", s(WATERMARK_KEY))
            .item("edited_at", s(to))
            .condition_expression("attribute_not_exists(pk) OR edited_at < :to")
            .expression_attribute_values(":to", s(to))
            .send()
            .await;
        match result {
            // Already at or past `to`: another poll got there first.
            Ok(_) => Ok(()),
            Err(error) => match classify(error) {
                Failure::ConditionFailed => Ok(()),
                Failure::Store(e) => Err(e),
            },
        }
    }
}

/// Idempotency claims keyed by event id, with owner token, in-progress deadline and TTL (`expires_at`).
#[derive(Debug, Clone)]
pub struct DynamoIdempotencyStore {
    client: aws_sdk_dynamodb::Client,
    table: String,
}

impl DynamoIdempotencyStore {
    /// Wraps a client and the table name.
    pub fn new(client: aws_sdk_dynamodb::Client, table: impl Into<String>) -> Self {
        Self {
            client,
            table: table.into(),
        }
    }
}

/// How long an abandoned in-progress claim lingers after its deadline before TTL removes it.
const IN_PROGRESS_TTL_SECONDS: i64 = 24 * 3600;

impl IdempotencyStore for DynamoIdempotencyStore {
    async fn claim(
        &self,
        key: &str,
        owner: &OwnerToken,
        now: i64,
        deadline: i64,
    ) -> Result<Claim, StoreError> {
        let result = self
            .client
            .put_item()
            .table_name(&self.table)
            .item("pk", s(key))
            .item("status", s(IN_PROGRESS))
            .item("owner", s(owner.0.clone()))
            .item("deadline", n(deadline))
            .item("expires_at", n(deadline + IN_PROGRESS_TTL_SECONDS))
            .condition_expression(
                "attribute_not_exists(pk) OR (#status = :in_progress AND deadline < :now)",
            )
            .expression_attribute_names("#status", "status")
            .expression_attribute_values(":in_progress", s(IN_PROGRESS))
            .expression_attribute_values(":now", n(now))
            .send()
            .await;
        match result {
            Ok(_) => Ok(Claim::Acquired),
            Err(error) => match classify(error) {
                Failure::Store(e) => Err(e),
                Failure::ConditionFailed => {
                    let status = read_item(&self.client, &self.table, s(key))
                        .await?
                        .and_then(|item| item.get("status")?.as_s().ok().cloned());
                    Ok(match status.as_deref() {
                        Some(COMPLETED) => Claim::AlreadyDone,
                        _ => Claim::HeldElsewhere,
                    })
                }
            },
        }
    }

    async fn complete(
        &self,
        key: &str,
        owner: &OwnerToken,
        expires_at: i64,
    ) -> Result<(), StoreError> {
        let result = self
            .client
            .update_item()
            .table_name(&self.table)
            .key("pk", s(key))
            .update_expression("SET #status = :completed, expires_at = :expires_at")
            .condition_expression("#owner = :owner")
            .expression_attribute_names("#status", "status")
            .expression_attribute_names("#owner", "owner")
            .expression_attribute_values(":completed", s(COMPLETED))
            .expression_attribute_values(":expires_at", n(expires_at))
            .expression_attribute_values(":owner", s(owner.0.clone()))
            .send()
            .await;
        match result {
            Ok(_) => Ok(()),
            Err(error) => match classify(error) {
                Failure::ConditionFailed => Err(StoreError::NotOwner),
                Failure::Store(e) => Err(e),
            },
        }
    }

    async fn release(&self, key: &str, owner: &OwnerToken) -> Result<(), StoreError> {
        let result = self
            .client
            .delete_item()
            .table_name(&self.table)
            .key("pk", s(key))
            .condition_expression("#owner = :owner AND #status = :in_progress")
            .expression_attribute_names("#status", "status")
            .expression_attribute_names("#owner", "owner")
            .expression_attribute_values(":in_progress", s(IN_PROGRESS))
            .expression_attribute_values(":owner", s(owner.0.clone()))
            .send()
            .await;
        match result {
            Ok(_) => Ok(()),
            Err(error) => match classify(error) {
                Failure::ConditionFailed => Err(StoreError::NotOwner),
                Failure::Store(e) => Err(e),
            },
        }
    }
}

#[cfg(test)]
mod tests {
    //! Faults moto cannot produce, injected at the wire with `aws-smithy-mocks`.

    use super::*;
    use crate::error::Retryable;
    use aws_sdk_dynamodb::Client;
    use aws_smithy_mocks::{RuleMode, mock, mock_client};
    use aws_smithy_runtime_api::client::orchestrator::HttpResponse;
    use aws_smithy_runtime_api::http::StatusCode;
    use aws_smithy_types::body::SdkBody;

    fn answer(status: u16, error_type: &str) -> HttpResponse {
        HttpResponse::new(
            StatusCode::try_from(status).expect("status"),
            SdkBody::from(format!(
                r#"{{"__type":"com.amazonaws.dynamodb.v20120810#{error_type}","message":"injected"}}"#
            )),
        )
    }

    fn store_answering(status: u16, error_type: &'static str) -> DynamoIdempotencyStore {
        let rule = mock!(Client::put_item).then_http_response(move || answer(status, error_type));
        let client = mock_client!(aws_sdk_dynamodb, RuleMode::MatchAny, &[&rule], |config| {
            config.retry_config(aws_sdk_dynamodb::config::retry::RetryConfig::disabled())
        });
        DynamoIdempotencyStore::new(client, "claims")
    }

    async fn claim_error(store: &DynamoIdempotencyStore) -> StoreError {
        store
            .claim("k", &OwnerToken("o".into()), 0, 10)
            .await
            .expect_err("the store failed")
    }

    #[tokio::test]
    async fn throttling_is_retried_not_dropped() {
        for error_type in [
            "ThrottlingException",
            "ProvisionedThroughputExceededException",
            "RequestLimitExceeded",
        ] {
            let error = claim_error(&store_answering(400, error_type)).await;
            assert!(error.is_retryable(), "{error_type}: {error:?}");
        }
    }

    #[tokio::test]
    async fn service_unavailable_and_5xx_are_retried_not_dropped() {
        for (status, error_type) in [
            (503, "ServiceUnavailable"),
            (500, "InternalServerError"),
            (400, "SomeCodeThisVersionDoesNotKnow"),
        ] {
            let error = claim_error(&store_answering(status, error_type)).await;
            assert!(error.is_retryable(), "{status} {error_type}: {error:?}");
        }
    }

    #[tokio::test]
    async fn a_request_that_can_never_succeed_is_permanent() {
        let error = claim_error(&store_answering(400, "ValidationException")).await;
        assert!(!error.is_retryable(), "{error:?}");
    }
}

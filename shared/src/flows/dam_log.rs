//! Lines on an asset's comment log, one connector writer per asset at a time.
//!
//! Orange Logic has no comments API and no conditional update, so an append is read, append,
//! write, read back (`OrangeLogicClient::append_to_field`). That check cannot see a stale write
//! that lands after the read-back; the connector's own writers therefore take a short lease per
//! asset first (a conditional put in DynamoDB, shared by every flow that writes comments).

use crate::adapters::orange_logic::{Appended, OrangeLogicClient, OrangeLogicError};
use crate::error::Retryable;
use crate::ports::{Claim, IdempotencyStore, OwnerToken, StoreError};
use std::time::Duration;

/// How long a lease lasts: an append is three DAM calls; a crashed holder's lease lapses after it.
pub const LEASE_SECONDS: i64 = 30;
/// How long a writer waits for a lease held elsewhere before the record is retried.
pub const LEASE_WAIT: Duration = Duration::from_secs(20);

/// An append that did not happen.
#[derive(Debug, thiserror::Error)]
pub enum LogError {
    /// The lease store failed.
    #[error("the comment lease could not be taken")]
    Lease(#[from] StoreError),
    /// Another writer held the asset's lease for the whole wait.
    #[error("another writer held the asset's comment lease")]
    Busy,
    /// The DAM failed.
    #[error("the comment could not be written to the DAM")]
    Dam(#[from] OrangeLogicError),
}

impl Retryable for LogError {
    fn is_retryable(&self) -> bool {
        match self {
            Self::Lease(e) => e.is_retryable(),
            Self::Busy => true,
            Self::Dam(e) => e.is_retryable(),
        }
    }
}

fn lease_key(asset: &str) -> String {
    format!("comment-lease#{asset}")
}

fn now() -> i64 {
    jiff::Timestamp::now().as_second()
}

/// Runs `write` holding the lease of `asset` (waits up to [`LEASE_WAIT`] for it).
pub async fn with_lease<L, T, F, Fut>(leases: &L, asset: &str, write: F) -> Result<T, LogError>
where
    L: IdempotencyStore,
    F: FnOnce() -> Fut,
    Fut: Future<Output = Result<T, OrangeLogicError>>,
{
    let key = lease_key(asset);
    let owner = OwnerToken(crate::crypto::random_hex(16));
    let started = tokio::time::Instant::now();
    let mut pause = Duration::from_millis(50);
    loop {
        let at = now();
        match leases.claim(&key, &owner, at, at + LEASE_SECONDS).await? {
            Claim::Acquired => break,
            // Leases are released, never completed; treat a stray completed one as held.
            Claim::HeldElsewhere | Claim::AlreadyDone => {
                if started.elapsed() >= LEASE_WAIT {
                    return Err(LogError::Busy);
                }
                tokio::time::sleep(pause).await;
                pause = (pause * 2).min(Duration::from_millis(800));
            }
        }
    }
    let result = write().await;
    match leases.release(&key, &owner).await {
        // Our lease lapsed and someone took it: they read after our write, nothing is lost.
        Ok(()) | Err(StoreError::NotOwner) => {}
        Err(error) => {
            tracing::warn!(error = %crate::error::chain(&error), "the comment lease could not be released; it lapses");
        }
    }
    Ok(result?)
}

/// Appends `line` to `field` of `asset` under the asset's lease; a line already there is kept once.
pub async fn append_line<L: IdempotencyStore>(
    leases: &L,
    dam: &OrangeLogicClient,
    asset: &str,
    field: &str,
    line: &str,
) -> Result<Appended, LogError> {
    with_lease(leases, asset, || dam.append_to_field(asset, field, line)).await
}

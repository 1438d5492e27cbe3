//! SQS adapter: FIFO batches of ten within the 256 KiB request limit, sent a bounded number at a
//! time, each call under a timeout that leaves the function room to answer; entries SQS leaves
//! unprocessed are retried while the budget allows.

use crate::domain::inbound::{InboundItem, MAX_ITEM_BYTES};
use crate::lambda::deadline;
use crate::ports::{InboundQueue, QueueError};
use aws_sdk_sqs::error::SdkError;
use aws_sdk_sqs::operation::send_message_batch::SendMessageBatchError;
use aws_sdk_sqs::types::SendMessageBatchRequestEntry;
use futures::{StreamExt, TryStreamExt};
use std::time::Duration;
use tokio::time::Instant;

/// Entries per `SendMessageBatch` call (the SQS maximum).
const BATCH_ENTRIES: usize = 10;
/// Payload bytes per `SendMessageBatch` call (the SQS maximum on every queue configuration).
const BATCH_BYTES: usize = 256 * 1024;
/// Attempts for entries SQS reports as failed without the sender at fault.
const ATTEMPTS: u32 = 3;

/// How a queue adapter sends: how many calls at once, and how long each may take.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SendLimits {
    /// `SendMessageBatch` calls in flight at once. 16 keeps a 3,000-item notification (300
    /// calls) to about 19 rounds of SQS latency, well within one connection pool.
    pub in_flight: usize,
    /// The longest one call may take, SDK retries included.
    pub call_timeout: Duration,
    /// Kept free before the invocation's deadline to log and answer (a 5xx, so the sender retries).
    pub answer_reserve: Duration,
    /// The whole send's budget when no invocation deadline is in scope (a CLI, a test).
    pub budget_without_deadline: Duration,
}

impl Default for SendLimits {
    /// Sized for the edges' 6 s function timeout: 16 in flight, 2 s per call, 750 ms to answer,
    /// 5 s in all without a deadline.
    fn default() -> Self {
        Self {
            in_flight: 16,
            call_timeout: Duration::from_secs(2),
            answer_reserve: Duration::from_millis(750),
            budget_without_deadline: Duration::from_secs(5),
        }
    }
}

impl SendLimits {
    /// When sending must be over: the invocation's deadline less the answer reserve, else the
    /// budget from now.
    fn until(&self) -> Instant {
        match deadline::current() {
            Some(deadline) => deadline
                .checked_sub(self.answer_reserve)
                .unwrap_or_else(Instant::now),
            None => Instant::now() + self.budget_without_deadline,
        }
    }
}

/// Why a `SendMessageBatch` call did not succeed; its text never holds a URL.
#[derive(Debug, thiserror::Error)]
pub enum SqsCallError {
    /// No answer within the call's share of the budget.
    #[error("SendMessageBatch got no answer within {0:?}")]
    TimedOut(Duration),
    /// The budget was spent before the call could start.
    #[error("no time left to call SendMessageBatch before the deadline")]
    NoTimeLeft,
    /// The SDK or SQS failed the call (the cause chain, URLs removed).
    #[error("SendMessageBatch failed: {0}")]
    Failed(String),
    /// SQS kept leaving entries unprocessed.
    #[error("{0} entries still unprocessed after {ATTEMPTS} attempts")]
    Unprocessed(usize),
}

/// The `inbound` FIFO queue.
#[derive(Debug, Clone)]
pub struct SqsInboundQueue {
    client: aws_sdk_sqs::Client,
    queue_url: String,
    limits: SendLimits,
}

impl SqsInboundQueue {
    /// Wraps a client and the queue's URL, with the default [`SendLimits`].
    pub fn new(client: aws_sdk_sqs::Client, queue_url: impl Into<String>) -> Self {
        Self {
            client,
            queue_url: queue_url.into(),
            limits: SendLimits::default(),
        }
    }

    /// The same queue with other limits.
    #[must_use]
    pub fn with_limits(mut self, limits: SendLimits) -> Self {
        self.limits = limits;
        self
    }
}

/// Groups entries into `SendMessageBatch` requests of at most ten entries and 256 KiB, giving
/// each entry its index in its batch as id.
pub(crate) fn pack(
    entries: impl IntoIterator<Item = SendMessageBatchRequestEntry>,
) -> Vec<Vec<SendMessageBatchRequestEntry>> {
    let mut batches: Vec<Vec<SendMessageBatchRequestEntry>> = Vec::new();
    let mut current: Vec<SendMessageBatchRequestEntry> = Vec::new();
    let mut current_bytes = 0;
    for mut entry in entries {
        let bytes = entry.message_body.len();
        if current.len() == BATCH_ENTRIES
            || (!current.is_empty() && current_bytes + bytes > BATCH_BYTES)
        {
            batches.push(std::mem::take(&mut current));
            current_bytes = 0;
        }
        current_bytes += bytes;
        entry.id = current.len().to_string();
        current.push(entry);
    }
    if !current.is_empty() {
        batches.push(current);
    }
    batches
}

/// The send requests for `items`, grouped into batches; pure, so the edge's CPU cost can be measured.
pub fn batch_entries(
    items: &[InboundItem],
) -> Result<Vec<Vec<SendMessageBatchRequestEntry>>, QueueError> {
    let encode = |item: &InboundItem| {
        serde_json::to_string(item).map_err(|e| QueueError::Rejected {
            reason: format!("cannot encode an item: {e}"),
        })
    };
    let mut entries = Vec::with_capacity(items.len());
    for item in items {
        let mut body = encode(item)?;
        if body.len() > MAX_ITEM_BYTES {
            // Failing the POST would make Meta redeliver the same body for days and lose every
            // item in it; a marker keeps the item's identity so a consumer can record the loss.
            tracing::error!(item = %item.deduplication_id(), bytes = body.len(),
                "webhook item over the queue's size limit: queued as a marker without its content");
            body = encode(&item.too_large_marker(body.len()))?;
        }
        let entry = SendMessageBatchRequestEntry::builder()
            .id("0")
            .message_body(body)
            .message_group_id(item.group_id())
            .message_deduplication_id(item.deduplication_id())
            .build()
            .map_err(|e| QueueError::Rejected {
                reason: e.to_string(),
            })?;
        entries.push(entry);
    }
    Ok(pack(entries))
}

impl InboundQueue for SqsInboundQueue {
    async fn enqueue(&self, items: &[InboundItem]) -> Result<(), QueueError> {
        send_batches(
            &self.client,
            &self.queue_url,
            batch_entries(items)?,
            self.limits,
        )
        .await
    }
}

/// Sends `batches` with at most `limits.in_flight` calls at once, all of them over before the
/// budget ends, keeping each FIFO message group in order (see [`chains`]). Fails on the first
/// batch that fails: whatever was sent stays sent, and the sender's retry finds it deduplicated
/// (FIFO deduplication ids, or the consumers' claims).
pub(crate) async fn send_batches(
    client: &aws_sdk_sqs::Client,
    queue_url: &str,
    batches: Vec<Vec<SendMessageBatchRequestEntry>>,
    limits: SendLimits,
) -> Result<(), QueueError> {
    let until = limits.until();
    let chains: Vec<_> = chains(batches)
        .into_iter()
        .map(|chain| async move {
            for batch in chain {
                send_batch(client, queue_url, batch, until, limits.call_timeout).await?;
            }
            Ok::<(), QueueError>(())
        })
        .collect();
    futures::stream::iter(chains)
        .buffer_unordered(limits.in_flight.max(1))
        .try_for_each(|()| std::future::ready(Ok(())))
        .await
}

/// Orders the sending of FIFO entries so that calls in flight at once never share a message
/// group: SQS keeps the order of one group's entries within a call, not across concurrent calls.
/// The entries are regrouped (stably) by message group and packed again, and the batches that
/// share a group form a chain sent one after another; chains go concurrently. A notification of
/// 3,000 items from 50 users becomes 50 chains of 6 calls, not one chain of 300.
pub(crate) fn chains(
    batches: Vec<Vec<SendMessageBatchRequestEntry>>,
) -> Vec<Vec<Vec<SendMessageBatchRequestEntry>>> {
    let mut entries: Vec<SendMessageBatchRequestEntry> = batches.into_iter().flatten().collect();
    if entries.iter().all(|e| e.message_group_id.is_none()) {
        // A standard queue: no order to keep, every batch on its own.
        return pack(entries).into_iter().map(|b| vec![b]).collect();
    }
    entries.sort_by(|a, b| a.message_group_id.cmp(&b.message_group_id));
    let batches = pack(entries);
    // Union-find over batches sharing a group.
    let mut parent: Vec<usize> = (0..batches.len()).collect();
    fn root(parent: &mut [usize], mut i: usize) -> usize {
        while parent[i] != i {
            parent[i] = parent[parent[i]];
            i = parent[i];
        }
        i
    }
    let mut first: std::collections::HashMap<&str, usize> = std::collections::HashMap::new();
    for (i, batch) in batches.iter().enumerate() {
        for group in batch.iter().filter_map(|e| e.message_group_id.as_deref()) {
            match first.get(group) {
                Some(&j) => {
                    let (a, b) = (root(&mut parent, i), root(&mut parent, j));
                    parent[a.max(b)] = a.min(b);
                }
                None => {
                    first.insert(group, i);
                }
            }
        }
    }
    let roots: Vec<usize> = (0..batches.len()).map(|i| root(&mut parent, i)).collect();
    let mut chains: Vec<Vec<Vec<SendMessageBatchRequestEntry>>> = Vec::new();
    let mut chain_of: std::collections::HashMap<usize, usize> = std::collections::HashMap::new();
    for (batch, r) in batches.into_iter().zip(roots) {
        let at = *chain_of.entry(r).or_insert_with(|| {
            chains.push(Vec::new());
            chains.len() - 1
        });
        chains[at].push(batch);
    }
    chains
}

async fn send_batch(
    client: &aws_sdk_sqs::Client,
    queue_url: &str,
    mut pending: Vec<SendMessageBatchRequestEntry>,
    until: Instant,
    call_timeout: Duration,
) -> Result<(), QueueError> {
    let unavailable = |e: SqsCallError| QueueError::Unavailable(Box::new(e));
    for attempt in 1..=ATTEMPTS {
        let left = until.saturating_duration_since(Instant::now());
        if left.is_zero() {
            return Err(unavailable(SqsCallError::NoTimeLeft));
        }
        let timeout = call_timeout.min(left);
        let call = client
            .send_message_batch()
            .queue_url(queue_url)
            .set_entries(Some(pending.clone()))
            .send();
        let output = match tokio::time::timeout(timeout, call).await {
            Err(_) => return Err(unavailable(SqsCallError::TimedOut(timeout))),
            Ok(result) => result.map_err(classify)?,
        };
        if output.failed.is_empty() {
            return Ok(());
        }
        if let Some(fault) = output.failed.iter().find(|f| f.sender_fault) {
            return Err(QueueError::Rejected {
                reason: format!("SQS refused an entry: {}", fault.code),
            });
        }
        let failed: Vec<&str> = output.failed.iter().map(|f| f.id.as_str()).collect();
        pending.retain(|entry| failed.contains(&entry.id.as_str()));
        tracing::warn!(
            attempt,
            unprocessed = pending.len(),
            "SQS left entries unprocessed; retrying them"
        );
        let backoff = Duration::from_millis(50 * 2_u64.pow(attempt));
        if Instant::now() + backoff >= until {
            break;
        }
        tokio::time::sleep(backoff).await;
    }
    Err(unavailable(SqsCallError::Unprocessed(pending.len())))
}

/// Maps an SDK error to the port's error; only what sending again cannot fix is `Rejected`.
pub(crate) fn classify(error: SdkError<SendMessageBatchError>) -> QueueError {
    let cause = strip_urls(&crate::error::chain(&error));
    match &error {
        SdkError::ServiceError(service) => match service.err() {
            SendMessageBatchError::QueueDoesNotExist(_)
            | SendMessageBatchError::BatchEntryIdsNotDistinct(_)
            | SendMessageBatchError::BatchRequestTooLong(_)
            | SendMessageBatchError::EmptyBatchRequest(_)
            | SendMessageBatchError::InvalidBatchEntryId(_)
            | SendMessageBatchError::TooManyEntriesInBatchRequest(_)
            | SendMessageBatchError::UnsupportedOperation(_) => {
                QueueError::Rejected { reason: cause }
            }
            _ => QueueError::Unavailable(Box::new(SqsCallError::Failed(cause))),
        },
        _ => QueueError::Unavailable(Box::new(SqsCallError::Failed(cause))),
    }
}

/// `text` with every `http://` or `https://` address replaced by `<url>`: SDK and service error
/// texts may carry the endpoint or queue URL, which stays out of logs.
pub fn strip_urls(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    let mut rest = text;
    loop {
        let lower = rest.to_ascii_lowercase();
        let found = ["http://", "https://"]
            .iter()
            .filter_map(|scheme| lower.find(scheme))
            .min();
        let Some(start) = found else {
            out.push_str(rest);
            return out;
        };
        out.push_str(&rest[..start]);
        out.push_str("<url>");
        let tail = &rest[start..];
        let end = tail
            .find(|c: char| {
                c.is_whitespace() || matches!(c, '"' | '\'' | '<' | '>' | ')' | ']' | ',')
            })
            .unwrap_or(tail.len());
        rest = &tail[end..];
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::domain::inbound::{ENVELOPE_VERSION, InboundKind};
    use crate::error::Retryable;

    fn fifo_entry(group: &str, n: usize) -> SendMessageBatchRequestEntry {
        SendMessageBatchRequestEntry::builder()
            .id("x")
            .message_body(format!("{group}:{n}"))
            .message_group_id(group)
            .message_deduplication_id(format!("{group}-{n}"))
            .build()
            .expect("entry")
    }

    #[test]
    fn calls_in_flight_at_once_never_share_a_message_group_and_each_group_keeps_its_order() {
        // 50 users, 60 items each, interleaved as a notification brings them.
        let entries: Vec<_> = (0..60)
            .flat_map(|n| (0..50).map(move |u| fifo_entry(&format!("user-{u:02}"), n)))
            .collect();
        let chains = chains(pack(entries));
        assert_eq!(chains.len(), 50, "one chain per user");
        let mut groups_seen: std::collections::HashMap<String, usize> = Default::default();
        for (c, chain) in chains.iter().enumerate() {
            let mut order: std::collections::HashMap<String, Vec<usize>> = Default::default();
            for entry in chain.iter().flatten() {
                let group = entry.message_group_id.clone().expect("group");
                assert_eq!(
                    *groups_seen.entry(group.clone()).or_insert(c),
                    c,
                    "a group in one chain only"
                );
                let n = entry
                    .message_body
                    .split(':')
                    .nth(1)
                    .and_then(|n| n.parse().ok())
                    .expect("n");
                order.entry(group).or_default().push(n);
            }
            for (group, ns) in order {
                assert_eq!(ns, (0..60).collect::<Vec<_>>(), "{group} in order");
            }
            assert!(chain.iter().all(|b| b.len() <= 10));
        }
    }

    #[test]
    fn a_standard_queue_sends_every_batch_on_its_own() {
        let entries: Vec<_> = (0..25)
            .map(|n| {
                SendMessageBatchRequestEntry::builder()
                    .id("x")
                    .message_body(n.to_string())
                    .build()
                    .expect("entry")
            })
            .collect();
        let chains = chains(pack(entries));
        assert_eq!(chains.iter().map(Vec::len).collect::<Vec<_>>(), [1, 1, 1]);
    }

    trait UnavailableExt {
        fn is_retryable_unavailable(&self) -> bool;
    }

    impl UnavailableExt for QueueError {
        fn is_retryable_unavailable(&self) -> bool {
            self.is_retryable() && matches!(self, QueueError::Unavailable(_))
        }
    }
    use serde_json::value::RawValue;

    fn item(n: usize, text_len: usize) -> InboundItem {
        let raw = format!(
            r#"{{"id":"wamid.{n}","text":{{"body":"{}"}}}}"#,
            "x".repeat(text_len)
        );
        InboundItem {
            v: ENVELOPE_VERSION,
            kind: InboundKind::Message,
            key: format!("wamid.{n}"),
            user: None,
            phone_number_id: Some("P".into()),
            waba_id: None,
            received_at_ms: 0,
            item: RawValue::from_string(raw).expect("raw"),
            contact: None,
        }
    }

    #[test]
    fn batches_hold_at_most_ten_entries() {
        let items: Vec<_> = (0..23).map(|n| item(n, 10)).collect();
        let sizes: Vec<usize> = batch_entries(&items)
            .expect("ok")
            .iter()
            .map(Vec::len)
            .collect();
        assert_eq!(sizes, [10, 10, 3]);
    }

    #[test]
    fn batches_stay_under_the_request_size_limit() {
        let items: Vec<_> = (0..5).map(|n| item(n, 100_000)).collect();
        let batches = batch_entries(&items).expect("ok");
        assert_eq!(batches.iter().map(Vec::len).collect::<Vec<_>>(), [2, 2, 1]);
        for batch in &batches {
            let bytes: usize = batch.iter().map(|e| e.message_body.len()).sum();
            assert!(bytes <= BATCH_BYTES);
        }
    }

    /// A loopback endpoint that accepts connections and reads requests but never answers: a
    /// stalled SQS.
    async fn stalled_sqs() -> (String, tokio::task::JoinHandle<()>) {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
            .await
            .expect("bind");
        let endpoint = format!("http://{}", listener.local_addr().expect("addr"));
        let server = tokio::spawn(async move {
            let mut held = Vec::new();
            while let Ok((socket, _)) = listener.accept().await {
                held.push(socket);
            }
        });
        (endpoint, server)
    }

    async fn queue_at(endpoint: &str) -> SqsInboundQueue {
        let config = crate::aws::local(endpoint).await;
        SqsInboundQueue::new(
            aws_sdk_sqs::Client::new(&config),
            format!("{endpoint}/123456789012/inbound.fifo"),
        )
    }

    #[tokio::test]
    async fn a_stalled_sqs_fails_the_send_with_a_timeout_instead_of_holding_the_answer() {
        let (endpoint, server) = stalled_sqs().await;
        let queue = queue_at(&endpoint).await.with_limits(SendLimits {
            call_timeout: Duration::from_millis(200),
            budget_without_deadline: Duration::from_secs(1),
            ..SendLimits::default()
        });
        let items: Vec<_> = (0..45).map(|n| item(n, 10)).collect();
        let err = queue.enqueue(&items).await.expect_err("stalled");
        assert!(err.is_retryable_unavailable(), "{err:?}");
        let cause = crate::error::chain(&err);
        assert!(cause.contains("no answer within"), "{cause}");
        server.abort();
    }

    #[tokio::test]
    async fn inside_an_invocation_the_send_ends_before_the_deadline_leaves_no_room_to_answer() {
        let (endpoint, server) = stalled_sqs().await;
        let queue = queue_at(&endpoint).await.with_limits(SendLimits {
            call_timeout: Duration::from_secs(30),
            answer_reserve: Duration::from_millis(700),
            budget_without_deadline: Duration::from_secs(30),
            ..SendLimits::default()
        });
        let deadline = Instant::now() + Duration::from_secs(1);
        let result = deadline::scope(deadline, queue.enqueue(&[item(0, 10)])).await;
        let cause = crate::error::chain(&result.expect_err("stalled"));
        // The call's share was what the deadline left after the reserve, not the 30 s cap.
        assert!(
            cause.contains("no answer within") && !cause.contains("30s"),
            "{cause}"
        );
        server.abort();
    }

    #[tokio::test]
    async fn a_deadline_already_inside_the_reserve_sends_nothing() {
        let (endpoint, server) = stalled_sqs().await;
        let queue = queue_at(&endpoint).await;
        let deadline = Instant::now() + Duration::from_millis(100);
        let result = deadline::scope(deadline, queue.enqueue(&[item(0, 10)])).await;
        let cause = crate::error::chain(&result.expect_err("no time"));
        assert!(cause.contains("no time left"), "{cause}");
        server.abort();
    }

    #[tokio::test]
    async fn an_unreachable_sqs_is_unavailable_and_its_error_carries_no_url() {
        // A port that was just free: nothing listens there.
        let endpoint = {
            let listener = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
            format!("http://{}", listener.local_addr().expect("addr"))
        };
        let queue = queue_at(&endpoint).await;
        let err = queue.enqueue(&[item(0, 10)]).await.expect_err("refused");
        assert!(err.is_retryable_unavailable(), "{err:?}");
        let cause = crate::error::chain(&err);
        assert!(
            !cause.contains("http://") && !cause.contains("127.0.0.1"),
            "{cause}"
        );
    }

    #[test]
    fn urls_are_stripped_from_error_texts() {
        assert_eq!(
            strip_urls(
                "dispatch failure: error sending request for url (https://sqs.eu-west-1.amazonaws.com/1/q.fifo?x=1): timed out"
            ),
            "dispatch failure: error sending request for url (<url>): timed out"
        );
        assert_eq!(strip_urls("HTTP://A/b and http://c"), "<url> and <url>");
        assert_eq!(strip_urls("no address here"), "no address here");
    }

    #[test]
    fn packed_batches_number_their_entries_from_zero() {
        let batches = batch_entries(&(0..12).map(|n| item(n, 10)).collect::<Vec<_>>()).expect("ok");
        let ids: Vec<Vec<&str>> = batches
            .iter()
            .map(|b| b.iter().map(|e| e.id.as_str()).collect())
            .collect();
        assert_eq!(ids[1], ["0", "1"]);
        assert_eq!(ids[0].len(), 10);
    }

    #[test]
    fn an_oversized_item_becomes_a_marker_and_the_others_still_go() {
        let batches =
            batch_entries(&[item(0, 10), item(1, MAX_ITEM_BYTES), item(2, 10)]).expect("sent");
        let bodies: Vec<&str> = batches
            .iter()
            .flatten()
            .map(|e| e.message_body.as_str())
            .collect();
        assert_eq!(bodies.len(), 3);
        assert!(
            bodies[1].contains("item_too_large") && bodies[1].len() < 1024,
            "{}",
            bodies[1]
        );
        assert!(
            bodies[1].contains("wamid.1"),
            "the marker keeps the item's key"
        );
    }
}

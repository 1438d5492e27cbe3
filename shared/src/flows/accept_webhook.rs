//! The WhatsApp webhook edge: authenticate the raw POST, split it, hand every item to the queue.
//! No Graph or DAM calls here: Meta wants an answer in well under a second.

use crate::ports::{InboundQueue, QueueError};
use crate::pseudonym::Pseudonymizer;
use crate::secrets::Secret;
use crate::whatsapp::envelope::{self, EnvelopeError};
use crate::whatsapp::handshake::{self, Handshake};
use crate::whatsapp::signature::{self, AppSecretKeys, SignatureError};

/// What the edge needs, built once per cold start.
#[derive(Debug)]
pub struct WebhookEdge<Q> {
    /// Accepted Meta app secrets.
    pub app_secrets: AppSecretKeys,
    /// The dashboard's verify token.
    pub verify_token: Secret,
    /// Pseudonyms for queue group ids and logs.
    pub pseudonyms: Pseudonymizer,
    /// Where items go.
    pub queue: Q,
}

/// A POST as received: the exact body bytes and the signature headers.
#[derive(Clone, Copy)]
pub struct SignedPost<'a> {
    /// `X-Hub-Signature-256`, if present.
    pub signature: Option<&'a [u8]>,
    /// Whether the legacy SHA-1 `X-Hub-Signature` was present.
    pub legacy_signature: bool,
    /// The raw request body (already base64-decoded when API Gateway encoded it).
    pub body: &'a [u8],
    /// When the request reached API Gateway, Unix milliseconds.
    pub received_at_ms: i64,
}

impl std::fmt::Debug for SignedPost<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        // The body holds phone numbers and message text.
        f.debug_struct("SignedPost")
            .field("bytes", &self.body.len())
            .finish_non_exhaustive()
    }
}

/// A notification durably handed off.
#[derive(Debug, PartialEq, Eq)]
pub struct Accepted {
    /// Items enqueued.
    pub enqueued: usize,
    /// Parts ignored on purpose (other objects or fields).
    pub ignored: Vec<String>,
    /// Elements refused on their own (odd shapes, nested too deep); logged, never queued.
    pub refused: Vec<envelope::Refusal>,
}

/// Why a POST was not accepted.
#[derive(Debug, thiserror::Error)]
pub enum AcceptError {
    /// Not signed by Meta with an accepted secret.
    #[error("the webhook signature was refused")]
    Signature(#[from] SignatureError),
    /// Signed, but not JSON.
    #[error(transparent)]
    Envelope(#[from] EnvelopeError),
    /// The items could not be enqueued; Meta must deliver again.
    #[error("the webhook items could not be enqueued")]
    Queue(#[from] QueueError),
}

impl<Q: InboundQueue> WebhookEdge<Q> {
    /// Answers the GET subscription handshake.
    pub fn handshake(&self, raw_query: &str) -> Handshake {
        handshake::answer(raw_query, &self.verify_token)
    }

    /// Verifies, splits and enqueues a notification; succeeds only when every valid item is
    /// enqueued. Refused elements cost no other item: retrying them could never help, so they are
    /// logged by path (never by content) and the notification is still accepted.
    #[tracing::instrument(name = "accept_whatsapp_notification", skip_all, fields(bytes = post.body.len()))]
    pub async fn accept(&self, post: SignedPost<'_>) -> Result<Accepted, AcceptError> {
        signature::verify(
            &self.app_secrets,
            post.signature,
            post.legacy_signature,
            post.body,
        )?;
        let split = envelope::split(post.body, &self.pseudonyms, post.received_at_ms)?;
        for ignored in &split.ignored {
            tracing::info!(ignored = %ignored, "ignored part of a webhook notification on purpose");
        }
        for refused in &split.refused {
            tracing::warn!(
                path = %refused.path,
                reason = refused.reason.as_str(),
                "refused one element of a webhook notification; the others go on"
            );
        }
        if !split.items.is_empty() {
            self.queue.enqueue(&split.items).await?;
            crate::metrics::count_in(
                "inbound",
                crate::metrics::Outcome::Received,
                split.items.len() as u64,
            );
        }
        tracing::info!(
            enqueued = split.items.len(),
            refused = split.refused.len(),
            "webhook notification accepted"
        );
        Ok(Accepted {
            enqueued: split.items.len(),
            ignored: split.ignored,
            refused: split.refused,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::testing::InMemoryInboundQueue;

    fn edge() -> WebhookEdge<InMemoryInboundQueue> {
        WebhookEdge {
            app_secrets: AppSecretKeys::new(&[Secret::new("app-secret")]),
            verify_token: Secret::new("vt"),
            pseudonyms: Pseudonymizer::new(&Secret::new("k")),
            queue: InMemoryInboundQueue::default(),
        }
    }

    const BODY: &[u8] = br#"{"object":"whatsapp_business_account","entry":[{"id":"W","changes":[{"field":"messages",
      "value":{"metadata":{"phone_number_id":"P"},"messages":[{"from":"1","id":"wamid.1","type":"text"}]}}]}]}"#;

    fn post<'a>(signature: Option<&'a [u8]>) -> SignedPost<'a> {
        SignedPost {
            signature,
            legacy_signature: false,
            body: BODY,
            received_at_ms: 0,
        }
    }

    #[tokio::test]
    async fn a_signed_notification_is_enqueued() {
        let edge = edge();
        let header = edge.app_secrets.sign(BODY).expect("key");
        let accepted = edge
            .accept(post(Some(header.as_bytes())))
            .await
            .expect("accepted");
        assert_eq!(accepted.enqueued, 1);
        assert_eq!(edge.queue.keys(), ["wamid.1"]);
    }

    #[tokio::test]
    async fn an_unsigned_notification_enqueues_nothing() {
        let edge = edge();
        let err = edge.accept(post(None)).await.expect_err("refused");
        assert!(matches!(
            err,
            AcceptError::Signature(SignatureError::Missing)
        ));
        assert!(edge.queue.keys().is_empty());
    }

    #[tokio::test]
    async fn an_entry_that_is_not_an_object_is_refused_and_the_valid_items_enqueued() {
        let edge = edge();
        let body = br#"{"object":"whatsapp_business_account","entry":[5,{"id":"W","changes":["x",
          {"field":"messages","value":{"metadata":{"phone_number_id":"P"},
            "messages":[{"from":"1","id":"wamid.2","type":"text"},7]}}]}]}"#;
        let header = edge.app_secrets.sign(body).expect("key");
        let accepted = edge
            .accept(SignedPost {
                body,
                ..post(Some(header.as_bytes()))
            })
            .await
            .expect("accepted");
        assert_eq!(edge.queue.keys(), ["wamid.2"]);
        assert_eq!(accepted.enqueued, 1);
        let refused: Vec<&str> = accepted.refused.iter().map(|r| r.path.as_str()).collect();
        assert_eq!(
            refused,
            [
                "entry[0]",
                "entry[1].changes[0]",
                "entry[1].changes[1].value.messages[1]"
            ]
        );
    }

    #[tokio::test]
    async fn a_queue_outage_fails_the_whole_notification() {
        let edge = edge();
        edge.queue.fail_next(1);
        let header = edge.app_secrets.sign(BODY).expect("key");
        let err = edge
            .accept(post(Some(header.as_bytes())))
            .await
            .expect_err("outage");
        assert!(matches!(
            err,
            AcceptError::Queue(QueueError::Unavailable(_))
        ));
    }
}

//! Media download as a stream: `GET /{media-id}` for a short-lived URL, then `GET url` with the
//! bearer token, chunk by chunk into a sink, hashing and counting on the way. The whole file is
//! never held in memory; a per-kind byte cap, the declared size and the webhook's sha256 are
//! enforced; an expired URL is fetched again once.

use super::client::{WhatsAppClient, error_for_status};
use crate::error::Retryable;
use crate::whatsapp::errors::{ApiError, ErrorClass};
use crate::whatsapp::messages::MediaKind;
use base64::Engine as _;
use ring::digest;
use serde::Deserialize;
use std::future::Future;

/// `GET /{media-id}`.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
pub struct MediaInfo {
    /// The download URL: needs the bearer token, lives 5 minutes.
    pub url: String,
    /// MIME type.
    pub mime_type: String,
    /// SHA-256 of the file, **hex** here (webhooks send base64).
    pub sha256: String,
    /// Size in bytes; Meta documents a string, sends a number.
    #[serde(deserialize_with = "number_or_string")]
    pub file_size: u64,
    /// The media id.
    pub id: String,
}

fn number_or_string<'de, D: serde::Deserializer<'de>>(d: D) -> Result<u64, D::Error> {
    #[derive(Deserialize)]
    #[serde(untagged)]
    enum Either {
        Number(u64),
        Text(String),
    }
    match Either::deserialize(d)? {
        Either::Number(n) => Ok(n),
        Either::Text(s) => s.trim().parse().map_err(serde::de::Error::custom),
    }
}

/// Where downloaded bytes go (an S3 multipart upload, a file, a counter). A sink may have
/// received bytes by the time a download fails verification: on `Err`, discard what it holds.
pub trait MediaSink {
    /// Takes the next chunk.
    fn write(&mut self, chunk: &[u8]) -> impl Future<Output = std::io::Result<()>> + Send;
}

impl MediaSink for Vec<u8> {
    async fn write(&mut self, chunk: &[u8]) -> std::io::Result<()> {
        self.extend_from_slice(chunk);
        Ok(())
    }
}

/// What the webhook told us about the media, checked against what arrives.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ExpectedMedia {
    /// The media id from the webhook.
    pub media_id: String,
    /// Its kind, which selects the byte cap.
    pub kind: MediaKind,
    /// The webhook's `sha256` (base64), when it has one.
    pub sha256_base64: Option<String>,
}

/// Byte caps per kind; defaults are Meta's own limits, documents included (100 MB).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct MediaCaps {
    /// Image cap.
    pub image: u64,
    /// Video cap.
    pub video: u64,
    /// Audio cap.
    pub audio: u64,
    /// Document cap.
    pub document: u64,
    /// Sticker cap.
    pub sticker: u64,
}

/// What users may send the business, whatever the kind (NOTES §3.2: larger media never arrive and
/// Meta reports 131052 instead). Meta's per-kind limits apply to what the business sends, not to this.
pub const MAX_INBOUND_BYTES: u64 = 100 * 1024 * 1024;

impl Default for MediaCaps {
    /// Caps for inbound media: a 20 MB site video from a field team must not be refused.
    fn default() -> Self {
        Self {
            image: MAX_INBOUND_BYTES,
            video: MAX_INBOUND_BYTES,
            audio: MAX_INBOUND_BYTES,
            document: MAX_INBOUND_BYTES,
            sticker: MAX_INBOUND_BYTES,
        }
    }
}

impl MediaCaps {
    /// The cap for `kind`.
    pub fn of(&self, kind: MediaKind) -> u64 {
        match kind {
            MediaKind::Image => self.image,
            MediaKind::Video => self.video,
            MediaKind::Audio => self.audio,
            MediaKind::Document => self.document,
            MediaKind::Sticker => self.sticker,
        }
    }
}

/// A verified download.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DownloadedMedia {
    /// Bytes written to the sink.
    pub bytes: u64,
    /// SHA-256 of those bytes, hex.
    pub sha256_hex: String,
    /// MIME type Graph reported.
    pub mime_type: String,
    /// How many times the download URL had to be fetched (2 when it had expired).
    pub url_fetches: u32,
}

/// Why a download was refused or failed.
#[derive(Debug, thiserror::Error)]
pub enum MediaError {
    /// Graph refused the metadata or the download, or could not be reached.
    #[error("the media could not be fetched")]
    Api(#[source] ApiError),
    /// Larger than the cap for its kind (declared or seen while streaming).
    #[error("the {kind:?} is larger than its {cap}-byte cap")]
    TooLarge {
        /// Kind.
        kind: MediaKind,
        /// Cap in bytes.
        cap: u64,
    },
    /// The bytes received do not hash to the webhook's (or Graph's) sha256.
    #[error("the media's sha256 does not match the declared one")]
    ChecksumMismatch,
    /// The webhook's sha256 is not base64 of 32 bytes.
    #[error("the declared sha256 is not base64 of 32 bytes")]
    MalformedChecksum,
    /// Fewer or more bytes than `file_size` said.
    #[error("received {received} bytes, {declared} were declared")]
    SizeMismatch {
        /// `file_size`.
        declared: u64,
        /// Bytes streamed.
        received: u64,
    },
    /// The download URL was still refused after fetching a fresh one.
    #[error("the media URL expired twice in a row")]
    UrlExpired,
    /// The sink refused a chunk.
    #[error("the media sink failed")]
    Sink(#[source] std::io::Error),
}

impl Retryable for MediaError {
    fn is_retryable(&self) -> bool {
        match self {
            Self::Api(error) => error.is_retryable(),
            // A short body is a cut connection; the same bytes are still there.
            Self::SizeMismatch { declared, received } => received < declared,
            Self::UrlExpired | Self::Sink(_) => true,
            Self::TooLarge { .. } | Self::ChecksumMismatch | Self::MalformedChecksum => false,
        }
    }
}

impl MediaError {
    /// The class of the underlying API error; local refusals are permanent.
    pub fn class(&self) -> ErrorClass {
        match self {
            Self::Api(error) => error.class(),
            other if other.is_retryable() => ErrorClass::Retryable {
                backoff: crate::whatsapp::errors::Backoff::Exponential,
            },
            _ => ErrorClass::Permanent,
        }
    }
}

impl WhatsAppClient {
    /// `GET /{media-id}`: a fresh download URL and the file's metadata.
    pub async fn media_info(&self, media_id: &str) -> Result<MediaInfo, ApiError> {
        self.get_json(media_id).await
    }

    /// Streams the media into `sink` and verifies it; see the module docs.
    pub async fn download_media<S: MediaSink + Send>(
        &self,
        expected: &ExpectedMedia,
        caps: &MediaCaps,
        sink: &mut S,
    ) -> Result<DownloadedMedia, MediaError> {
        let cap = caps.of(expected.kind);
        let expected_digest = match &expected.sha256_base64 {
            Some(b64) => Some(decode_sha256(b64)?),
            None => None,
        };
        let mut url_fetches = 0;
        loop {
            let info = self
                .media_info(&expected.media_id)
                .await
                .map_err(MediaError::Api)?;
            url_fetches += 1;
            if info.file_size > cap {
                return Err(MediaError::TooLarge {
                    kind: expected.kind,
                    cap,
                });
            }
            let digest = match expected_digest {
                Some(digest) => digest,
                None => {
                    let mut digest = [0_u8; 32];
                    hex::decode_to_slice(&info.sha256, &mut digest)
                        .map_err(|_| MediaError::MalformedChecksum)?;
                    digest
                }
            };
            let response = self
                .http
                .get(&info.url)
                .bearer_auth(self.token.expose())
                .send()
                .await
                .map_err(|e| MediaError::Api(ApiError::Transport(e)))?;
            let status = response.status().as_u16();
            // An expired lookaside URL answers 404 (or 403/410); a fresh one comes from the media id.
            if matches!(status, 403 | 404 | 410) {
                if url_fetches >= 2 {
                    return Err(MediaError::UrlExpired);
                }
                continue;
            }
            if !(200..300).contains(&status) {
                let body = response.bytes().await.unwrap_or_default();
                return Err(MediaError::Api(
                    error_for_status(status, &body)
                        .err()
                        .unwrap_or(ApiError::Status { status }),
                ));
            }
            if response.content_length().is_some_and(|len| len > cap) {
                return Err(MediaError::TooLarge {
                    kind: expected.kind,
                    cap,
                });
            }
            let (bytes, actual) = stream_into(response, sink, cap, expected.kind).await?;
            if bytes != info.file_size {
                return Err(MediaError::SizeMismatch {
                    declared: info.file_size,
                    received: bytes,
                });
            }
            if actual != digest {
                return Err(MediaError::ChecksumMismatch);
            }
            return Ok(DownloadedMedia {
                bytes,
                sha256_hex: hex::encode(actual),
                mime_type: info.mime_type,
                url_fetches,
            });
        }
    }
}

fn decode_sha256(b64: &str) -> Result<[u8; 32], MediaError> {
    let bytes = base64::engine::general_purpose::STANDARD
        .decode(b64.trim())
        .map_err(|_| MediaError::MalformedChecksum)?;
    bytes.try_into().map_err(|_| MediaError::MalformedChecksum)
}

async fn stream_into<S: MediaSink + Send>(
    mut response: reqwest::Response,
    sink: &mut S,
    cap: u64,
    kind: MediaKind,
) -> Result<(u64, [u8; 32]), MediaError> {
    let mut hasher = digest::Context::new(&digest::SHA256);
    let mut total: u64 = 0;
    while let Some(chunk) = response
        .chunk()
        .await
        .map_err(|e| MediaError::Api(ApiError::Transport(e)))?
    {
        total += chunk.len() as u64;
        if total > cap {
            return Err(MediaError::TooLarge { kind, cap });
        }
        hasher.update(&chunk);
        sink.write(&chunk).await.map_err(MediaError::Sink)?;
    }
    let mut digest = [0_u8; 32];
    digest.copy_from_slice(hasher.finish().as_ref());
    Ok((total, digest))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn media_info_accepts_file_size_as_number_or_string() {
        let path = concat!(
            env!("CARGO_MANIFEST_DIR"),
            "/../fixtures/whatsapp/graph/media-info.json"
        );
        let raw = std::fs::read_to_string(path).expect("fixture");
        let info: MediaInfo = serde_json::from_str(&raw).expect("parses");
        assert_eq!(info.file_size, 73_519);
        let as_text = raw.replace("73519", "\"73519\"");
        let info: MediaInfo = serde_json::from_str(&as_text).expect("parses");
        assert_eq!(info.file_size, 73_519);
    }

    #[test]
    fn webhook_checksums_must_be_base64_of_32_bytes() {
        let ok = base64::engine::general_purpose::STANDARD.encode([7_u8; 32]);
        assert_eq!(decode_sha256(&ok).expect("valid"), [7_u8; 32]);
        assert!(matches!(
            decode_sha256("SfInY0gGKTsJ"),
            Err(MediaError::MalformedChecksum)
        ));
        assert!(matches!(
            decode_sha256("not base64!"),
            Err(MediaError::MalformedChecksum)
        ));
    }

    #[test]
    fn default_caps_take_everything_a_user_can_send() {
        let caps = MediaCaps::default();
        // A 20 MB video from the field is bigger than what the business may send, but users may.
        assert_eq!(caps.of(MediaKind::Video), 100 * 1024 * 1024);
        assert_eq!(caps.of(MediaKind::Image), 100 * 1024 * 1024);
        assert_eq!(caps.of(MediaKind::Document), 100 * 1024 * 1024);
    }

    #[test]
    fn only_a_truncated_body_is_worth_retrying() {
        assert!(
            MediaError::SizeMismatch {
                declared: 10,
                received: 5
            }
            .is_retryable()
        );
        assert!(
            !MediaError::SizeMismatch {
                declared: 5,
                received: 10
            }
            .is_retryable()
        );
        assert!(!MediaError::ChecksumMismatch.is_retryable());
        assert_eq!(MediaError::ChecksumMismatch.class(), ErrorClass::Permanent);
    }
}

//! The S3 staging bucket: media streamed in from WhatsApp (one `PutObject` below the part size,
//! a multipart upload above it, never more than one part in memory), the malware scan's verdict
//! as GuardDuty Malware Protection for S3 tags it, and the object streamed back out to the DAM.

use crate::adapters::whatsapp::media::MediaSink;
use crate::error::Retryable;
use aws_sdk_s3::primitives::ByteStream;
use aws_sdk_s3::types::{CompletedMultipartUpload, CompletedPart};
use bytes::Bytes;
use futures::stream::BoxStream;
use futures::{StreamExt, TryStreamExt};

/// The tag GuardDuty Malware Protection for S3 writes on each scanned object.
pub const SCAN_TAG: &str = "GuardDutyMalwareScanStatus";

/// Part size of multipart uploads: S3's minimum is 5 MiB; 8 MiB keeps memory flat and calls few.
pub const PART_SIZE: usize = 8 * 1024 * 1024;

/// S3's smallest part (all but the last).
const MIN_PART_SIZE: usize = 5 * 1024 * 1024;

/// How many leading bytes a sink keeps for sniffing the type and reading EXIF (which lives in the
/// first 64 KiB of a JPEG).
pub const HEAD_BYTES: usize = 128 * 1024;

/// The scan's verdict on an object.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ScanVerdict {
    /// Not tagged yet.
    Pending,
    /// `NO_THREATS_FOUND`.
    Clean,
    /// `THREATS_FOUND`.
    Threat,
    /// `UNSUPPORTED`, `ACCESS_DENIED`, `FAILED` or a value this version does not know: not clean.
    NotScanned(String),
}

/// The staging bucket failed.
#[derive(Debug, thiserror::Error)]
pub enum StagingError {
    /// S3 could not be reached or failed; the same call may pass later.
    #[error("the staging bucket is unavailable")]
    Unavailable(#[source] Box<dyn std::error::Error + Send + Sync>),
    /// The object is not there (expired by lifecycle, deleted).
    #[error("the staged object is gone")]
    Missing,
}

impl Retryable for StagingError {
    fn is_retryable(&self) -> bool {
        matches!(self, Self::Unavailable(_))
    }
}

fn unavailable(error: impl std::error::Error + Send + Sync + 'static) -> StagingError {
    StagingError::Unavailable(Box::new(error))
}

/// The bucket.
#[derive(Debug, Clone)]
pub struct S3Staging {
    client: aws_sdk_s3::Client,
    bucket: String,
}

impl S3Staging {
    /// A client on `bucket`; path-style addressing when an endpoint override is set (moto).
    pub fn new(aws: &aws_config::SdkConfig, bucket: impl Into<String>) -> Self {
        let config = aws_sdk_s3::config::Builder::from(aws)
            .force_path_style(aws.endpoint_url().is_some())
            .build();
        Self {
            client: aws_sdk_s3::Client::from_conf(config),
            bucket: bucket.into(),
        }
    }

    /// The bucket's name.
    pub fn bucket(&self) -> &str {
        &self.bucket
    }

    /// A sink that writes the object `key`.
    pub fn sink(&self, key: &str) -> StagingSink {
        StagingSink {
            client: self.client.clone(),
            bucket: self.bucket.clone(),
            key: key.to_owned(),
            buffer: Vec::new(),
            upload_id: None,
            parts: Vec::new(),
            head: Vec::new(),
            written: 0,
        }
    }

    /// The object's size, `None` when it is not there.
    pub async fn size(&self, key: &str) -> Result<Option<u64>, StagingError> {
        match self
            .client
            .head_object()
            .bucket(&self.bucket)
            .key(key)
            .send()
            .await
        {
            Ok(head) => Ok(Some(
                head.content_length()
                    .and_then(|l| u64::try_from(l).ok())
                    .unwrap_or(0),
            )),
            Err(error) if error.as_service_error().is_some_and(|e| e.is_not_found()) => Ok(None),
            Err(error) => Err(unavailable(error)),
        }
    }

    /// The first `len` bytes of the object (for EXIF, after a restart).
    pub async fn head_bytes(&self, key: &str, len: usize) -> Result<Vec<u8>, StagingError> {
        let out = self
            .client
            .get_object()
            .bucket(&self.bucket)
            .key(key)
            .range(format!("bytes=0-{}", len.saturating_sub(1)))
            .send()
            .await
            .map_err(|e| match e.as_service_error() {
                Some(s) if s.is_no_such_key() => StagingError::Missing,
                _ => unavailable(e),
            })?;
        let bytes = out.body.collect().await.map_err(unavailable)?;
        Ok(bytes.into_bytes().to_vec())
    }

    /// The malware scan's verdict, read from the object's tags.
    pub async fn scan_verdict(&self, key: &str) -> Result<ScanVerdict, StagingError> {
        let tags = self
            .client
            .get_object_tagging()
            .bucket(&self.bucket)
            .key(key)
            .send()
            .await
            .map_err(|e| {
                if e.raw_response().is_some_and(|r| r.status().as_u16() == 404) {
                    StagingError::Missing
                } else {
                    unavailable(e)
                }
            })?;
        let value = tags
            .tag_set()
            .iter()
            .find(|t| t.key() == SCAN_TAG)
            .map(|t| t.value().to_owned());
        Ok(match value.as_deref() {
            None => ScanVerdict::Pending,
            Some("NO_THREATS_FOUND") => ScanVerdict::Clean,
            Some("THREATS_FOUND") => ScanVerdict::Threat,
            Some(other) => ScanVerdict::NotScanned(other.to_owned()),
        })
    }

    /// Deletes the object (deleting a missing object succeeds).
    pub async fn delete(&self, key: &str) -> Result<(), StagingError> {
        self.client
            .delete_object()
            .bucket(&self.bucket)
            .key(key)
            .send()
            .await
            .map_err(unavailable)?;
        Ok(())
    }

    /// Opens the object as a stream of chunks, each call a new `GetObject` (an upload retry
    /// starts again from the first byte); the request is made when the stream is first polled.
    pub fn open(
        &self,
        key: &str,
        len: u64,
    ) -> impl Fn() -> std::io::Result<(BoxStream<'static, std::io::Result<Bytes>>, u64)>
    + Send
    + Sync
    + 'static {
        let client = self.client.clone();
        let bucket = self.bucket.clone();
        let key = key.to_owned();
        move || {
            let (client, bucket, key) = (client.clone(), bucket.clone(), key.clone());
            let stream = futures::stream::once(async move {
                let out = client
                    .get_object()
                    .bucket(bucket)
                    .key(key)
                    .send()
                    .await
                    .map_err(std::io::Error::other)?;
                Ok::<_, std::io::Error>(tokio_util::io::ReaderStream::with_capacity(
                    out.body.into_async_read(),
                    64 * 1024,
                ))
            })
            .try_flatten()
            .boxed();
            Ok((stream, len))
        }
    }
}

/// Writes one object as bytes arrive. Call [`StagingSink::finish`] after the last chunk, or
/// [`StagingSink::abort`] when the download failed.
#[derive(Debug)]
pub struct StagingSink {
    client: aws_sdk_s3::Client,
    bucket: String,
    key: String,
    buffer: Vec<u8>,
    upload_id: Option<String>,
    parts: Vec<CompletedPart>,
    head: Vec<u8>,
    written: u64,
}

/// What a finished sink wrote.
#[derive(Debug, Clone)]
pub struct StagedObject {
    /// Bytes written.
    pub bytes: u64,
    /// The first [`HEAD_BYTES`] bytes.
    pub head: Vec<u8>,
}

impl StagingSink {
    async fn upload_part(&mut self) -> Result<(), StagingError> {
        let upload_id = match &self.upload_id {
            Some(id) => id.clone(),
            None => {
                let created = self
                    .client
                    .create_multipart_upload()
                    .bucket(&self.bucket)
                    .key(&self.key)
                    .send()
                    .await
                    .map_err(unavailable)?;
                let id = created
                    .upload_id()
                    .ok_or_else(|| {
                        unavailable(std::io::Error::other("no upload id in the answer"))
                    })?
                    .to_owned();
                self.upload_id = Some(id.clone());
                id
            }
        };
        let number = i32::try_from(self.parts.len() + 1).unwrap_or(i32::MAX);
        let body = std::mem::take(&mut self.buffer);
        let part = self
            .client
            .upload_part()
            .bucket(&self.bucket)
            .key(&self.key)
            .upload_id(upload_id)
            .part_number(number)
            .body(ByteStream::from(body))
            .send()
            .await
            .map_err(unavailable)?;
        self.parts.push(
            CompletedPart::builder()
                .part_number(number)
                .set_e_tag(part.e_tag().map(str::to_owned))
                .build(),
        );
        Ok(())
    }

    /// Writes what is left and completes the object.
    pub async fn finish(mut self) -> Result<StagedObject, StagingError> {
        match self.upload_id.clone() {
            None => {
                let body = std::mem::take(&mut self.buffer);
                self.client
                    .put_object()
                    .bucket(&self.bucket)
                    .key(&self.key)
                    .body(ByteStream::from(body))
                    .send()
                    .await
                    .map_err(unavailable)?;
            }
            Some(upload_id) => {
                if !self.buffer.is_empty() {
                    self.upload_part().await?;
                }
                self.client
                    .complete_multipart_upload()
                    .bucket(&self.bucket)
                    .key(&self.key)
                    .upload_id(upload_id)
                    .multipart_upload(
                        CompletedMultipartUpload::builder()
                            .set_parts(Some(std::mem::take(&mut self.parts)))
                            .build(),
                    )
                    .send()
                    .await
                    .map_err(unavailable)?;
            }
        }
        Ok(StagedObject {
            bytes: self.written,
            head: std::mem::take(&mut self.head),
        })
    }

    /// Drops what was written: aborts the multipart upload (the bucket's lifecycle rule removes
    /// any upload this could not abort).
    pub async fn abort(self) {
        if let Some(upload_id) = &self.upload_id
            && let Err(error) = self
                .client
                .abort_multipart_upload()
                .bucket(&self.bucket)
                .key(&self.key)
                .upload_id(upload_id)
                .send()
                .await
        {
            tracing::warn!(
                error = %crate::error::chain(&error),
                "could not abort a staging upload; the lifecycle rule will"
            );
        }
    }

    /// The first bytes written so far.
    pub fn head(&self) -> &[u8] {
        &self.head
    }
}

impl MediaSink for StagingSink {
    async fn write(&mut self, chunk: &[u8]) -> std::io::Result<()> {
        if self.head.len() < HEAD_BYTES {
            let take = (HEAD_BYTES - self.head.len()).min(chunk.len());
            self.head.extend_from_slice(&chunk[..take]);
        }
        self.written += chunk.len() as u64;
        // A part goes out before the buffer would outgrow its one allocation (growing a Vec
        // doubles it: 8 MiB of data would sit in 16 MiB).
        if self.buffer.len() + chunk.len() > PART_SIZE && self.buffer.len() >= MIN_PART_SIZE {
            self.upload_part().await.map_err(std::io::Error::other)?;
        }
        if self.buffer.capacity() == 0 {
            self.buffer = Vec::with_capacity(PART_SIZE);
        }
        self.buffer.extend_from_slice(chunk);
        Ok(())
    }
}

//! Glue shared by every Lambda function: SQS partial batch responses and HTTP responses.

pub mod http;
pub mod sqs_batch;

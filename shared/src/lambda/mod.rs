//! Glue shared by every Lambda function: the invocation deadline, SQS partial batch responses and
//! HTTP responses.

pub mod deadline;
pub mod function;
pub mod http;
pub mod sqs_batch;

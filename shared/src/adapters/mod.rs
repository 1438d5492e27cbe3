//! Port implementations on AWS services.

pub mod sqs;

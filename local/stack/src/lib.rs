//! The local stack: moto for DynamoDB, S3 and SQS; every resource created from `template.yaml`;
//! the real handlers behind a local HTTP front and a queue runner that plays Lambda's event source
//! mappings. Used by the `local-stack` and `demo` binaries and by the end-to-end tests.

pub mod front;
pub mod functions;
pub mod jwt;
pub mod malware_scan;
pub mod moto;
pub mod provision;
pub mod runner;
pub mod sam_local;
pub mod stack;
pub mod template;
pub mod whatsapp_meta;

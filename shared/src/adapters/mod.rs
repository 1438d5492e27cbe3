//! Port implementations on AWS services.

pub mod campaigns;
pub mod directory;
pub mod dynamodb;
pub mod expiry_ledger;
pub mod field_ingest_store;
pub mod operations;
pub mod orange_logic;
pub mod reviews;
pub mod sending;
pub mod sent_lookup;
pub mod sharing_audit;
pub mod sqs;
pub mod sqs_json;
pub mod sqs_records;
pub mod staging;
pub mod ugc_store;
pub mod whatsapp;

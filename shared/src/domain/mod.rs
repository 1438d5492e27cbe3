//! The connector's pure domain: no AWS, no HTTP, only rules and values.

pub mod campaign;
pub mod contact;
pub mod dam;
pub mod directory_csv;
pub mod expiry;
pub mod field_ingest;
pub mod inbound;
pub mod operations;
pub mod opt_out;
pub mod outbound;
pub mod review;
pub mod routing;
pub mod sending;
pub mod sharing;
pub mod ugc;

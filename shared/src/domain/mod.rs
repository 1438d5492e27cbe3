//! The connector's pure domain: no AWS, no HTTP, only rules and values.

pub mod contact;
pub mod dam;
pub mod inbound;
pub mod outbound;
pub mod sending;

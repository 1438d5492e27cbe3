//! The connector's pure domain: no AWS, no HTTP, only rules and values.

pub mod dam;
pub mod inbound;

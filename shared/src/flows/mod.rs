//! Flows: the business steps, orchestrating ports. Functions call one flow per event.

pub mod accept_webhook;
pub mod campaign_rollout;
pub mod dam_log;
pub mod dam_webhook;
pub mod detect_changes;
pub mod field_ingest;
pub mod issue_alert;
pub mod review_request;
pub mod rights_expiry;
pub mod route_inbound;
pub mod send_message;
pub mod share_asset;
pub mod track_delivery;
pub mod ugc_intake;

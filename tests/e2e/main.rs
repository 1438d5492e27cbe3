//! End-to-end tests: the real handlers on the local stack (moto, HTTP front, queue runner).

mod aws_sources;
mod campaign;
mod contacts_import;
mod conversation;
mod dam;
mod dam_webhook;
mod directory;
mod field_ingest;
mod log_hygiene;
mod metrics;
mod operator_cmd;
mod operator_page;
mod orange_logic_client;
mod queue_runner;
mod review;
mod rights_expiry;
mod route_inbound;
mod sam_local;
mod send_message;
mod sender_support;
mod sharing;
mod templates;
mod track_delivery;
mod ugc;
mod whatsapp_sim;
mod whatsapp_webhook;

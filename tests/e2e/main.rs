//! End-to-end tests: the real handlers on the local stack (moto, HTTP front, queue runner).

mod queue_runner;
mod whatsapp_sim;
mod whatsapp_webhook;

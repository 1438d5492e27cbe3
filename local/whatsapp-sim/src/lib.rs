//! A WhatsApp Cloud API simulator on loopback. It checks request bodies against Meta's OpenAPI spec
//! (with written errata), answers with Meta's errors (190, 100, 130429, 131056, 132000, 132001,
//! 131009), fails free-form messages outside the 24-hour window asynchronously (131047), serves
//! media through expiring URLs that need the token, and plays simulated users whose messages and
//! delivery statuses reach the callback URL as signed webhooks. Its rules run on a [`Clock`] that
//! tests can stop and move, and its deliveries can be held and released, so no test races time.

pub mod clock;
pub mod delivery;
pub mod multipart;
pub mod server;
pub mod spec;
pub mod world;

pub use clock::Clock;
pub use delivery::DeliverySwitches;
pub use server::{SimConfig, SimError, SimUser, Simulator};
pub use world::{Fault, Limits, ReviewStatus, TemplateDef, catalogue_templates};

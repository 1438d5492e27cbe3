//! The Lambda entry point: everything is wired by the library's `Lambda`.
// The sender's and tracker's futures nest deeply (batch runner, flow, adapters).
#![recursion_limit = "256"]

#[tokio::main]
async fn main() -> Result<(), lambda_runtime::Error> {
    shared::lambda::function::run::<track_delivery::Lambda>().await
}

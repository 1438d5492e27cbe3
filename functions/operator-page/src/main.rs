//! The Lambda entry point: everything is wired by the library's `Lambda`.

#![recursion_limit = "256"]

#[tokio::main]
async fn main() -> Result<(), lambda_runtime::Error> {
    shared::lambda::function::run::<operator_page::Lambda>().await
}

//! The Lambda entry point: everything is wired by the library's `Lambda`.

#[tokio::main]
async fn main() -> Result<(), lambda_runtime::Error> {
    shared::lambda::function::run::<intake_ugc_submission::Lambda>().await
}

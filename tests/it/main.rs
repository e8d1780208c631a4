//! webcare's integration tests, in one binary so that it links once (matklad, "Delete Cargo Integration Tests").

/// Declares each case once and runs it on both backends.
macro_rules! contract {
    ($($case:ident),* $(,)?) => {
        mod sqlite {
            $(#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn $case() {
                let t = webcare_tests::TestDb::sqlite().await;
                super::$case(&t).await;
            })*
        }
        mod postgres {
            $(#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn $case() {
                if let Some(t) = webcare_tests::TestDb::postgres().await {
                    super::$case(&t).await;
                }
            })*
        }
    };
}

mod alerts;
mod api;
mod console;
mod delivery;
mod http;
mod intake;
mod staff;
mod storage;
mod storage_open;
mod tickets;
mod webchat;

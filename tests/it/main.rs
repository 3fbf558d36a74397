//! Integration tests: the real server on a random port, a fake Slack Web API,
//! requests signed exactly as Slack signs them.
#![allow(clippy::unwrap_used, clippy::expect_used)]

/// Runs an `async fn name(backend)` test on SQLite, and on PostgreSQL when
/// `TEST_DATABASE_URL` is set: `name::sqlite`, `name::postgres`.
#[macro_export]
macro_rules! both {
    ($($name:ident),* $(,)?) => { $(
        mod $name {
            #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn sqlite() {
                super::$name($crate::helpers::Backend::Sqlite).await
            }
            #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn postgres() {
                match $crate::helpers::Backend::postgres() {
                    Some(b) => super::$name(b).await,
                    None => eprintln!("TEST_DATABASE_URL is not set: PostgreSQL half skipped"),
                }
            }
        }
    )* };
}

mod fake_slack;
mod helpers;
mod process;

mod admin;
mod api;
mod authz;
mod chat;
mod core_rules;
mod delegation;
mod delivery;
mod duplicates;
mod durations;
mod edge;
mod escalation;
mod extend;
mod faults;
mod flows;
mod give_back;
mod identities;
mod logs;
mod okta;
mod okta_identity;
mod okta_schema;
mod ops;
mod quorum;
mod reload;
mod replay;
mod replicas;
mod requesters;
mod security;
mod soak;
mod socket_mode;
mod statements;
mod steps;
mod usergroups;

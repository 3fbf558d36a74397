//! Integration tests: the real server on a random port, a fake Slack Web API,
//! requests signed exactly as Slack signs them.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod fake_slack;
mod helpers;

mod admin;
mod delivery;
mod flows;
mod security;

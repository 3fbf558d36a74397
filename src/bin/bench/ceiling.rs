//! The ceiling: the least a Slack endpoint can do — an axum handler that
//! verifies the request signature (with accessbot's own `verify`) and answers
//! 200, in a process of its own started like the server (`#[tokio::main]`,
//! default runtime, pinned to CPU 0). accessbot's full path is compared to it.

use std::sync::Arc;

use axum::body::Bytes;
use axum::extract::State;
use axum::http::{HeaderMap, StatusCode};
use axum::routing::post;
use axum::Router;

async fn handler(State(secret): State<Arc<String>>, headers: HeaderMap, body: Bytes) -> StatusCode {
    let h = |k: &str| headers.get(k).and_then(|v| v.to_str().ok());
    let now = chrono::Utc::now().timestamp();
    match accessbot::slack::verify::verify(&secret, h("x-slack-request-timestamp"), h("x-slack-signature"), &body, now)
    {
        Ok(()) => StatusCode::OK,
        Err(_) => StatusCode::UNAUTHORIZED,
    }
}

/// Serves until killed. The secret comes from `SLACK_SIGNING_SECRET`.
pub async fn serve(port: u16) -> anyhow::Result<()> {
    let secret = std::env::var("SLACK_SIGNING_SECRET")?;
    let app = Router::new().route("/slack/commands", post(handler)).with_state(Arc::new(secret));
    let listener = tokio::net::TcpListener::bind(("127.0.0.1", port)).await?;
    axum::serve(listener, app).await?;
    Ok(())
}

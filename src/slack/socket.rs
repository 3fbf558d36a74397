//! Socket Mode: `apps.connections.open` with the app-level token, then Slack's
//! envelopes over the websocket it returns, each acked with its `envelope_id`.
//! There are no request signatures here: the trust is the token and TLS to Slack.
//! Everything else (team check, authorization, limits) is the HTTP handlers' own code.

use std::time::Duration;

use futures_util::{SinkExt, StreamExt};
use rand::Rng;
use serde::Deserialize;
use serde_json::{json, Value};
use tokio::net::TcpStream;
use tokio::sync::mpsc;
use tokio::time::Instant;
use tokio_tungstenite::tungstenite::Message;
use tokio_tungstenite::{MaybeTlsStream, WebSocketStream};
use tokio_util::sync::CancellationToken;

use super::client::{ApiError, SlackClient};
use super::verify::Claim;
use super::{commands, events, interactions, Answer};
use crate::state::AppState;

type Socket = WebSocketStream<MaybeTlsStream<TcpStream>>;

/// How long a websocket handshake may take.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(10);
/// We ping this often; a socket silent for `SILENT_MAX` is taken for dropped.
const PING_EVERY: Duration = Duration::from_secs(30);
const SILENT_MAX: Duration = Duration::from_secs(90);
/// How long a handled `envelope_id` is remembered: Slack retries an unacked
/// envelope for a few minutes, on this connection or the next.
const ENVELOPE_MEMORY: chrono::TimeDelta = chrono::TimeDelta::hours(1);

/// Waits between connection attempts: doubling from `first` up to `max`, jittered.
#[derive(Clone, Copy, Debug)]
pub struct Backoff {
    pub first: Duration,
    pub max: Duration,
}

impl Backoff {
    pub const SLACK: Backoff = Backoff { first: Duration::from_secs(1), max: Duration::from_secs(30) };

    /// The wait before attempt `failures + 1`: between half and all of `first · 2^failures`, capped.
    pub fn delay(&self, failures: u32) -> Duration {
        let full = self.first.saturating_mul(1u32 << failures.min(16)).min(self.max);
        let half = full / 2;
        half + rand::thread_rng().gen_range(Duration::ZERO..=full - half)
    }
}

/// One Socket Mode message: `hello`, `disconnect`, or an envelope.
#[derive(Deserialize)]
struct Incoming {
    #[serde(rename = "type")]
    kind: String,
    envelope_id: Option<String>,
    #[serde(default)]
    payload: Value,
    #[serde(default)]
    accepts_response_payload: bool,
    retry_attempt: Option<u32>,
    reason: Option<String>,
}

/// Keeps a Socket Mode connection up until `shutdown`: a `disconnect` or a
/// dropped socket opens a new one, after a backoff.
pub fn spawn(
    state: AppState,
    client: SlackClient,
    backoff: Backoff,
    shutdown: CancellationToken,
) -> tokio::task::JoinHandle<()> {
    tracing::info!("slack socket mode: on (SLACK_APP_TOKEN is set); the HTTP endpoints keep serving");
    tokio::spawn(async move {
        let mut failures = 0u32;
        while !shutdown.is_cancelled() {
            let connected = tokio::select! {
                _ = shutdown.cancelled() => break,
                c = connect(&client) => c,
            };
            let greeted = match connected {
                Ok(socket) => session(&state, socket, &shutdown).await,
                Err(why) => {
                    tracing::warn!("slack socket mode: {why}");
                    false
                }
            };
            if shutdown.is_cancelled() {
                break;
            }
            // A connection that said hello was healthy: start the backoff over.
            failures = if greeted { 0 } else { failures.saturating_add(1) };
            let wait = backoff.delay(failures);
            tracing::info!(wait_ms = wait.as_millis() as u64, "slack socket mode: reconnecting");
            tokio::select! {
                _ = shutdown.cancelled() => {}
                _ = tokio::time::sleep(wait) => {}
            }
        }
        tracing::info!("slack socket mode: stopped");
    })
}

/// `apps.connections.open`, then the websocket at the URL it gives.
async fn connect(client: &SlackClient) -> Result<Socket, String> {
    let opened = client.call_form("apps.connections.open", &[]).await.map_err(|e| match e {
        ApiError::Permanent(error) => format!(
            "Slack refused SLACK_APP_TOKEN ({error}): use an app-level token with the connections:write scope \
             and turn Socket Mode on in the app's settings"
        ),
        ApiError::Transient { error, .. } => format!("{error}; will retry"),
    })?;
    let url = opened["url"].as_str().ok_or("apps.connections.open answered without a url; will retry")?;
    match tokio::time::timeout(CONNECT_TIMEOUT, tokio_tungstenite::connect_async(url)).await {
        Ok(Ok((socket, _))) => Ok(socket),
        // The URL carries a ticket: only its host is worth logging.
        Ok(Err(e)) => Err(format!("websocket to {} failed: {e}; will retry", crate::redact::redact_url(url))),
        Err(_) => Err(format!("websocket to {} timed out; will retry", crate::redact::redact_url(url))),
    }
}

/// Serves one connection until it ends; true when Slack said hello on it.
async fn session(state: &AppState, socket: Socket, shutdown: &CancellationToken) -> bool {
    let (mut sink, mut stream) = socket.split();
    let (acks, mut to_send) = mpsc::channel::<String>(64);
    let mut greeted = false;
    let mut heard = Instant::now();
    let mut ping = tokio::time::interval_at(Instant::now() + PING_EVERY, PING_EVERY);
    loop {
        tokio::select! {
            _ = shutdown.cancelled() => break,
            Some(ack) = to_send.recv() => {
                if let Err(e) = sink.send(Message::text(ack)).await {
                    tracing::warn!(error = %e, "slack socket mode: could not send an ack; reconnecting");
                    return greeted;
                }
            }
            _ = ping.tick() => {
                if heard.elapsed() > SILENT_MAX {
                    tracing::warn!("slack socket mode: connection silent too long; reconnecting");
                    return greeted;
                }
                let _ = sink.send(Message::Ping(Default::default())).await;
            }
            frame = stream.next() => {
                heard = Instant::now();
                match frame {
                    Some(Ok(Message::Text(text))) => match message(state, text.as_str(), &acks) {
                        Step::Go => {}
                        Step::Hello => greeted = true,
                        Step::Disconnect => break,
                    },
                    Some(Ok(Message::Close(_))) | None => {
                        tracing::warn!("slack socket mode: connection closed; reconnecting");
                        return greeted;
                    }
                    Some(Ok(_)) => {}
                    Some(Err(e)) => {
                        tracing::warn!(error = %e, "slack socket mode: connection dropped; reconnecting");
                        return greeted;
                    }
                }
            }
        }
    }
    let _ = sink.send(Message::Close(None)).await;
    greeted
}

enum Step {
    Go,
    Hello,
    Disconnect,
}

/// Reads one text message; an envelope is handled on its own task and acked through `acks`.
fn message(state: &AppState, text: &str, acks: &mpsc::Sender<String>) -> Step {
    let msg = match serde_json::from_str::<Incoming>(text) {
        Ok(m) => m,
        Err(e) => {
            tracing::warn!(error = %e, "slack socket mode: unreadable message ignored");
            return Step::Go;
        }
    };
    match (msg.kind.as_str(), msg.envelope_id.clone()) {
        ("hello", _) => {
            tracing::info!("slack socket mode: connected");
            Step::Hello
        }
        // Reconnecting at once; an envelope left unacked on the old socket is redelivered, and its claim holds.
        ("disconnect", _) => {
            tracing::info!(reason = msg.reason.as_deref().unwrap_or("-"), "slack socket mode: disconnect asked");
            Step::Disconnect
        }
        (_, Some(id)) => {
            let (state, acks) = (state.clone(), acks.clone());
            tokio::spawn(async move {
                if let Some(ack) = envelope(&state, &id, msg).await {
                    let _ = acks.send(ack.to_string()).await;
                }
            });
            Step::Go
        }
        (kind, None) => {
            tracing::debug!(kind, "slack socket mode: message ignored");
            Step::Go
        }
    }
}

/// Handles one envelope once and returns its ack; `None` (no ack, so Slack
/// retries) only when the claim could not be recorded.
async fn envelope(state: &AppState, id: &str, msg: Incoming) -> Option<Value> {
    let now = chrono::Utc::now();
    let key = format!("slack-envelope:{id}");
    match state.workflow.store().first_use(&key, now + ENVELOPE_MEMORY, now).await {
        Ok(true) => {}
        Ok(false) => {
            tracing::info!(envelope_id = id, retry = msg.retry_attempt, "slack socket mode: envelope already handled");
            return Some(json!({ "envelope_id": id }));
        }
        Err(e) => {
            tracing::error!(error = %e, envelope_id = id, "slack socket mode: could not claim an envelope; Slack will retry");
            return None;
        }
    }
    let answer = dispatch(state, &msg).await;
    let payload = match answer {
        Answer::Json(v) if msg.accepts_response_payload => Some(v),
        Answer::Refused(status, why) => {
            tracing::warn!(envelope_id = id, %status, why, "slack socket mode: envelope refused");
            None
        }
        _ => None,
    };
    Some(match payload {
        Some(p) => json!({ "envelope_id": id, "payload": p }),
        None => json!({ "envelope_id": id }),
    })
}

/// The same handlers as the HTTP endpoints, on the envelope's payload.
async fn dispatch(state: &AppState, msg: &Incoming) -> Answer {
    match msg.kind.as_str() {
        "slash_commands" => match serde_json::from_value::<commands::CommandForm>(msg.payload.clone()) {
            Ok(form) => commands::answer(state, form, &Claim::Held).await,
            Err(_) => Answer::Refused(axum::http::StatusCode::BAD_REQUEST, "malformed slash command"),
        },
        "interactive" => interactions::answer(state, &msg.payload).await,
        "events_api" => events::answer(state, &msg.payload, msg.retry_attempt).await,
        other => {
            tracing::debug!(kind = other, "slack socket mode: envelope type not handled");
            Answer::Done
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn backoff_doubles_with_jitter_up_to_its_cap() {
        let b = Backoff { first: Duration::from_secs(1), max: Duration::from_secs(30) };
        for _ in 0..50 {
            let first = b.delay(0);
            assert!(first >= Duration::from_millis(500) && first <= Duration::from_secs(1), "{first:?}");
            let third = b.delay(2);
            assert!(third >= Duration::from_secs(2) && third <= Duration::from_secs(4), "{third:?}");
            let late = b.delay(40);
            assert!(late >= Duration::from_secs(15) && late <= Duration::from_secs(30), "{late:?}");
        }
    }
}

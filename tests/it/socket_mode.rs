//! Socket Mode against a fake Socket Mode server on loopback: the server opens
//! the connection with `apps.connections.open` (the fake Web API answers this
//! fake's `ws://` URL), handles envelopes with the HTTP handlers, acks each one,
//! and reconnects after a `disconnect` or a dropped socket.

use std::time::Duration;

use accessbot::workflow::query::LogQuery;
use futures::{SinkExt, StreamExt};
use serde_json::{json, Value};
use tokio::sync::mpsc;
use tokio_tungstenite::tungstenite::Message;

use crate::fake_slack::{Fail, FakeSlack, APP_TOKEN};
use crate::helpers::*;

/// How long a test waits for an ack or a connection. Slack allows 3 s for an
/// ack; the test asserts that it came, not how fast (the machine is shared).
const WAIT: Duration = Duration::from_secs(10);

enum Cmd {
    Send(String),
    /// Close the TCP connection without a websocket close (a dropped socket).
    Drop,
}

/// A fake Socket Mode server: every accepted connection is greeted with
/// `hello` and handed to the test as a [`Conn`].
struct FakeSocket {
    url: String,
    conns: mpsc::UnboundedReceiver<Conn>,
}

/// One websocket connection, seen from Slack's side.
struct Conn {
    cmds: mpsc::UnboundedSender<Cmd>,
    acks: mpsc::UnboundedReceiver<Value>,
    /// Acks received while waiting for another one.
    early: Vec<Value>,
}

impl FakeSocket {
    async fn start() -> FakeSocket {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let url = format!("ws://{}/link/?ticket=fake-ticket&app_id=A0TEST", listener.local_addr().unwrap());
        let (tx, conns) = mpsc::unbounded_channel();
        tokio::spawn(async move {
            while let Ok((tcp, _)) = listener.accept().await {
                tokio::spawn(serve_conn(tcp, tx.clone()));
            }
        });
        FakeSocket { url, conns }
    }

    /// The next connection the server opens.
    async fn next(&mut self) -> Conn {
        tokio::time::timeout(WAIT, self.conns.recv()).await.expect("the server connected").unwrap()
    }

    /// No connection arrives within `d`.
    async fn none_within(&mut self, d: Duration) {
        assert!(tokio::time::timeout(d, self.conns.recv()).await.is_err(), "an unexpected connection");
    }
}

async fn serve_conn(tcp: tokio::net::TcpStream, conns: mpsc::UnboundedSender<Conn>) {
    let Ok(ws) = tokio_tungstenite::accept_async(tcp).await else { return };
    let (mut sink, mut stream) = ws.split();
    let (cmds, mut cmd_rx) = mpsc::unbounded_channel();
    let (ack_tx, acks) = mpsc::unbounded_channel();
    let hello = json!({"type": "hello", "num_connections": 1, "connection_info": {"app_id": "A0TEST"}});
    if sink.send(Message::text(hello.to_string())).await.is_err() {
        return;
    }
    let _ = conns.send(Conn { cmds, acks, early: Vec::new() });
    loop {
        tokio::select! {
            cmd = cmd_rx.recv() => match cmd {
                Some(Cmd::Send(text)) => {
                    if sink.send(Message::text(text)).await.is_err() {
                        return;
                    }
                }
                Some(Cmd::Drop) | None => return,
            },
            msg = stream.next() => match msg {
                Some(Ok(Message::Text(t))) => {
                    let _ = ack_tx.send(serde_json::from_str(t.as_str()).unwrap_or(Value::Null));
                }
                Some(Ok(_)) => {}
                _ => return,
            },
        }
    }
}

impl Conn {
    fn send(&self, v: Value) {
        self.cmds.send(Cmd::Send(v.to_string())).unwrap();
    }

    /// Sends an envelope (first attempt) and returns its `envelope_id`.
    fn envelope(&self, kind: &str, payload: Value) -> String {
        let id = uuid::Uuid::new_v4().to_string();
        self.send_attempt(&id, kind, payload, 0);
        id
    }

    fn send_attempt(&self, id: &str, kind: &str, payload: Value, retry_attempt: u32) {
        let reason = if retry_attempt == 0 { "" } else { "timeout" };
        self.send(json!({"envelope_id": id, "type": kind, "payload": payload,
            "accepts_response_payload": kind != "events_api", "retry_attempt": retry_attempt, "retry_reason": reason}));
    }

    /// Waits for the ack of `id`.
    async fn ack(&mut self, id: &str) -> Value {
        if let Some(i) = self.early.iter().position(|a| a["envelope_id"] == id) {
            return self.early.remove(i);
        }
        loop {
            let ack = tokio::time::timeout(WAIT, self.acks.recv()).await.expect("acked").expect("connection open");
            if ack["envelope_id"] == id {
                return ack;
            }
            self.early.push(ack);
        }
    }

    /// Sends an envelope and returns its ack.
    async fn call(&mut self, kind: &str, payload: Value) -> Value {
        let id = self.envelope(kind, payload);
        self.ack(&id).await
    }

    fn disconnect(&self, reason: &str) {
        self.send(json!({"type": "disconnect", "reason": reason, "debug_info": {"host": "fake"}}));
    }

    /// The server closed this connection.
    async fn closed(&mut self) {
        while tokio::time::timeout(WAIT, self.acks.recv()).await.expect("closed in time").is_some() {}
    }

    fn drop_socket(&self) {
        self.cmds.send(Cmd::Drop).unwrap();
    }
}

fn slash(user: &str, text: &str, team: &str) -> Value {
    static TRIGGERS: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(1);
    let n = TRIGGERS.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
    json!({"token": "legacy-unused", "team_id": team, "team_domain": "acme", "channel_id": "C0GENERAL",
        "channel_name": "general", "user_id": user, "user_name": user.to_lowercase(), "command": "/access",
        "text": text, "api_app_id": "A0TEST", "is_enterprise_install": "false",
        "response_url": "https://hooks.slack.com/commands/T0TEAM/1/abc", "trigger_id": format!("{n}.3.trigger")})
}

fn click(slack: &FakeSlack, user: &str, action_id: &str, request_id: &str, step: usize) -> Value {
    json!({"type": "block_actions", "team": {"id": TEAM, "domain": "acme"}, "user": {"id": user, "team_id": TEAM},
        "api_app_id": "A0TEST", "trigger_id": format!("trigger-{user}-{action_id}"),
        "response_url": format!("http://{}/respond/{user}-{action_id}", slack.addr),
        "container": {"type": "message", "channel_id": format!("D{user}"), "is_ephemeral": false},
        "actions": [{"action_id": action_id, "block_id": format!("decide:{request_id}:{step}"), "type": "button",
            "value": format!("{request_id}:{step}"), "action_ts": "1700000000.1"}]})
}

fn home_opened(user: &str, team: &str) -> Value {
    json!({"type": "event_callback", "team_id": team, "api_app_id": "A0TEST", "event_id": "Ev0HOME",
        "event_time": 1_700_000_000, "event": {"type": "app_home_opened", "user": user,
            "channel": format!("D{user}"), "tab": "home", "event_ts": "1700000000.1"}})
}

/// The server with Socket Mode on, and its first connection.
async fn socket_app(b: Backend, team_ids: Option<Vec<String>>) -> (TestApp, FakeSocket, Conn) {
    let slack = FakeSlack::start().await;
    let mut socket = FakeSocket::start().await;
    slack.set_socket_url(&socket.url);
    let setup = Setup { app_token: Some(APP_TOKEN.to_string()), team_ids, ..Setup::new(b) };
    let app = spawn_on(setup, slack).await;
    let conn = socket.next().await;
    (app, socket, conn)
}

fn opens(app: &TestApp) -> Vec<String> {
    app.slack.calls().into_iter().filter(|c| c.method == "apps.connections.open").map(|c| c.answer).collect()
}

fn reply_text(ack: &Value) -> &str {
    assert_eq!(ack["payload"]["response_type"], "ephemeral", "{ack}");
    ack["payload"]["text"].as_str().unwrap()
}

/// The request id quoted first in a reply.
fn request_id(text: &str) -> String {
    let id = text.split('`').nth(1).unwrap_or_default().to_string();
    assert!(id.starts_with("req") && id.len() == 20, "no request id in: {text}");
    id
}

async fn all_events(app: &TestApp) -> Vec<String> {
    let q = LogQuery { filter: None, since: None, until: None, after: None, limit: 1000, descending: false };
    app.store().list_events(&q).await.unwrap().into_iter().map(|(_, e)| e.uuid).collect()
}

async fn slash_command_creates_a_request_and_acks_with_the_reply(b: Backend) {
    let (app, _socket, mut conn) = socket_app(b, Some(vec![TEAM.to_string()])).await;
    let ack = conn.call("slash_commands", slash("U0REQ", "request salesforce Q3 forecasts", TEAM)).await;
    let text = reply_text(&ack).to_string();
    assert!(text.contains("Waiting for step 1 of 3"), "{text}");
    let r = app.request(&request_id(&text)).await;
    assert_eq!(r.requested_by.id, "U0REQ");
    app.drain().await;
    assert_eq!(app.slack.dms_to("U0ALICE").len(), 1, "the approver's DM goes out through the Web API");
    assert_eq!(opens(&app), ["ok"], "one connection, opened once");
    // Several envelopes at once: each is acked with its own reply.
    let ids: Vec<String> =
        ["apps", "mine", "help"].iter().map(|t| conn.envelope("slash_commands", slash("U0REQ", t, TEAM))).collect();
    for id in ids.iter().rev() {
        assert_eq!(conn.ack(id).await["payload"]["response_type"], "ephemeral");
    }
}

async fn interactive_click_and_comment_decide(b: Backend) {
    let (app, _socket, mut conn) = socket_app(b, Some(vec![TEAM.to_string()])).await;
    let ack = conn.call("slash_commands", slash("U0REQ", "request salesforce Q3", TEAM)).await;
    let id = request_id(reply_text(&ack));
    let ack = conn.call("interactive", click(&app.slack, "U0ALICE", "approve", &id, 0)).await;
    assert_eq!(ack, json!({"envelope_id": ack["envelope_id"]}), "a click is acked without a payload");
    let r = app.request(&id).await;
    assert_eq!(r.steps[0].decided_by.as_deref(), Some("U0ALICE"));
    // A view_submission's response_action is the ack's payload.
    let submit = json!({"type": "view_submission", "team": {"id": TEAM}, "user": {"id": "U0BOB", "team_id": TEAM},
        "view": {"id": "V1", "callback_id": "decision_comment", "private_metadata": format!("{id}:1:deny"),
            "state": {"values": {"comment": {"comment": {"type": "plain_text_input", "value": "not needed"}}}}}});
    let ack = conn.call("interactive", submit).await;
    assert_eq!(ack["payload"], json!({"response_action": "clear"}), "{ack}");
    assert_eq!(app.request(&id).await.status.as_str(), "DENIED");
}

async fn app_home_opened_event_publishes_the_home(b: Backend) {
    let (app, _socket, mut conn) = socket_app(b, Some(vec![TEAM.to_string()])).await;
    let ack = conn.call("events_api", home_opened("U0REQ", TEAM)).await;
    assert!(ack.get("payload").is_none(), "{ack}");
    app.drain().await;
    let published = app.slack.ok_calls("views.publish");
    assert_eq!(published.len(), 1);
    assert_eq!(published[0].body["user_id"], "U0REQ");
    assert!(app.store().home_opened("U0REQ").await.unwrap());
}

async fn retried_envelope_is_acked_and_changes_nothing(b: Backend) {
    let (app, _socket, mut conn) = socket_app(b, Some(vec![TEAM.to_string()])).await;
    // Zoom needs no approval: each run would grant again.
    let command = slash("U0REQ", "request zoom", TEAM);
    let id = conn.envelope("slash_commands", command.clone());
    let first = conn.ack(&id).await;
    let req = request_id(reply_text(&first));
    let ack = conn.call("slash_commands", slash("U0REQ", "request salesforce Q3", TEAM)).await;
    let sf = request_id(reply_text(&ack));
    let click_payload = click(&app.slack, "U0ALICE", "approve", &sf, 0);
    let click_id = conn.envelope("interactive", click_payload.clone());
    conn.ack(&click_id).await;
    app.drain().await;
    let (events, calls) = (all_events(&app).await, app.slack.calls().len());
    let (zoom, salesforce) = (app.request(&req).await, app.request(&sf).await);

    conn.send_attempt(&id, "slash_commands", command, 1);
    assert_eq!(conn.ack(&id).await, json!({"envelope_id": id}), "a retry is acked, without a second reply");
    conn.send_attempt(&click_id, "interactive", click_payload, 2);
    conn.ack(&click_id).await;
    app.drain().await;
    assert_eq!(all_events(&app).await, events, "nothing logged, not even a refusal");
    assert_eq!(app.slack.calls().len(), calls, "no Web API call");
    assert_eq!(app.store().requests_for_user("U0REQ", 10).await.unwrap().len(), 2, "no second request");
    assert_eq!(app.request(&req).await.version, zoom.version);
    assert_eq!(app.request(&sf).await.version, salesforce.version);
}

async fn disconnect_opens_a_new_connection(b: Backend) {
    let (app, mut socket, mut conn) = socket_app(b, Some(vec![TEAM.to_string()])).await;
    conn.call("slash_commands", slash("U0REQ", "help", TEAM)).await;
    conn.disconnect("refresh_requested");
    let mut fresh = socket.next().await;
    assert_eq!(opens(&app), ["ok", "ok"], "apps.connections.open again for the new connection");
    let ack = fresh.call("slash_commands", slash("U0REQ", "request github on call", TEAM)).await;
    let id = request_id(reply_text(&ack));
    assert_eq!(app.request(&id).await.app_id, "github");
    socket.none_within(Duration::from_millis(500)).await;
    let mut app = app;
    app.stop().await;
    fresh.closed().await;
    socket.none_within(Duration::from_secs(1)).await;
}

async fn dropped_socket_reconnects_with_backoff(b: Backend) {
    let (app, mut socket, conn) = socket_app(b, Some(vec![TEAM.to_string()])).await;
    conn.drop_socket();
    let second = socket.next().await;
    // Slack unreachable for two attempts: each failure waits longer, none is retried at once.
    app.slack.fail_next("apps.connections.open", vec![Fail::ServerError, Fail::NotOk("internal_error")]);
    second.drop_socket();
    let mut third = socket.next().await;
    assert_eq!(opens(&app), ["ok", "ok", "500", "internal_error", "ok"], "one open per attempt, no busy loop");
    let ack = third.call("slash_commands", slash("U0REQ", "request zoom", TEAM)).await;
    assert!(reply_text(&ack).contains("you now have *Zoom*"), "{ack}");
}

async fn envelope_from_another_team_is_refused(b: Backend) {
    let (app, _socket, mut conn) = socket_app(b, Some(vec![TEAM.to_string()])).await;
    let ack = conn.call("slash_commands", slash("U0REQ", "request zoom", "T0OTHER")).await;
    assert!(ack.get("payload").is_none(), "acked without a reply: {ack}");
    let ack = conn.call("events_api", home_opened("U0REQ", "T0OTHER")).await;
    assert!(ack.get("payload").is_none(), "{ack}");
    let ack = conn
        .call(
            "interactive",
            json!({"type": "block_actions", "team": {"id": "T0OTHER"},
        "user": {"id": "U0REQ", "team_id": "T0OTHER"}, "actions": []}),
        )
        .await;
    assert!(ack.get("payload").is_none(), "{ack}");
    app.drain().await;
    assert!(app.open_request("U0REQ", "zoom").await.is_none());
    assert!(app.store().requests_for_user("U0REQ", 10).await.unwrap().is_empty());
    assert!(app.slack.ok_calls("views.publish").is_empty());
    let blocked = app.events_of("security.request.blocked").await;
    assert_eq!(blocked.len(), 3, "each refusal is logged");
    assert!(blocked.iter().all(|e| e.outcome.reason.as_deref().is_some_and(|r| r.contains("T0OTHER"))));
}

crate::both!(
    slash_command_creates_a_request_and_acks_with_the_reply,
    interactive_click_and_comment_decide,
    app_home_opened_event_publishes_the_home,
    retried_envelope_is_acked_and_changes_nothing,
    disconnect_opens_a_new_connection,
    dropped_socket_reconnects_with_backoff,
    envelope_from_another_team_is_refused,
);

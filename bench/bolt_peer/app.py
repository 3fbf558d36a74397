"""The app a team would write instead of accessbot: Slack Bolt for Python.

`/access request <app> [justification…]`: Bolt verifies the request signature,
then one SQLite transaction inserts the request, its system-log row and one
outbox row (the approver DM to send later), and the command is acked with the
request id. Nothing else (no steps engine, no identity cache, no rate limit).

Served by gunicorn with Bolt's Flask adapter (see `bench ack`, which starts it):

    PEER_DB=/tmp/peer.db SLACK_SIGNING_SECRET=… gunicorn --chdir bench/bolt_peer \
        --worker-class gthread --workers 3 --threads 4 --bind 127.0.0.1:3100 app:flask_app

`process_before_response=True`: the listener runs to completion before the HTTP
answer (like accessbot, which commits before it acks). With Bolt's default
(False) the answer waits for `ack()` in a loop that polls every 10 ms, which
only adds latency here.
"""

import json
import os
import sqlite3
import threading
import time
import uuid

from flask import Flask, request
from slack_bolt import App
from slack_bolt.authorization import AuthorizeResult
from slack_bolt.adapter.flask import SlackRequestHandler

DB = os.environ["PEER_DB"]
APPS = {a: a.capitalize() for a in os.environ.get("PEER_APPS", "github,jira,figma,zoom").split(",")}
GROUP = "approvers"

SCHEMA = """
CREATE TABLE IF NOT EXISTS requests (
    id TEXT PRIMARY KEY, app_id TEXT NOT NULL, requested_by TEXT NOT NULL,
    requested_for TEXT NOT NULL, status TEXT NOT NULL, created INTEGER NOT NULL,
    last_updated INTEGER NOT NULL, version INTEGER NOT NULL, body TEXT NOT NULL
);
CREATE UNIQUE INDEX IF NOT EXISTS requests_one_open ON requests (requested_for, app_id)
    WHERE status IN ('SUBMITTED', 'PENDING');
CREATE INDEX IF NOT EXISTS requests_created ON requests (created, id);
CREATE TABLE IF NOT EXISTS system_log (
    seq INTEGER PRIMARY KEY AUTOINCREMENT, uuid TEXT NOT NULL UNIQUE, published INTEGER NOT NULL,
    event_type TEXT NOT NULL, request_id TEXT, actor_id TEXT NOT NULL, body TEXT NOT NULL
);
CREATE INDEX IF NOT EXISTS system_log_request ON system_log (request_id, seq);
CREATE TABLE IF NOT EXISTS outbox (
    id INTEGER PRIMARY KEY AUTOINCREMENT, ordering_key TEXT NOT NULL, kind TEXT NOT NULL,
    payload TEXT NOT NULL, status TEXT NOT NULL DEFAULT 'pending', attempts INTEGER NOT NULL DEFAULT 0,
    next_attempt_at INTEGER NOT NULL, created INTEGER NOT NULL
);
CREATE INDEX IF NOT EXISTS outbox_due ON outbox (status, next_attempt_at, id);
"""

_local = threading.local()


def connect():
    conn = sqlite3.connect(DB, timeout=10, isolation_level=None, check_same_thread=False)
    conn.execute("PRAGMA journal_mode=WAL")
    conn.execute("PRAGMA synchronous=NORMAL")
    conn.execute("PRAGMA busy_timeout=10000")
    return conn


def db():
    conn = getattr(_local, "conn", None)
    if conn is None:
        conn = _local.conn = connect()
    return conn


_init = connect()
_init.executescript(SCHEMA)
_init.close()

def authorize(enterprise_id, team_id, user_id, logger):
    # What Bolt caches from its one `auth.test` call at start with a single bot token;
    # answered locally so the peer never calls Slack.
    return AuthorizeResult(
        enterprise_id=enterprise_id,
        team_id=team_id,
        bot_token=os.environ.get("SLACK_BOT_TOKEN", "xoxb-peer"),
        bot_id="B0PEER",
        bot_user_id="U0PEERBOT",
    )


bolt = App(
    signing_secret=os.environ["SLACK_SIGNING_SECRET"],
    authorize=authorize,
    process_before_response=True,
)


@bolt.command("/access")
def access(ack, command):
    words = (command.get("text") or "").strip().split(None, 2)
    if len(words) < 2 or words[0].lower() != "request":
        ack("Usage: `/access request <app> [justification…]`")
        return
    app_id = words[1].lower()
    justification = words[2] if len(words) > 2 else ""
    if app_id not in APPS:
        ack(f"There is no app `{app_id}`.")
        return
    user = command["user_id"]
    now = int(time.time() * 1000)
    rid = "req" + uuid.uuid4().hex[:17]
    body = {
        "id": rid, "app_id": app_id, "app_name": APPS[app_id],
        "requested_by": {"id": user}, "requested_for": {"id": user},
        "justification": justification, "status": "PENDING", "current_step": 0,
        "steps": [{"kind": {"type": "group", "group_id": GROUP}, "state": "pending", "activated": now}],
        "created": now, "last_updated": now,
    }
    event = {
        "uuid": str(uuid.uuid4()), "published": now, "eventType": "app.access_request.request",
        "actor": {"id": user, "type": "User"}, "target": [{"id": rid, "type": "AccessRequest"}],
        "outcome": {"result": "SUCCESS"}, "debugContext": {"debugData": {"justification": justification}},
    }
    notice = {"notice": "ask", "request": rid, "step": 0, "group": GROUP}
    conn = db()
    conn.execute("BEGIN IMMEDIATE")
    try:
        open_one = conn.execute(
            "SELECT id FROM requests WHERE requested_for = ? AND app_id = ? AND status = 'PENDING'",
            (user, app_id),
        ).fetchone()
        if open_one:
            conn.execute("ROLLBACK")
            ack(f"You already have an open request for *{APPS[app_id]}*: `{open_one[0]}`")
            return
        conn.execute(
            "INSERT INTO requests (id, app_id, requested_by, requested_for, status, created, last_updated, version, body)"
            " VALUES (?, ?, ?, ?, 'PENDING', ?, ?, 1, ?)",
            (rid, app_id, user, user, now, now, json.dumps(body)),
        )
        conn.execute(
            "INSERT INTO system_log (uuid, published, event_type, request_id, actor_id, body) VALUES (?, ?, ?, ?, ?, ?)",
            (event["uuid"], now, event["eventType"], rid, user, json.dumps(event)),
        )
        conn.execute(
            "INSERT INTO outbox (ordering_key, kind, payload, next_attempt_at, created) VALUES (?, 'notice', ?, ?, ?)",
            (f"{rid}:{GROUP}", json.dumps(notice), now, now),
        )
        conn.execute("COMMIT")
    except BaseException:
        conn.execute("ROLLBACK")
        raise
    ack(f":inbox_tray: Request `{rid}` for *{APPS[app_id]}* submitted. Waiting for step 1 of 1: {GROUP}.")


flask_app = Flask(__name__)
handler = SlackRequestHandler(bolt)


@flask_app.route("/slack/commands", methods=["POST"])
def slack_commands():
    return handler.handle(request)

"""What both Bolt peers do for `/access request <app> [justification…]`: one
SQLite transaction inserts the request, its system-log row and one outbox row
(the approver DM to send later), and the reply names the request id. Nothing
else (no steps engine, no identity cache, no rate limit, no delivery).

`app.py` serves it with Bolt's sync `App` under gunicorn; `app_async.py` with
Bolt's `AsyncApp` on aiohttp, one process and one connection.
"""

import json
import os
import sqlite3
import time
import uuid

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


def connect():
    conn = sqlite3.connect(DB, timeout=10, isolation_level=None, check_same_thread=False)
    conn.execute("PRAGMA journal_mode=WAL")
    conn.execute("PRAGMA synchronous=NORMAL")
    conn.execute("PRAGMA busy_timeout=10000")
    return conn


def authorization(enterprise_id, team_id):
    """What Bolt caches from its one `auth.test` call at start with a single
    bot token; answered locally so the peers never call Slack."""
    from slack_bolt.authorization import AuthorizeResult

    return AuthorizeResult(
        enterprise_id=enterprise_id,
        team_id=team_id,
        bot_token=os.environ.get("SLACK_BOT_TOKEN", "xoxb-peer"),
        bot_id="B0PEER",
        bot_user_id="U0PEERBOT",
    )


def create_schema():
    conn = connect()
    conn.executescript(SCHEMA)
    conn.close()


def record(conn, command):
    """Records the command's request; returns the reply text."""
    words = (command.get("text") or "").strip().split(None, 2)
    if len(words) < 2 or words[0].lower() != "request":
        return "Usage: `/access request <app> [justification…]`"
    app_id = words[1].lower()
    justification = words[2] if len(words) > 2 else ""
    if app_id not in APPS:
        return f"There is no app `{app_id}`."
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
    conn.execute("BEGIN IMMEDIATE")
    try:
        # The same IN list as the partial index's WHERE, or SQLite cannot use the index.
        open_one = conn.execute(
            "SELECT id FROM requests WHERE requested_for = ? AND app_id = ? AND status IN ('SUBMITTED', 'PENDING')",
            (user, app_id),
        ).fetchone()
        if open_one:
            conn.execute("ROLLBACK")
            return f"You already have an open request for *{APPS[app_id]}*: `{open_one[0]}`"
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
    return f":inbox_tray: Request `{rid}` for *{APPS[app_id]}* submitted. Waiting for step 1 of 1: {GROUP}."

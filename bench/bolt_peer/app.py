"""The app a team would write instead of accessbot, the threaded way: Slack
Bolt for Python's sync `App` with its Flask adapter under gunicorn (the
second peer row of `bench ack`; `app_async.py` is the peer of record).

    PEER_DB=/tmp/peer.db SLACK_SIGNING_SECRET=… gunicorn --chdir bench/bolt_peer \
        --worker-class gthread --workers 3 --threads 4 --bind 127.0.0.1:3100 app:flask_app

`process_before_response=True`: the listener runs to completion before the HTTP
answer (like accessbot, which commits before it acks). With Bolt's default
(False) the answer waits for `ack()` in a loop that polls every 10 ms, which
only adds latency here. Each thread has its own SQLite connection.
"""

import os
import threading

from flask import Flask, request
from slack_bolt import App
from slack_bolt.adapter.flask import SlackRequestHandler

import peer

_local = threading.local()


def db():
    conn = getattr(_local, "conn", None)
    if conn is None:
        conn = _local.conn = peer.connect()
    return conn


peer.create_schema()


def authorize(enterprise_id, team_id, user_id, logger):
    return peer.authorization(enterprise_id, team_id)


bolt = App(
    signing_secret=os.environ["SLACK_SIGNING_SECRET"],
    authorize=authorize,
    process_before_response=True,
)


@bolt.command("/access")
def access(ack, command):
    ack(peer.record(db(), command))


flask_app = Flask(__name__)
handler = SlackRequestHandler(bolt)


@flask_app.route("/slack/commands", methods=["POST"])
def slack_commands():
    return handler.handle(request)

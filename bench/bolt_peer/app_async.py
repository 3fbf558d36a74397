"""The app a team would write instead of accessbot, the strongest way Bolt for
Python offers (the peer of record of `bench ack`): `AsyncApp` on aiohttp
(`app.start()`), one process, one SQLite connection in WAL with
`synchronous=NORMAL`, the transaction of `peer.record` before the ack.

    PEER_DB=/tmp/peer.db PEER_PORT=3100 SLACK_SIGNING_SECRET=… python bench/bolt_peer/app_async.py

`process_before_response=True`, as in `app.py`. The one connection's calls
are synchronous: each takes microseconds, less than a hop to a thread pool.
"""

import os

from slack_bolt.async_app import AsyncApp

import peer

peer.create_schema()
conn = peer.connect()


async def authorize(enterprise_id, team_id, user_id, logger):
    return peer.authorization(enterprise_id, team_id)


bolt = AsyncApp(
    signing_secret=os.environ["SLACK_SIGNING_SECRET"],
    authorize=authorize,
    process_before_response=True,
)


@bolt.command("/access")
async def access(ack, command):
    await ack(peer.record(conn, command))


if __name__ == "__main__":
    bolt.start(port=int(os.environ["PEER_PORT"]), path="/slack/commands", host="127.0.0.1")

"""Pages through accessbot's /api/v1/logs with Okta's Python SDK (okta==3.4.6).

Usage: python3 logs.py ORG_URL TOKEN [QUERY_JSON]
Prints `count=<n>` (all events seen over every page) and `pages=<n>`.
"""
import asyncio
import json
import os
import sys

from okta.client import Client
from okta.pagination import PaginationHelper


async def main(org_url, token, query):
    # accessbot in tests listens on plain http://127.0.0.1; the SDK reads its
    # `testing.testingDisableHttpsCheck` only from the environment or okta.yaml.
    os.environ.setdefault("OKTA_TESTING_TESTINGDISABLEHTTPSCHECK", "true")
    config = {"orgUrl": org_url, "token": token}
    seen, pages, after = [], 0, None
    async with Client(config) as client:
        while True:
            page, resp, err = await client.list_log_events(**query, after=after)
            if err is not None:
                print(f"error={err}", file=sys.stderr)
                return 1
            seen.extend(page or [])
            pages += 1
            # okta 3.x: the `after` cursor of the Link header's rel="next".
            after = PaginationHelper.extract_next_cursor(resp.headers)
            if after is None:
                break
    uuids = [e.uuid for e in seen]
    print(f"count={len(seen)}")
    print(f"distinct={len(set(uuids))}")
    print(f"pages={pages}")
    return 0


if __name__ == "__main__":
    query = json.loads(sys.argv[3]) if len(sys.argv) > 3 else {"limit": 5}
    sys.exit(asyncio.run(main(sys.argv[1], sys.argv[2], query)))

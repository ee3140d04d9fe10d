"""`GET /api/usage/reconcile` end to end: chats through the gateway, then cng's usage
next to the (fake) Cloudflare GraphQL analytics, which counts the `/ai/run/` requests
the fake upstream served. The gateway runs with `CNG_CF_ANALYTICS_TOKEN` (the server's
env, the Worker's var). Run through scripts/e2e (the server and the Worker).
"""
import json
import os
import urllib.error
import urllib.request

import openai

ROOT = os.environ["CNG_BASE_URL"]
ADMIN = os.environ["CNG_ADMIN_KEY"]
MODEL = "@cf/meta/llama-3.1-8b-instruct"


def admin_get(path):
    req = urllib.request.Request(ROOT + path, headers={"authorization": f"Bearer {ADMIN}"})
    try:
        with urllib.request.urlopen(req) as r:
            return r.status, json.loads(r.read())
    except urllib.error.HTTPError as e:
        return e.code, json.loads(e.read())


def test_reconcile_puts_cng_next_to_cloudflare():
    client = openai.OpenAI(base_url=ROOT + "/v1", api_key=ADMIN, max_retries=0)
    for _ in range(2):
        client.chat.completions.create(
            model=MODEL, messages=[{"role": "user", "content": "reconcile me"}]
        )
    status, r = admin_get("/api/usage/reconcile?model=" + urllib.request.quote(MODEL, safe=""))
    assert status == 200, r
    assert r["object"] == "usage.reconciliation"
    assert r["source"].startswith("cloudflare-graphql-analytics")
    [row] = [m for m in r["models"] if m["model"] == MODEL]
    # Both sides saw the two requests (and maybe earlier tests' ones: cng keeps its
    # usage, while other tests reset the fake, and with it its analytics).
    assert row["cng"]["requests"] >= 2
    assert row["cloudflare"]["requests"] >= 2
    assert row["difference"]["requests"] == row["cloudflare"]["requests"] - row["cng"]["requests"]
    assert row["cloudflare"]["neurons"] > 0
    assert r["caveats"]


def test_reconcile_refuses_a_key_filter():
    status, r = admin_get("/api/usage/reconcile?key=admin")
    assert status == 400, r

"""Third-party providers from the config, driven by the official SDKs: an admin adds
an OpenAI-compatible provider (the fake upstream, on loopback: the gateway runs with
`--allow-loopback-http` / `CNG_ALLOW_LOOPBACK_HTTP=1`), stores its key through
`PUT /api/providers/{name}/key` (sealed with `CNG_MASTER_KEY`), and defines a fallback
chain whose first target refuses connections. The `openai` SDK then calls
`openai/gpt-4o-mini` and the chain; the `anthropic` SDK calls the chain on
`/v1/messages`. `x-cng-target` says who served. The config is restored afterwards.

Run through scripts/e2e (the server and the Worker).
"""
import json
import os
import urllib.error
import urllib.request

import anthropic
import openai
import pytest

ROOT = os.environ["CNG_BASE_URL"]
ADMIN = os.environ["CNG_ADMIN_KEY"]
FAKE = os.environ["CNG_FAKE_URL"]
PROVIDER_KEY = "sk-e2e-provider-key-0123456789"


def admin(method, path, body=None):
    data = None if body is None else json.dumps(body).encode()
    req = urllib.request.Request(
        ROOT + path,
        data=data,
        method=method,
        headers={"authorization": f"Bearer {ADMIN}", "content-type": "application/json"},
    )
    try:
        with urllib.request.urlopen(req) as r:
            return r.status, json.loads(r.read() or b"null")
    except urllib.error.HTTPError as e:
        return e.code, json.loads(e.read() or b"null")


def fake_requests():
    with urllib.request.urlopen(FAKE + "/__requests") as r:
        return json.loads(r.read())


def clear_fake():
    urllib.request.urlopen(urllib.request.Request(FAKE + "/__requests", method="DELETE"))


@pytest.fixture(scope="module")
def providers():
    status, before = admin("GET", "/api/config")
    assert status == 200, before
    doc = dict(before)
    doc["providers"] = {
        "openai": {"kind": "openai-compatible", "base_url": FAKE + "/openai/v1"},
        # Nothing listens on port 1: the first target of the chain is down.
        "down": {"kind": "openai-compatible", "base_url": "http://127.0.0.1:1/v1"},
    }
    doc["targets"] = {"e2e-chain": ["down/gpt-4o-mini", "openai/gpt-4o-mini"]}
    status, saved = admin("PUT", "/api/config", doc)
    assert status == 200, saved
    status, shown = admin("PUT", "/api/providers/openai/key", {"key": PROVIDER_KEY})
    assert status == 200, shown
    assert shown["key_set"] is True and PROVIDER_KEY not in json.dumps(shown)
    yield
    _, current = admin("GET", "/api/config")
    before["version"] = current["version"]
    status, restored = admin("PUT", "/api/config", before)
    assert status == 200, restored


def test_the_key_is_sealed_and_never_shown(providers):
    _, doc = admin("GET", "/api/config")
    sealed = doc["providers"]["openai"]["key"]
    assert sealed.startswith("cng1:") and PROVIDER_KEY not in json.dumps(doc)
    _, listed = admin("GET", "/api/providers")
    assert {p["name"]: p["key_set"] for p in listed["data"]} == {"down": False, "openai": True}


def test_openai_sdk_reaches_the_provider_with_its_key(providers):
    clear_fake()
    client = openai.OpenAI(base_url=ROOT + "/v1", api_key=ADMIN, max_retries=0)
    raw = client.chat.completions.with_raw_response.create(
        model="openai/gpt-4o-mini", messages=[{"role": "user", "content": "hello"}]
    )
    assert raw.headers["x-cng-target"] == "openai/gpt-4o-mini"
    r = raw.parse()
    assert r.model == "openai/gpt-4o-mini" and r.choices[0].message.content
    sent = [x for x in fake_requests() if x["path"] == "/openai/v1/chat/completions"]
    assert len(sent) == 1
    assert sent[0]["headers"]["authorization"] == f"Bearer {PROVIDER_KEY}"
    assert sent[0]["body"]["model"] == "gpt-4o-mini"


def test_a_chain_falls_back_past_a_target_that_is_down(providers):
    client = openai.OpenAI(base_url=ROOT + "/v1", api_key=ADMIN, max_retries=0)
    raw = client.chat.completions.with_raw_response.create(
        model="e2e-chain", messages=[{"role": "user", "content": "hello"}]
    )
    assert raw.headers["x-cng-target"] == "openai/gpt-4o-mini"
    assert raw.parse().model == "e2e-chain"
    # Streamed, through the same chain.
    with client.chat.completions.with_streaming_response.create(
        model="e2e-chain", messages=[{"role": "user", "content": "hello"}], stream=True
    ) as resp:
        assert resp.headers["x-cng-target"] == "openai/gpt-4o-mini"
        text = "".join(
            c.choices[0].delta.content or "" for c in resp.parse() if c.choices
        )
    assert text


def test_anthropic_sdk_on_a_chain(providers):
    client = anthropic.Anthropic(base_url=ROOT, api_key=ADMIN, max_retries=0)
    raw = client.messages.with_raw_response.create(
        model="e2e-chain", max_tokens=64, messages=[{"role": "user", "content": "hello"}]
    )
    assert raw.headers["x-cng-target"] == "openai/gpt-4o-mini"
    m = raw.parse()
    assert m.type == "message" and m.content[0].text


def test_the_model_list_shows_the_chain(providers):
    client = openai.OpenAI(base_url=ROOT + "/v1", api_key=ADMIN, max_retries=0)
    ids = {m.id for m in client.models.list()}
    assert "e2e-chain" in ids

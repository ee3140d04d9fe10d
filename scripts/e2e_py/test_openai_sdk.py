"""The official `openai` Python SDK against the `cng` binary and the fake upstream.

Where the SDK validates a response object, that is the judge. Run through scripts/e2e.
"""
import json
import os
import pathlib
import subprocess

import openai
import pytest

BASE = os.environ["CNG_BASE_URL"] + "/v1"
ADMIN = os.environ["CNG_ADMIN_KEY"]
FIXTURES = pathlib.Path(os.environ["CNG_FIXTURES"]) / "chat"


def client(key=ADMIN, **kw):
    return openai.OpenAI(base_url=BASE, api_key=key, max_retries=0, **kw)


def fixture(case):
    d = FIXTURES / case
    req = json.loads((d / "request.json").read_text())
    up = d / "upstream.json"
    return req, (json.loads(up.read_text()) if up.exists() else None)


def test_chat():
    req, up = fixture("legacy-basic")
    r = client().chat.completions.create(**req)
    assert r.object == "chat.completion"
    assert r.model == req["model"]
    assert r.choices[0].message.content == up["response"]
    assert r.choices[0].finish_reason == "stop"
    assert r.usage.total_tokens == up["usage"]["total_tokens"]


def test_alias_echoes_the_requested_name():
    req, _ = fixture("alias-gpt-4o")
    r = client().chat.completions.create(**req)
    assert r.model == "gpt-4o"


def test_streaming():
    req, _ = fixture("legacy-stream-basic")
    sse = (FIXTURES / "legacy-stream-basic" / "upstream.sse").read_text()
    expected = "".join(
        json.loads(line[6:]).get("response", "")
        for line in sse.split("\n")
        if line.startswith("data: {")
    )
    req.pop("stream", None)
    chunks = list(client().chat.completions.create(**req, stream=True, stream_options={"include_usage": True}))
    text = "".join(c.choices[0].delta.content or "" for c in chunks if c.choices)
    assert text == expected
    assert len(chunks) > 3
    assert chunks[-1].usage is not None and chunks[-1].usage.total_tokens > 0
    assert any(c.choices and c.choices[0].finish_reason for c in chunks)


def test_tools():
    req, up = fixture("legacy-tools-single")
    r = client().chat.completions.create(**req)
    call = r.choices[0].message.tool_calls[0]
    assert call.id and call.type == "function"
    assert call.function.name == up["tool_calls"][0]["name"]
    assert json.loads(call.function.arguments) == up["tool_calls"][0]["arguments"]
    assert r.choices[0].finish_reason == "tool_calls"


def test_streamed_tool_call_deltas():
    req, _ = fixture("openai-stream-tools")
    req.pop("stream", None)
    stream = client().chat.completions.create(**req, stream=True)
    calls = {}
    for c in stream:
        for d in (c.choices[0].delta.tool_calls or []) if c.choices else []:
            entry = calls.setdefault(d.index, {"id": d.id, "name": d.function.name, "args": ""})
            entry["args"] += d.function.arguments or ""
    assert calls and all(v["id"] and v["name"] for v in calls.values())
    for v in calls.values():
        json.loads(v["args"])


def test_models():
    ids = [m.id for m in client().models.list()]
    assert "gpt-4o" in ids and "@cf/meta/llama-3.1-8b-instruct" in ids
    assert client().models.retrieve("@cf/meta/llama-3.1-8b-instruct").id == "@cf/meta/llama-3.1-8b-instruct"


def test_authentication_error():
    with pytest.raises(openai.AuthenticationError) as e:
        client("cng-wrong").chat.completions.create(model="gpt-4o", messages=[{"role": "user", "content": "x"}])
    assert e.value.code == "invalid_api_key"


def test_not_found_error():
    with pytest.raises(openai.NotFoundError) as e:
        client().chat.completions.create(model="gpt-17-ultra", messages=[{"role": "user", "content": "x"}])
    assert e.value.code == "model_not_found"


def test_rate_limit_error():
    with pytest.raises(openai.RateLimitError):
        client().chat.completions.create(model="gpt-4o", messages=[{"role": "user", "content": "!status 429 3040"}])


def test_bad_request_names_the_param():
    with pytest.raises(openai.BadRequestError) as e:
        client().chat.completions.create(model="gpt-4o", messages=[], temperature=0.5)
    assert e.value.param == "messages"


def create_key(name, models):
    """A new key: `cng keys create` against the server's data dir, or — on the Worker
    (CNG_E2E_TARGET=worker), which has no CLI — the admin API."""
    if os.environ.get("CNG_E2E_TARGET", "server").startswith("worker"):
        import urllib.request
        req = urllib.request.Request(
            os.environ["CNG_BASE_URL"] + "/api/keys",
            data=json.dumps({"name": name, "models": models}).encode(),
            headers={"authorization": f"Bearer {ADMIN}", "content-type": "application/json"},
        )
        with urllib.request.urlopen(req) as r:
            return json.load(r)["key"]
    return subprocess.run(
        [os.environ["CNG_BIN"], "keys", "create", "--name", name, "--models", ",".join(models),
         "--data", os.environ["CNG_DATA"]],
        check=True, capture_output=True, text=True,
    ).stdout.strip().splitlines()[-1]


def test_permission_error_for_a_narrow_key():
    out = create_key("narrow", ["gpt-4o-mini"])
    assert out.startswith("cng-")
    with pytest.raises(openai.PermissionDeniedError):
        client(out).chat.completions.create(model="gpt-4o", messages=[{"role": "user", "content": "x"}])
    r = client(out).chat.completions.create(model="gpt-4o-mini", messages=[{"role": "user", "content": "x"}])
    assert r.choices[0].message.content == "ok"


def test_legacy_completions():
    r = client().completions.create(model="gpt-3.5-turbo", prompt="Say ok", max_tokens=5)
    assert r.object == "text_completion" and r.choices[0].text == "ok"

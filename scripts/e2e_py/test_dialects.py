"""The two other client dialects against the `cng` binary and the fake upstream: the
official `openai` SDK on the Responses API (create, stream, function calls) and the
official `anthropic` SDK on the Messages API (create, stream, tool use, count_tokens,
errors). Requests are the fixtures' own (fixtures/responses, fixtures/messages), so
the fake upstream answers with the fixtures' upstream bodies.

Where an SDK validates or accumulates a response (`responses.stream`,
`messages.stream`), that is the judge. Run through scripts/e2e.
"""
import json
import os
import pathlib
import urllib.request

import anthropic
import openai
import pytest

ROOT = os.environ["CNG_BASE_URL"]
ADMIN = os.environ["CNG_ADMIN_KEY"]
FAKE = os.environ["CNG_FAKE_URL"]
FIXTURES = pathlib.Path(os.environ["CNG_FIXTURES"])


def oai(key=ADMIN):
    return openai.OpenAI(base_url=ROOT + "/v1", api_key=key, max_retries=0)


def claude(key=ADMIN):
    # The SDK sends the key as `x-api-key`, with `anthropic-version`.
    return anthropic.Anthropic(base_url=ROOT, api_key=key, max_retries=0)


def case(path):
    d = FIXTURES / path
    req = json.loads((d / "request.json").read_text())
    up = d / "upstream.json"
    sse = d / "upstream.sse"
    return (
        req,
        json.loads(up.read_text()) if up.exists() else None,
        sse.read_text() if sse.exists() else None,
    )


def last_upstream_body():
    """The body of the last request the fake upstream received."""
    with urllib.request.urlopen(FAKE + "/__requests") as r:
        return json.loads(r.read())[-1]["body"]


def sse_text(raw, key="response"):
    """The text a fixture's upstream stream spells."""
    out = ""
    for line in raw.split("\n"):
        if not line.startswith("data: {"):
            continue
        ev = json.loads(line[6:])
        if key == "response":
            out += ev.get("response") or ""
        else:
            for c in ev.get("choices") or []:
                out += (c.get("delta") or {}).get("content") or ""
    return out


# --- Responses API (openai SDK) -------------------------------------------------------


def test_responses_create():
    req, up, _ = case("responses/legacy-string-input")
    r = oai().responses.create(**req)
    assert r.object == "response" and r.status == "completed"
    assert r.id.startswith("resp_")
    assert r.model == req["model"]
    assert r.output_text == up["response"]
    assert r.output[0].type == "message" and r.output[0].role == "assistant"
    assert r.usage.input_tokens == up["usage"]["prompt_tokens"]
    assert r.usage.output_tokens == up["usage"]["completion_tokens"]
    assert r.usage.total_tokens == up["usage"]["total_tokens"]
    assert r.instructions == req["instructions"]


def test_responses_stream_with_the_sdk_accumulator():
    req, _, sse = case("responses/legacy-stream-text")
    req.pop("stream")
    seen = []
    with oai().responses.stream(**req) as stream:
        for event in stream:
            seen.append(event)
        final = stream.get_final_response()
    types = [e.type for e in seen]
    assert types[0] == "response.created" and types[1] == "response.in_progress"
    assert types[-1] == "response.completed"
    assert [e.sequence_number for e in seen] == list(range(len(seen)))
    deltas = "".join(e.delta for e in seen if e.type == "response.output_text.delta")
    assert deltas == sse_text(sse)
    assert final.output_text == sse_text(sse)
    assert final.usage.total_tokens > 0


def test_responses_raw_stream_events():
    req, _, _ = case("responses/stream-max-output-tokens")
    events = list(oai().responses.create(**req))
    assert events[-1].type == "response.incomplete"
    assert events[-1].response.incomplete_details.reason == "max_output_tokens"


def test_responses_streamed_function_call():
    req, _, _ = case("responses/openai-stream-tool-call")
    req.pop("stream")
    with oai().responses.stream(**req) as stream:
        arg_deltas = [e.delta for e in stream if e.type == "response.function_call_arguments.delta"]
        final = stream.get_final_response()
    calls = [o for o in final.output if o.type == "function_call"]
    assert len(calls) == 1 and calls[0].name == "convert_currency"
    assert "".join(arg_deltas) == calls[0].arguments
    assert json.loads(calls[0].arguments) == {"amount": 250, "from": "CHF", "to": "NOK"}
    assert [o.type for o in final.output] == ["reasoning", "function_call"]


def test_responses_function_call_history_reaches_the_model_in_its_form():
    # Item input is not matched by the fake upstream (it keys requests by a text), so
    # this checks what the model was sent: calls inside the assistant message, results
    # as `tool` messages, the developer message as `system`.
    req, _, _ = case("responses/openai-items-history")
    r = oai().responses.create(**req)
    assert r.status == "completed" and r.output_text
    msgs = last_upstream_body()["messages"]
    assert [m["role"] for m in msgs] == ["system", "user", "assistant", "tool", "user"]
    assert msgs[2]["tool_calls"][0]["id"] == "call_tram_1"
    assert msgs[2]["tool_calls"][0]["function"]["name"] == "tram_status"
    assert msgs[3]["tool_call_id"] == "call_tram_1"


def test_responses_gpt_oss_native():
    req, up, _ = case("responses/gpt-oss-native")
    r = oai().responses.create(**req)
    assert r.output_text == up["output"][1]["content"][0]["text"]
    assert r.usage.total_tokens == up["usage"]["total_tokens"]


def test_responses_refuses_stateful_features():
    with pytest.raises(openai.BadRequestError) as e:
        oai().responses.create(model="gpt-4o", input="And then?", previous_response_id="resp_x")
    assert e.value.param == "previous_response_id"
    assert e.value.code == "unsupported_parameter"


# --- Anthropic Messages API (anthropic SDK) --------------------------------------------


def test_messages_create():
    req, up, _ = case("messages/legacy-basic")
    req.pop("temperature", None)  # not a parameter of this SDK version's create()
    m = claude().messages.create(**req)
    assert m.type == "message" and m.role == "assistant"
    assert m.model == req["model"]
    assert m.content[0].type == "text" and m.content[0].text == up["response"]
    assert m.stop_reason == "end_turn" and m.stop_sequence is None
    assert m.usage.input_tokens == up["usage"]["prompt_tokens"]
    assert m.usage.output_tokens == up["usage"]["completion_tokens"]


def test_messages_stream_with_the_sdk_accumulator():
    req, _, sse = case("messages/legacy-stream")
    req.pop("stream")
    with claude().messages.stream(**req) as stream:
        text = "".join(stream.text_stream)
        final = stream.get_final_message()
    assert text == sse_text(sse)
    assert final.content[0].text == text
    assert final.stop_reason == "end_turn"
    assert final.usage.output_tokens > 0 and final.usage.input_tokens > 0


def test_messages_tool_use():
    req, up, _ = case("messages/openai-tool-use")
    m = claude().messages.create(**req)
    assert m.stop_reason == "tool_use"
    block = [b for b in m.content if b.type == "tool_use"][0]
    call = up["choices"][0]["message"]["tool_calls"][0]
    assert block.id == call["id"] and block.name == call["function"]["name"]
    assert block.input == json.loads(call["function"]["arguments"])


def test_messages_streamed_tool_use():
    req, _, _ = case("messages/openai-stream-tool-use")
    req.pop("stream")
    with claude().messages.stream(**req) as stream:
        final = stream.get_final_message()
    assert final.stop_reason == "tool_use"
    assert [b.type for b in final.content] == ["text", "tool_use"]
    assert final.content[1].input == {"city": "Reykjavík", "days": 2}


def test_messages_tool_result_conversation():
    req, up, _ = case("messages/tool-result-history")
    m = claude().messages.create(**req)
    assert m.content[0].text == up["choices"][0]["message"]["content"]


def test_messages_stop_sequence():
    req, _, _ = case("messages/stop-sequence")
    m = claude().messages.create(**req)
    assert m.stop_reason == "stop_sequence" and m.stop_sequence == "END"


def test_count_tokens_is_an_estimate():
    req, _, _ = case("messages/count-tokens")
    n = claude().messages.count_tokens(**req)
    assert n.input_tokens > 1600  # one image counts 1,600


def test_messages_errors_are_anthropic_errors():
    with pytest.raises(anthropic.AuthenticationError) as e:
        claude("cng-wrong").messages.create(
            model="@cf/meta/llama-3.1-8b-instruct", max_tokens=10,
            messages=[{"role": "user", "content": "x"}])
    assert e.value.body["error"]["type"] == "authentication_error"
    with pytest.raises(anthropic.NotFoundError):
        claude().messages.create(
            model="claude-unknown-9", max_tokens=10, messages=[{"role": "user", "content": "x"}])
    with pytest.raises(anthropic.BadRequestError) as e:
        claude().messages.create(
            model="@cf/zai-org/glm-4.7-flash", max_tokens=10,
            tools=[{"type": "web_search_20250305", "name": "web_search"}],
            messages=[{"role": "user", "content": "x"}])
    assert "tools[0].type" in e.value.message
    with pytest.raises(anthropic.RateLimitError):
        claude().messages.create(
            model="@cf/meta/llama-3.1-8b-instruct", max_tokens=10,
            messages=[{"role": "user", "content": "!status 429 3040"}])

"""The official `openai` Python SDK against the `cng` binary and the fake upstream, for
the media endpoints: embeddings (the SDK's default base64 and float), images, speech,
transcription and translation of a WAV made here, moderation.

Where the SDK validates a response object, that is the judge. Run through scripts/e2e.
"""
import base64
import io
import json
import math
import os
import pathlib
import struct
import urllib.request
import wave

import openai

BASE = os.environ["CNG_BASE_URL"] + "/v1"
ADMIN = os.environ["CNG_ADMIN_KEY"]
FAKE = os.environ["CNG_FAKE_URL"]
FIXTURES = pathlib.Path(os.environ["CNG_FIXTURES"])


def client():
    return openai.OpenAI(base_url=BASE, api_key=ADMIN, max_retries=0)


def case(path):
    d = FIXTURES / path
    req = json.loads((d / "request.json").read_text())
    up = d / "upstream.json"
    return d, req, (json.loads(up.read_text()) if up.exists() else None)


def f32(x):
    return struct.unpack("<f", struct.pack("<f", x))[0]


def fake_requests():
    with urllib.request.urlopen(FAKE + "/__requests") as r:
        return json.loads(r.read())


def make_wav(seconds=0.3, rate=16000):
    buf = io.BytesIO()
    with wave.open(buf, "wb") as w:
        w.setnchannels(1)
        w.setsampwidth(2)
        w.setframerate(rate)
        w.writeframes(b"".join(
            struct.pack("<h", int(9000 * math.sin(2 * math.pi * 330 * i / rate)))
            for i in range(int(seconds * rate))
        ))
    return buf.getvalue()


def test_embeddings_default_base64_and_float_are_the_same_floats():
    _, req, up = case("embeddings/alias-text-embedding-3-small-list")
    default = client().embeddings.create(model=req["model"], input=req["input"])
    floats = client().embeddings.create(model=req["model"], input=req["input"], encoding_format="float")
    assert default.model == floats.model == "text-embedding-3-small"
    assert [d.index for d in default.data] == [0, 1, 2]
    for a, b, v in zip(default.data, floats.data, up["data"]):
        assert a.embedding == b.embedding == [f32(x) for x in v]
    assert default.usage.prompt_tokens > 0


def test_image_b64_json_is_the_models_jpeg():
    _, req, up = case("images/flux-schnell-b64-jpeg")
    r = client().images.generate(**req)
    assert base64.b64decode(r.data[0].b64_json) == base64.b64decode(up["image"])
    assert r.output_format == "jpeg"


def test_image_url_serves_the_png_with_its_type():
    d, req, _ = case("images/sdxl-size-n2-seed")
    req = dict(req, response_format="url")
    seed = req.pop("seed")  # a cng extension: the SDK sends it as an extra field
    r = client().images.generate(**req, extra_body={"seed": seed})
    assert len(r.data) == 2
    with urllib.request.urlopen(r.data[0].url) as got:
        assert got.headers["content-type"] == "image/png"
        assert got.read() == (d / "upstream.bin").read_bytes()


def test_speech_bytes_come_through():
    d, req, _ = case("audio/speech-tts-1-alloy-mp3")
    with client().audio.speech.with_streaming_response.create(**req) as r:
        assert r.headers["content-type"] == "audio/mpeg"
        assert r.read() == (d / "upstream.bin").read_bytes()


def test_transcription_of_a_generated_wav():
    audio = make_wav()
    t = client().audio.transcriptions.create(model="whisper-1", file=("speech.wav", audio, "audio/wav"))
    assert t.text == "ok"  # the fake upstream's default transcript
    v = client().audio.transcriptions.create(
        model="whisper-1", file=("speech.wav", audio, "audio/wav"),
        response_format="verbose_json", timestamp_granularities=["word"],
    )
    assert v.words[0].word == "ok" and v.words[0].end == 0.5
    sent = [r for r in fake_requests() if r["path"].endswith("whisper-large-v3-turbo")][-1]
    assert base64.b64decode(sent["body"]["audio"]) == audio


def test_translation_asks_the_model_to_translate():
    client().audio.translations.create(model="whisper-1", file=("speech.wav", make_wav(0.1), "audio/wav"))
    sent = [r for r in fake_requests() if r["path"].endswith("whisper-large-v3-turbo")][-1]
    assert sent["body"]["task"] == "translate"


def test_moderation_safe_and_flagged():
    _, req, _ = case("moderations/safe-string")
    r = client().moderations.create(**req)
    assert r.model == "omni-moderation-latest"
    assert r.results[0].flagged is False
    _, req, _ = case("moderations/json-verdict-self-harm")
    r = client().moderations.create(**req)
    assert r.results[0].flagged is True
    assert r.results[0].categories.self_harm is True
    assert r.results[0].category_scores.self_harm == 1.0
    assert r.results[0].categories.violence is False


def test_unknown_image_model_is_refused():
    try:
        client().images.generate(model="stable-diffusion-9000", prompt="x")
    except openai.NotFoundError as e:
        assert e.body["code"] == "model_not_found"
    else:
        raise AssertionError("an unknown model must be refused")

#!/usr/bin/env python3
"""Generate crates/cng-core/data/models.json, the Workers AI model catalog used by cng.

Inputs
  1. the shared extract of the cloudflare-docs model files
     (default: <repo>/../shared/workers-ai/catalog.json, or argv[1]);
  2. crates/cng-core/data/models-extra.json: hand-collected entries for models that
     are not in the shared extract (each with its own `source`).

Output
  crates/cng-core/data/models.json: {"generated_by": ..., "models": [...]}, one
  object per model, sorted by id. Entries derived from the shared extract come
  first in the merge; extras override them on id collision.

Python 3.11, standard library only. Deterministic: same inputs -> same bytes.
"""

from __future__ import annotations

import json
import re
import sys
from pathlib import Path

REPO_ROOT = Path(__file__).resolve().parent.parent
DEFAULT_SHARED = REPO_ROOT.parent / "shared" / "workers-ai" / "catalog.json"
DATA_DIR = REPO_ROOT / "crates" / "cng-core" / "data"
EXTRA_PATH = DATA_DIR / "models-extra.json"
OUT_PATH = DATA_DIR / "models.json"

PARAM_NAMES = [
    "temperature",
    "top_p",
    "top_k",
    "seed",
    "repetition_penalty",
    "frequency_penalty",
    "presence_penalty",
]

# Field order of every model object (task-specific fields and notes follow).
BASE_FIELDS = [
    "id",
    "task",
    "chat_schema",
    "context_window",
    "max_output_tokens",
    "default_max_tokens",
    "function_calling",
    "vision",
    "reasoning",
    "json_mode",
    "stop",
    "params",
    "beta",
    "deprecated",
    "price",
    "description",
    "source",
]
EXTRA_FIELDS = ["dimensions", "max_batch", "matryoshka", "output", "input", "max_side", "voices", "inputs", "notes"]

CHAT_SCHEMAS = {None, "legacy", "v2025", "openai", "gpt-oss"}
VISION = {"none", "content_parts", "image_field"}
REASONING = {"none", "separate", "think_tags"}

# Models known to print their chain of thought as <think>...</think> inside the
# text (per the project brief and shared/notes/workers-ai.md §4.1, marked [MEM]
# there); the model files themselves do not say how reasoning is returned.
THINK_TAG_MODELS = {
    "@cf/deepseek-ai/deepseek-r1-distill-qwen-32b",
    "@cf/qwen/qwq-32b",
}

# Parameter ranges of the generic OpenAI chat.completions schema that the 2026
# model files share (read in full in gemma-4-26b-a4b-it.json, see models-extra.json).
GENERIC_OPENAI_PARAMS = {
    "temperature": [0, 2],
    "top_p": [0, 1],
    "seed": [None, None],
    "frequency_penalty": [-2, 2],
    "presence_penalty": [-2, 2],
}


# --------------------------------------------------------------------------- helpers


def kebab(name: str) -> str:
    return re.sub(r"[^a-z0-9]+", "-", name.strip().lower()).strip("-")


def first_sentence(text: str | None, limit: int = 160) -> str:
    if not text:
        return ""
    t = " ".join(text.split())
    m = re.search(r"(?<=[.!?])\s", t)
    if m:
        t = t[: m.start()].strip()
    if len(t) > limit:
        cut = t[: limit - 1]
        if " " in cut:
            cut = cut[: cut.rfind(" ")]
        t = cut.rstrip(" ,;:") + "\u2026"
    return t


def short_commit(commit: str | None) -> str:
    return (commit or "")[:7]


def props_of(entry: dict) -> dict:
    out = {}
    for p in entry.get("properties") or []:
        if isinstance(p, dict) and "property_id" in p:
            out[p["property_id"]] = p.get("value")
    return out


def truthy_str(v) -> bool:
    return v is True or (isinstance(v, str) and v.strip().lower() == "true")


def to_int(v):
    try:
        return int(str(v).strip())
    except (TypeError, ValueError):
        return None


def branches(schema) -> list[dict]:
    """Flatten oneOf/anyOf alternatives into the list of object branches."""
    if not isinstance(schema, dict):
        return []
    alts = schema.get("oneOf") or schema.get("anyOf")
    if alts:
        out = []
        for a in alts:
            out.extend(branches(a))
        return out
    return [schema]


def contains_key(obj, key: str) -> bool:
    if isinstance(obj, dict):
        props = obj.get("properties")
        if isinstance(props, dict) and key in props:
            return True
        return any(contains_key(v, key) for v in obj.values())
    if isinstance(obj, list):
        return any(contains_key(v, key) for v in obj)
    return False


def bound(spec, which: str):
    """minimum/maximum of a property spec, looking into anyOf/oneOf number alternatives."""
    if not isinstance(spec, dict):
        return None
    if which in spec:
        return spec[which]
    for alt in spec.get("anyOf") or spec.get("oneOf") or []:
        if isinstance(alt, dict) and which in alt:
            return alt[which]
    return None


def param_ranges(props: dict) -> dict:
    out = {}
    for name in PARAM_NAMES:
        if name in props:
            out[name] = [bound(props[name], "minimum"), bound(props[name], "maximum")]
    return out


def content_variants(messages_spec) -> list:
    items = (messages_spec or {}).get("items") or {}
    content = (items.get("properties") or {}).get("content")
    if not isinstance(content, dict):
        return []
    return content.get("oneOf") or content.get("anyOf") or [content]


def accepts_image_url(messages_spec) -> bool:
    return contains_key(content_variants(messages_spec), "image_url")


def accepts_parts(messages_spec) -> bool:
    return any(isinstance(v, dict) and v.get("type") == "array" for v in content_variants(messages_spec))


# --------------------------------------------------------------------------- derivation


def base_record(mid: str, task: str) -> dict:
    return {
        "id": mid,
        "task": task,
        "chat_schema": None,
        "context_window": None,
        "max_output_tokens": None,
        "default_max_tokens": None,
        "function_calling": False,
        "vision": "none",
        "reasoning": "none",
        "json_mode": False,
        "stop": False,
        "params": {},
        "beta": False,
        "deprecated": False,
        "price": [],
        "description": "",
        "source": "",
    }


def derive(entry: dict) -> dict:
    props = props_of(entry)
    task = kebab((entry.get("task") or {}).get("name") or "")
    rec = base_record(entry["name"], task)
    notes: list[str] = []
    docs = entry.get("_docs_source") or {}

    rec["context_window"] = to_int(props.get("context_window")) or to_int(props.get("max_input_tokens"))
    rec["beta"] = truthy_str(props.get("beta"))
    rec["deprecated"] = bool(entry.get("deprecated")) or "planned_deprecation_date" in props
    price = props.get("price")
    rec["price"] = price if isinstance(price, list) else []
    rec["description"] = first_sentence(entry.get("description"))
    rec["source"] = f"{docs.get('repo', 'cloudflare/cloudflare-docs')} {docs.get('path', '')}@{short_commit(docs.get('commit'))}"
    if "planned_deprecation_date" in props:
        notes.append(f"planned_deprecation_date {props['planned_deprecation_date']}.")

    schema = entry.get("schema") or {}
    sin = schema.get("input") or {}
    sout = schema.get("output") or {}
    in_branches = branches(sin)
    msg = next((b for b in in_branches if "messages" in (b.get("properties") or {})), None)
    msg_props = (msg or {}).get("properties") or {}

    if task == "text-generation":
        derive_text_generation(entry, rec, props, sin, sout, in_branches, msg, msg_props, notes)
    elif task == "image-to-text":
        obj = next((b for b in in_branches if b.get("type") == "object" or "properties" in b), {})
        p = obj.get("properties") or {}
        rec["params"] = param_ranges(p)
        mt = p.get("max_tokens") or {}
        rec["default_max_tokens"] = mt.get("default")
        rec["max_output_tokens"] = bound(mt, "maximum")
        if "image" in p:
            rec["vision"] = "image_field"
    elif task == "text-embeddings":
        rec["dimensions"] = to_int(props.get("output_dimensions"))
        rec["max_batch"] = embedding_max_batch(in_branches)
    elif task == "text-to-image":
        derive_text_to_image(rec, in_branches, sout)
    elif task == "text-to-speech":
        derive_tts(rec, in_branches, sout)
    elif task == "automatic-speech-recognition":
        derive_asr(rec, sin, in_branches, notes)

    if notes:
        rec["notes"] = " ".join(notes)
    return rec


def derive_text_generation(entry, rec, props, sin, sout, in_branches, msg, msg_props, notes):
    docs = entry.get("_docs_source") or {}
    omitted = docs.get("schema_omitted")
    has_schema = bool(sin) or bool(sout)
    prop_fc = truthy_str(props.get("function_calling"))
    prop_vision = truthy_str(props.get("vision"))
    prop_reasoning = truthy_str(props.get("reasoning"))

    if omitted and "chat-completions" in str(omitted):
        rec["chat_schema"] = "openai"
        rec["params"] = dict(GENERIC_OPENAI_PARAMS)
        rec["json_mode"] = True
        rec["stop"] = True
        notes.append(
            "Schema not transcribed in the shared extract (too large); its note describes an OpenAI "
            "chat.completions-shaped input/output. Parameter ranges, stop and response_format are "
            "inferred from the identical generic schema of the other 2026 models "
            "(read in gemma-4-26b-a4b-it.json)."
        )
    elif not has_schema:
        if prop_fc or prop_vision or rec["context_window"]:
            rec["chat_schema"] = "openai"
            notes.append(
                "No schema in the source file; chat_schema=openai is inferred from the 2026 "
                "properties (context_window/function_calling/vision), not read. Parameter ranges "
                "unknown; json_mode/stop unknown (false here)."
            )
    elif any("input" in (b.get("properties") or {}) and "reasoning" in (b.get("properties") or {}) for b in in_branches):
        rec["chat_schema"] = "gpt-oss"
    elif contains_key(sout, "choices"):
        rec["chat_schema"] = "openai"
    elif msg is not None:
        if "response_format" in msg_props or accepts_parts(msg_props.get("messages")):
            rec["chat_schema"] = "v2025"
        else:
            rec["chat_schema"] = "legacy"
    else:
        rec["chat_schema"] = None
        if "questions" in ((sin.get("properties") or {}) if isinstance(sin, dict) else {}):
            notes.append(
                "Not a chat model: decision API {model, state, questions, images, audio, videos} -> "
                "{answers, usage}."
            )

    if msg is not None:
        rec["params"] = param_ranges(msg_props)
        mt = msg_props.get("max_tokens") or msg_props.get("max_completion_tokens") or {}
        rec["default_max_tokens"] = mt.get("default")
        if bound(mt, "maximum") is not None:
            rec["max_output_tokens"] = bound(mt, "maximum")
        rec["json_mode"] = "response_format" in msg_props
        rec["stop"] = "stop" in msg_props

    rec["function_calling"] = prop_fc or "tools" in msg_props

    if accepts_image_url(msg_props.get("messages")) or (prop_vision and rec["chat_schema"] == "openai"):
        rec["vision"] = "content_parts"
    elif "image" in msg_props:
        rec["vision"] = "image_field"
    elif prop_vision:
        notes.append("Property vision=true, but the input is not chat-shaped (images[] field).")

    if rec["id"] in THINK_TAG_MODELS:
        rec["reasoning"] = "think_tags"
        notes.append(
            "reasoning=think_tags: the model prints <think>...</think> in the text (brief / notes, "
            "not stated in the model file)."
        )
    elif rec["chat_schema"] == "gpt-oss" or (prop_reasoning and rec["chat_schema"] == "openai"):
        rec["reasoning"] = "separate"

    if rec["chat_schema"] == "gpt-oss":
        notes.append(
            "Input oneOf also has Responses {input, reasoning {effort, summary}} and Responses_Async "
            "{requests} branches."
        )


def embedding_max_batch(in_branches):
    for b in in_branches:
        text = (b.get("properties") or {}).get("text")
        if not isinstance(text, dict):
            continue
        for alt in text.get("oneOf") or text.get("anyOf") or [text]:
            if isinstance(alt, dict) and alt.get("type") == "array" and "maxItems" in alt:
                return alt["maxItems"]
    return None


def derive_text_to_image(rec, in_branches, sout):
    props = {}
    for b in in_branches:
        props.update(b.get("properties") or {})
    rec["input"] = "multipart" if "multipart" in props else "json"
    outs = branches(sout)
    if any(o.get("format") == "binary" and "jpeg" in str(o.get("contentType", "")) for o in outs):
        rec["output"] = "jpeg_bytes"
    elif any(o.get("format") == "binary" for o in outs):
        rec["output"] = "png_bytes"
    else:
        rec["output"] = "base64_json"
    # Every declared input field with its [min, max] (null for an undeclared bound).
    rec["inputs"] = {
        k: [bound(v, "minimum"), bound(v, "maximum")]
        for k, v in sorted(props.items())
        if k != "multipart" and isinstance(v, dict)
    }
    sides = [bound(props.get(k), "maximum") for k in ("width", "height")]
    sides = [s for s in sides if s is not None]
    if sides:
        rec["max_side"] = max(sides)


def derive_tts(rec, in_branches, sout):
    outs = branches(sout)
    has_bytes = any(o.get("format") == "binary" for o in outs)
    has_json = any("audio" in (o.get("properties") or {}) for o in outs)
    rec["output"] = "base64_json_or_bytes" if has_json else ("mp3_bytes" if has_bytes else None)
    voices = []
    for b in in_branches:
        for key in ("speaker", "voice"):
            spec = (b.get("properties") or {}).get(key)
            if isinstance(spec, dict) and isinstance(spec.get("enum"), list):
                voices = list(spec["enum"])
    rec["voices"] = voices


def derive_asr(rec, sin, in_branches, notes):
    kinds = []
    for b in in_branches:
        if b.get("type") == "string" and b.get("format") == "binary":
            kinds.append("bytes")
            continue
        audio = (b.get("properties") or {}).get("audio")
        if not isinstance(audio, dict):
            continue
        if audio.get("type") == "array":
            kinds.append("u8")
        elif audio.get("type") == "string":
            kinds.append("base64")
        elif audio.get("type") == "object" or "body" in (audio.get("properties") or {}):
            kinds.append("stream")
    if "bytes" in kinds or "u8" in kinds:
        rec["input"] = "bytes_or_u8_array"
    elif "base64" in kinds:
        rec["input"] = "base64"
    elif "stream" in kinds:
        rec["input"] = "stream_content_type"
    else:
        rec["input"] = None
        notes.append("Input is not an audio upload (streaming/WebSocket options only).")


# --------------------------------------------------------------------------- merge / output


def normalize(rec: dict) -> dict:
    """Fill defaults, check enums and put keys in a fixed order."""
    full = base_record(rec["id"], rec["task"])
    for k, v in rec.items():
        if k.startswith("_"):
            continue
        full[k] = v
    full["description"] = first_sentence(full.get("description"))
    if full["chat_schema"] not in CHAT_SCHEMAS:
        raise ValueError(f"{full['id']}: bad chat_schema {full['chat_schema']!r}")
    if full["vision"] not in VISION:
        raise ValueError(f"{full['id']}: bad vision {full['vision']!r}")
    if full["reasoning"] not in REASONING:
        raise ValueError(f"{full['id']}: bad reasoning {full['reasoning']!r}")
    unknown = set(full["params"]) - set(PARAM_NAMES)
    if unknown:
        raise ValueError(f"{full['id']}: unknown params {sorted(unknown)}")
    if not full["source"]:
        raise ValueError(f"{full['id']}: missing source")
    full["params"] = {k: full["params"][k] for k in PARAM_NAMES if k in full["params"]}
    if full["task"] == "text-embeddings":
        full.setdefault("dimensions", None)
        full.setdefault("max_batch", None)
    if full["task"] == "text-to-image":
        full.setdefault("output", None)
        full.setdefault("input", "json")
    if full["task"] == "text-to-speech":
        full.setdefault("output", None)
        full.setdefault("voices", [])
    if full["task"] == "automatic-speech-recognition":
        full.setdefault("input", None)
    ordered = {k: full[k] for k in BASE_FIELDS}
    for k in EXTRA_FIELDS:
        if k in full:
            ordered[k] = full[k]
    for k in sorted(full):
        if k not in ordered:
            ordered[k] = full[k]
    return ordered


def main(argv: list[str]) -> int:
    shared_path = Path(argv[1]) if len(argv) > 1 else DEFAULT_SHARED
    if not shared_path.is_file():
        print(
            f"gen-catalog: shared catalog not found: {shared_path}\n"
            f"(pass its path as the first argument); {OUT_PATH} was not modified.",
            file=sys.stderr,
        )
        return 2
    shared = json.loads(shared_path.read_text(encoding="utf-8"))
    if isinstance(shared, dict):
        shared = shared.get("models") or shared.get("result") or []
    extras = []
    if EXTRA_PATH.is_file():
        extras = json.loads(EXTRA_PATH.read_text(encoding="utf-8")).get("models", [])

    by_id: dict[str, dict] = {}
    for entry in shared:
        rec = derive(entry)
        by_id[rec["id"]] = rec
    for rec in extras:
        if rec.get("patch"):
            # A patch adds facts to a derived entry: its fields win, its `patch_source`
            # (where those facts were read) joins the entry's notes.
            base = by_id.get(rec["id"])
            if base is None:
                raise ValueError(f"{rec['id']}: patch for a model that is not in the shared extract")
            merged = dict(base)
            for k, v in rec.items():
                if k not in ("patch", "patch_source"):
                    merged[k] = v
            note = f"Patched: {', '.join(k for k in rec if k not in ('id', 'patch', 'patch_source'))} from {rec['patch_source']}."
            merged["notes"] = " ".join(n for n in (base.get("notes"), note) if n)
            by_id[rec["id"]] = merged
        else:
            by_id[rec["id"]] = rec  # extras override

    models = [normalize(by_id[k]) for k in sorted(by_id)]
    out = {"generated_by": "scripts/gen-catalog.py", "models": models}
    text = json.dumps(out, indent=2, ensure_ascii=False) + "\n"
    tmp = OUT_PATH.with_suffix(".json.tmp")
    tmp.write_text(text, encoding="utf-8")
    tmp.replace(OUT_PATH)
    n_tg = sum(1 for m in models if m["task"] == "text-generation")
    print(f"gen-catalog: wrote {len(models)} models ({n_tg} text-generation) to {OUT_PATH}")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))

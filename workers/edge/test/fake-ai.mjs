// A stand-in for the Workers AI binding (`env.AI`) in local tests, where the real one
// cannot run ("Binding AI needs to be run remotely").
//
// It behaves as the binding does, per the Workers AI schemas: `run(model, inputs,
// options)` resolves to the model's result without the REST envelope (a JSON object), a
// `ReadableStream` of SSE bytes when `inputs.stream` is true, or a `ReadableStream` of the
// raw bytes for binary outputs (PNG, MP3); model errors are thrown as
// `InferenceUpstreamError` with the message `"<code>: <text>"`. The answers themselves
// come from cng's fake Workers AI upstream (cng-fake-upstream, replaying fixtures/),
// asked over REST with the header `x-cng-fake-binding: 1`, so the binding path and the
// REST path serve the same fixtures and the tests can tell them apart.
//
// Test-only faults: a last user message containing `[binding-down]` makes the call
// throw a platform error (no code), which cng must answer through its REST fallback.

export class InferenceUpstreamError extends Error {
  constructor(message, httpCode) {
    super(message);
    this.name = "InferenceUpstreamError";
    this.httpCode = httpCode;
  }
}

/** Every call, for the tests (`GET /__test/ai-calls`). */
export const calls = [];

function lastUserText(inputs) {
  const msgs = Array.isArray(inputs?.messages) ? inputs.messages : [];
  for (let i = msgs.length - 1; i >= 0; i--) {
    if (msgs[i]?.role !== "user") continue;
    const c = msgs[i].content;
    if (typeof c === "string") return c;
    if (Array.isArray(c)) return c.filter((p) => p?.type === "text").map((p) => p.text).join("\n");
  }
  return typeof inputs?.prompt === "string" ? inputs.prompt : "";
}

/** The REST request body for binding-style inputs (streams and byte arrays back to bytes). */
async function restBody(inputs) {
  const inner = inputs?.multipart ?? (inputs?.audio?.body ? inputs.audio : null);
  if (inner) {
    const bytes = new Uint8Array(await new Response(inner.body).arrayBuffer());
    return { body: bytes, contentType: inner.contentType };
  }
  for (const field of ["audio", "image"]) {
    if (Array.isArray(inputs?.[field]) && Object.keys(inputs).length === 1) {
      return { body: new Uint8Array(inputs[field]), contentType: "application/octet-stream" };
    }
  }
  return { body: JSON.stringify(inputs), contentType: "application/json" };
}

export class Ai {
  constructor(upstream) {
    this.upstream = upstream; // e.g. http://127.0.0.1:PORT/client/v4
    // The binding runs on the Worker's account, as Cloudflare's analytics count it.
    this.account = "fake-binding";
    this.memory = null; // an object with run(): answers from memory instead (benchmarks)
  }

  async run(model, inputs, options) {
    if (this.memory) return this.memory.run(model, inputs, options);
    calls.push({ model, stream: inputs?.stream === true, options: options ?? null });
    if (lastUserText(inputs).includes("[binding-down]")) {
      const e = new Error("internal error; reference = fake");
      e.name = "AiInternalError";
      throw e;
    }
    if (!this.upstream) {
      throw new Error("fake AI binding: set CNG_FAKE_AI_UPSTREAM");
    }
    const { body, contentType } = await restBody(inputs);
    const resp = await fetch(`${this.upstream}/accounts/${this.account}/ai/run/${model}`, {
      method: "POST",
      headers: { "content-type": contentType, "x-cng-fake-binding": "1" },
      body,
    });
    const type = (resp.headers.get("content-type") ?? "").split(";")[0].trim();
    if (!resp.ok) {
      let code = 3030;
      let text = `HTTP ${resp.status}`;
      try {
        const env = await resp.json();
        code = env?.errors?.[0]?.code ?? code;
        text = env?.errors?.[0]?.message ?? text;
      } catch {}
      throw new InferenceUpstreamError(`${code}: ${text}`, resp.status);
    }
    if (type === "application/json") {
      const env = await resp.json();
      return env.result;
    }
    // SSE and binary outputs: the body as it arrives.
    return resp.body;
  }
}

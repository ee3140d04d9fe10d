// Test entry module: the built Worker (../build/index.js) with test hooks. Used only by
// the workerd tests (`wrangler dev <this file> -c wrangler.toml --local`); production
// runs build/index.js directly.
//
// - `CNG_TEST_AI=fake` (a --var) replaces the `AI` binding by the fake of fake-ai.mjs,
//   which answers from cng's fake upstream at `CNG_FAKE_AI_UPSTREAM`. Without it the real
//   binding stays, and locally it throws ("needs to be run remotely"): the REST fallback
//   must serve.
// - `GET /__test/ai-calls`: the calls the fake binding received (model, stream, options).
// - `POST /__test/bench` `{n, body, sse?, json?}`: CPU time of the Worker's handler
//   inside workerd. Runs the handler `n` times in a row on `body` (a chat request made
//   with the bootstrap admin key) with the `AI` binding replaced by an in-memory fake
//   (answering `json`, or the SSE text `sse` one event per chunk when the request
//   streams) and reads each response to its end. Nothing waits on the network, and
//   locally `performance.now()` advances with computation, so the elapsed time is the
//   CPU time of the handler (JS glue + wasm), including the fake's own small cost, which
//   is measured alone and reported as `fake_ms`.
// Durable Object classes are re-exported: the runtime constructs them from here.

import Worker from "../build/index.js";
import { Ai, calls } from "./fake-ai.mjs";

export { CngStore, CngRateLimiter } from "../build/index.js";

const encoder = new TextEncoder();

// One fake for the isolate: the Worker keeps the binding it first saw (its gateways
// live across requests), so the benchmark switches this object's behaviour instead of
// swapping the binding.
const fakeAi = new Ai(null);

/** The binding's behaviour, from memory (no I/O). */
class MemoryAi {
  constructor(json, sse) {
    this.json = json;
    this.events = (sse ?? "").split(/(?<=\n\n)/).filter((e) => e.length > 0);
  }
  async run(model, inputs) {
    if (inputs?.stream) {
      const events = this.events;
      return new ReadableStream({
        start(c) {
          for (const e of events) c.enqueue(encoder.encode(e));
          c.close();
        },
      });
    }
    return structuredClone(this.json);
  }
}

async function drain(resp) {
  await resp.arrayBuffer();
  return resp.status;
}

export default class extends Worker {
  constructor(ctx, env) {
    const fake = env.CNG_TEST_AI === "fake";
    if (fake) {
      fakeAi.upstream = env.CNG_FAKE_AI_UPSTREAM;
      fakeAi.account = env.CLOUDFLARE_ACCOUNT_ID || "fake-binding";
    }
    super(ctx, fake ? { ...env, AI: fakeAi } : env);
  }

  async bench(request) {
    const { n, body, sse, json } = await request.json();
    const memory = new MemoryAi(json, sse);
    const headers = {
      authorization: `Bearer ${this.env.CNG_ADMIN_KEY}`,
      "content-type": "application/json",
    };
    const url = new URL("/v1/chat/completions", request.url).toString();
    const make = () => new Request(url, { method: "POST", headers, body: JSON.stringify(body) });
    if (this.env.AI !== fakeAi) {
      return Response.json({ error: "the benchmark needs CNG_TEST_AI=fake" }, { status: 400 });
    }
    fakeAi.memory = memory;
    try {
      const statuses = new Set();
      let backend = null;
      // Warm-up: V8 compiles wasm with its baseline tier first and optimises hot
      // functions after a while; what a busy isolate runs is the optimised code.
      for (let i = 0; i < Math.max(100, n / 2); i++) await drain(await super.fetch(make()));
      const t0 = performance.now();
      for (let i = 0; i < n; i++) {
        const resp = await super.fetch(make());
        backend = resp.headers.get("x-cng-backend");
        statuses.add(await drain(resp));
      }
      const total = performance.now() - t0;
      // The fake and the request objects alone.
      const f0 = performance.now();
      for (let i = 0; i < n; i++) {
        make();
        const out = await memory.run("m", body);
        if (out instanceof ReadableStream) await new Response(out).arrayBuffer();
      }
      const fake = performance.now() - f0;
      return Response.json({
        n,
        statuses: [...statuses],
        backend,
        events: memory.events.length,
        total_ms: total,
        per_request_ms: total / n,
        fake_ms: fake / n,
      });
    } finally {
      fakeAi.memory = null;
    }
  }

  async fetch(request) {
    const path = new URL(request.url).pathname;
    if (path === "/__test/ai-calls") {
      return Response.json(calls);
    }
    if (path === "/__test/bench" && request.method === "POST") {
      return this.bench(request);
    }
    return super.fetch(request);
  }
}

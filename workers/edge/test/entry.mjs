// Test entry module: the built Worker (../build/index.js) with test hooks. Used only by
// the workerd tests (`wrangler dev <this file> -c wrangler.toml --local`); production
// runs build/index.js directly.
//
// - `CNG_TEST_AI=fake` (a --var) replaces the `AI` binding by the fake of fake-ai.mjs,
//   which answers from cng's fake upstream at `CNG_FAKE_AI_UPSTREAM`. Without it the real
//   binding stays, and locally it throws ("needs to be run remotely"): the REST fallback
//   must serve.
// - `GET /__test/ai-calls`: the calls the fake binding received (model, stream, options).
// - `GET /__test/timing`: wall time of each handler call up to its response head, as
//   `performance.now()` sees it inside the isolate (see docs/worker.md on what it means).
// Durable Object classes are re-exported: the runtime constructs them from here.

import Worker from "../build/index.js";
import { Ai, calls } from "./fake-ai.mjs";

export { CngStore, CngRateLimiter } from "../build/index.js";

const timings = [];

export default class extends Worker {
  constructor(ctx, env) {
    const fake = env.CNG_TEST_AI === "fake";
    super(ctx, fake ? { ...env, AI: new Ai(env.CNG_FAKE_AI_UPSTREAM) } : env);
  }

  async fetch(request) {
    const path = new URL(request.url).pathname;
    if (path === "/__test/ai-calls") {
      return Response.json(calls);
    }
    if (path === "/__test/timing") {
      const out = Response.json(timings);
      timings.length = 0;
      return out;
    }
    const t0 = performance.now();
    const resp = await super.fetch(request);
    timings.push({ path, ms: performance.now() - t0 });
    if (timings.length > 10000) timings.shift();
    return resp;
  }
}

/**
 * Attacks on the worker pool (issue 11, item 2) that found a fault, each now
 * fixed; the tests assert what should happen.
 *
 * 1. A worker that is replaced takes its counters with it: every summed
 *    counter of /metrics goes down, which Prometheus reads as a counter reset
 *    (rate()/increase() then count the process's whole remaining total again).
 * 2. The pool knows an activation reached a worker only by its revision
 *    string: a new policy whose bundle keeps its manifest revision (same
 *    revision, other digest) is "settled" at once, and a worker that never
 *    switched to it is never replaced: it decides on the old policy forever.
 * 3. A replaced worker sets mcp_pdp_bundle_loaded_timestamp_seconds to its own
 *    start time, and the merge (max) reports that as the policy's activation.
 */
import assert from "node:assert/strict";
import { Writable } from "node:stream";
import { join } from "node:path";
import { after, test } from "node:test";
import type { Worker } from "node:worker_threads";
import { buildApp, type App } from "../../src/app.ts";
import { WorkerPool } from "../../src/cli/worker-pool.ts";
import { loadConfig } from "../../src/config/index.ts";
import { createLogger } from "../../src/observability/logger.ts";
import type { ActivePolicy } from "../../src/policy/policy-loader.ts";
import { parseExposition, total, waitFor } from "../observability/helpers.ts";
import { scratchDir } from "../support/opa.ts";

const scratch = scratchDir();
const config = loadConfig({ HOST: "127.0.0.1", PORT: "0", PDP_DECISION_LOG: "off" });
const logger = createLogger({
  level: "error",
  stream: new Writable({
    write(_chunk, _encoding, callback) {
      callback();
    },
  }),
});
const pools: WorkerPool[] = [];
const apps: App[] = [];
after(async () => {
  for (const pool of pools) await pool.close(1000);
  for (const app of apps) app.close();
  scratch.remove();
});

/**
 * An app with a one-worker pool of `fixture` (undefined: the real worker entry, serve-worker),
 * wired as serve.ts wires them.
 */
async function appWithPool(
  fixture: string | undefined,
  options: { activationTimeoutMs?: number; current?: () => ActivePolicy | undefined } = {},
): Promise<{ app: App; pool: WorkerPool }> {
  const built: { app?: App } = {};
  const started = (): App => {
    if (built.app === undefined) throw new Error("not built yet");
    return built.app;
  };
  const pool = new WorkerPool({
    count: 1,
    config,
    logger,
    get metrics() {
      return started().metrics;
    },
    answers: () => started().coordinatorAnswers,
    current: () => ({ active: options.current?.() ?? started().policy.current(), source: "local" }),
    ...(fixture === undefined
      ? {}
      : { entry: new URL(`./fixtures/${fixture}.ts`, import.meta.url) }),
    ...(options.activationTimeoutMs === undefined
      ? {}
      : { activationTimeoutMs: options.activationTimeoutMs }),
  });
  pools.push(pool);
  const app = await buildApp({ config, logger, processMetrics: false, workers: pool });
  built.app = app;
  apps.push(app);
  await pool.start(0);
  return { app, pool };
}

test("a replaced worker's counters stay in the process's /metrics (summed counters never go down)", async () => {
  process.env.ATTACK_MARKER = join(scratch.dir, "counting-worker-started");
  const { app, pool } = await appWithPool("attack-counting-worker");
  const decisions = async (): Promise<number> =>
    total(parseExposition(await app.coordinatorAnswers.exposition()), "mcp_pdp_decisions_total");
  const before = await decisions();
  assert.equal(before, 100, "the worker's 100 decisions are in the scrape");
  // It dies after that scrape; the pool replaces it (after 1 s: it died young).
  await waitFor(
    "the worker to be gone",
    () => (pool.revisions().size === 0 ? true : undefined),
    5000,
  );
  await waitFor("the replacement", () => (pool.revisions().size === 1 ? true : undefined), 5000);
  const afterwards = await decisions();
  assert.ok(
    afterwards >= before,
    `a counter went down across a worker replacement: ${before} → ${afterwards}`,
  );
});

test("a worker that never switches to a new policy with the same manifest revision is replaced", async () => {
  const serving: { policy?: ActivePolicy } = {};
  const { app, pool } = await appWithPool("lagging-worker", {
    activationTimeoutMs: 200,
    current: () => serving.policy,
  });
  const first = app.policy.current();
  // The same bundle rebuilt with other content and the same `.manifest` revision: what the
  // main thread's holder activates (the digest differs) and announces with that revision.
  const rebuilt: ActivePolicy = { ...first, digest: `${first.digest}-rebuilt` };
  serving.policy = rebuilt;
  const startedAt = Date.now();
  pool.activate(rebuilt, "local", "admin");
  await pool.settled(rebuilt.revision);
  // Settled only once the laggard (it ignores `activate`) was replaced by one on the new policy.
  const settledAfterMs = Date.now() - startedAt;
  const restarts = total(
    parseExposition(await app.metrics.registry.metrics()),
    "mcp_pdp_worker_restarts_total",
  );
  assert.ok(
    settledAfterMs >= 200,
    `settled after ${settledAfterMs} ms, before any worker switched`,
  );
  assert.equal(restarts, 1, "the worker that kept the old policy was not replaced");
});

test("a replaced worker does not move the process's bundle_loaded_timestamp_seconds (the policy did not change)", async () => {
  // The real worker entry (serve-worker), on a port of its own (PORT=0).
  const { app, pool } = await appWithPool(undefined);
  const loadedAt = async (): Promise<number> =>
    total(
      parseExposition(await app.coordinatorAnswers.exposition()),
      "mcp_pdp_bundle_loaded_timestamp_seconds",
    );
  const activatedAt = app.policy.activatedAt / 1000;
  // Later than the activation, so that a replacement's own start would show.
  await new Promise((resolve) => setTimeout(resolve, 1200));
  // The worker dies (an uncaught exception, the OOM killer of a thread…): here, terminated.
  const threads = (pool as unknown as { threads: Map<number, { thread: Worker }> }).threads;
  await threads.get(1)?.thread.terminate();
  await waitFor("the replacement", () => (pool.revisions().size === 1 ? true : undefined), 8000);
  const reported = await loadedAt();
  assert.ok(
    Math.abs(reported - activatedAt) < 1.5,
    `the policy was activated at ${activatedAt}, the gauge says ${reported} (${(reported - activatedAt).toFixed(1)} s later)`,
  );
});

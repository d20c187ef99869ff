/**
 * The worker pool's supervision, with workers that misbehave on purpose
 * (test/workers/fixtures): one that dies is replaced, counted and logged; one
 * that does not switch to an activated policy within the activation timeout
 * is replaced by one started on it, and `settled` waits for that.
 */
import assert from "node:assert/strict";
import { Writable } from "node:stream";
import { after, test } from "node:test";
import { buildApp } from "../../src/app.ts";
import { WorkerPool } from "../../src/cli/worker-pool.ts";
import { loadConfig } from "../../src/config/index.ts";
import { createLogger } from "../../src/observability/logger.ts";
import { loadActivePolicy, type ActivePolicy } from "../../src/policy/policy-loader.ts";
import { parseExposition, total, waitFor } from "../observability/helpers.ts";

const config = loadConfig({ HOST: "127.0.0.1", PORT: "0", PDP_DECISION_LOG: "off" });
const logs: Record<string, unknown>[] = [];
const logger = createLogger({
  level: "debug",
  stream: new Writable({
    write(chunk: Buffer, _encoding, callback) {
      for (const line of chunk.toString("utf8").split("\n")) {
        if (line.trim() !== "") logs.push(JSON.parse(line) as Record<string, unknown>);
      }
      callback();
    },
  }),
});
const app = await buildApp({ config, logger, processMetrics: false });
const pools: WorkerPool[] = [];
after(async () => {
  for (const pool of pools) await pool.close(1000);
  app.close();
});

function poolWith(
  fixture: string,
  current: () => ActivePolicy,
  options: { activationTimeoutMs?: number } = {},
): WorkerPool {
  const pool = new WorkerPool({
    count: 1,
    config,
    logger,
    metrics: app.metrics,
    answers: () => app.coordinatorAnswers,
    current: () => ({ active: current(), source: "local" }),
    entry: new URL(`./fixtures/${fixture}.ts`, import.meta.url),
    ...options,
  });
  pools.push(pool);
  return pool;
}

async function restarts(): Promise<number> {
  return total(
    parseExposition(await app.metrics.registry.metrics()),
    "mcp_pdp_worker_restarts_total",
  );
}

test("a worker that ends unasked is replaced, counted and logged", async () => {
  const before = await restarts();
  const active = app.policy.current();
  const pool = poolWith("crashing-worker", () => active);
  await pool.start(0);
  assert.deepEqual([...pool.revisions()], [[1, active.revision]]);
  await waitFor(
    "the restart to be counted",
    async () => ((await restarts()) > before ? true : undefined),
    5000,
  );
  assert.ok(logs.some((line) => line.message === "worker failed" && line.worker === 1));
  assert.ok(
    logs.some((line) => line.message === "worker ended unasked: replaced" && line.worker === 1),
  );
  // The replacement starts (after a pause: it died young) on the active policy.
  await waitFor(
    "the replacement to listen",
    () => (pool.revisions().get(1) === active.revision ? true : undefined),
    5000,
  );
  await pool.close(1000);
});

test("a worker that does not switch to an activated policy in time is replaced by one that serves it", async () => {
  const first = app.policy.current();
  const second = await loadActivePolicy({
    bundlePath: first.bundlePath,
    dataPath: undefined,
    entrypoint: first.entrypoint,
    configCheck: undefined,
  });
  // A different revision of the same bundle: its data changed.
  const candidate: ActivePolicy = {
    ...second,
    revision: `${first.revision}+lagging-test`,
    digest: `${first.digest}-lagging-test`,
  };
  let current = first;
  const pool = poolWith("lagging-worker", () => current, { activationTimeoutMs: 200 });
  await pool.start(0);
  const before = await restarts();
  current = candidate;
  const started = Date.now();
  pool.activate(candidate, "local", "admin");
  await pool.settled(candidate.digest);
  assert.deepEqual([...pool.revisions()], [[1, candidate.revision]]);
  assert.ok(Date.now() - started >= 200, "not before the activation timeout");
  assert.equal(await restarts(), before + 1);
  assert.ok(
    logs.some(
      (line) =>
        line.message === "worker did not switch to the activated policy: replaced" &&
        line.activated === candidate.revision,
    ),
  );
  await pool.close(1000);
});

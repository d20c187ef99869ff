/**
 * A real Prometheus server (Debian's prometheus 2.x; .ci/run installs it)
 * scrapes the real PDP process (`node src/main.ts`) every second,
 * on the main listener and on PDP_METRICS_PORT; decisions sent to the PDP are
 * read back through Prometheus's HTTP query API. Everything listens on
 * 127.0.0.1; every wait is bounded and a timeout fails with both logs.
 */
import assert from "node:assert/strict";
import { spawnSync } from "node:child_process";
import { mkdirSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { after, describe, test } from "node:test";
import { scratchDir } from "../support/opa.ts";
import { postJson } from "../support/pdp.ts";
import {
  freePort,
  operatorData,
  rawRequest,
  spawnCaptured,
  startMain,
  waitFor,
  waitReady,
  type Spawned,
} from "./helpers.ts";

const scratch = scratchDir();
const running: Spawned[] = [];
const waitMs = 30000;

after(async () => {
  for (const spawned of running.reverse()) await spawned.stop();
  scratch.remove();
});

/** The scrape configuration the README shows (job name, interval, target). */
function prometheusConfig(target: string): string {
  return [
    "global:",
    "  scrape_interval: 1s",
    "  scrape_timeout: 1s",
    "scrape_configs:",
    "  - job_name: mcp-pdp",
    "    metrics_path: /metrics",
    "    static_configs:",
    `      - targets: ["${target}"]`,
    "",
  ].join("\n");
}

interface Prometheus {
  url: string;
  process: Spawned;
  logs: () => string;
}

async function startPrometheus(name: string, target: string): Promise<Prometheus> {
  const dir = join(scratch.dir, name);
  mkdirSync(join(dir, "data"), { recursive: true });
  const config = join(dir, "prometheus.yml");
  writeFileSync(config, prometheusConfig(target));
  const check = spawnSync("promtool", ["check", "config", config], { encoding: "utf8" });
  if (check.error !== undefined) {
    assert.fail(`promtool could not be run (${check.error.message}): install prometheus`);
  }
  assert.equal(check.status, 0, `promtool check config:\n${check.stdout}${check.stderr}`);

  const port = await freePort();
  const url = `http://127.0.0.1:${port}`;
  const proc = spawnCaptured(
    "prometheus",
    [
      `--config.file=${config}`,
      `--storage.tsdb.path=${join(dir, "data")}`,
      `--web.listen-address=127.0.0.1:${port}`,
      "--web.enable-lifecycle",
    ],
    { PATH: process.env.PATH ?? "", HOME: dir },
  );
  running.push(proc);
  const logs = () => `prometheus:\n${proc.stdout()}${proc.stderr()}`;
  const state = await waitFor(
    "Prometheus to be ready",
    async () => {
      if (proc.child.exitCode !== null || proc.child.pid === undefined) return "exited";
      return (await fetch(`${url}/-/ready`)).status === 200 ? "ready" : undefined;
    },
    waitMs,
    logs,
  );
  assert.equal(state, "ready", `prometheus could not start (is it installed?)\n${logs()}`);
  return { url, process: proc, logs };
}

interface VectorSample {
  metric: Record<string, string>;
  value: [number, string];
}

async function query(prometheus: Prometheus, promql: string): Promise<VectorSample[]> {
  const response = await fetch(
    `${prometheus.url}/api/v1/query?query=${encodeURIComponent(promql)}`,
  );
  const body = (await response.json()) as {
    status: string;
    data?: { resultType: string; result: VectorSample[] };
    error?: string;
  };
  assert.equal(body.status, "success", `${promql}: ${body.error ?? ""}`);
  assert.equal(body.data?.resultType, "vector");
  return body.data.result;
}

/** `{label value → number}` of a `sum by (label)` query. */
function byLabel(samples: VectorSample[], label: string): Record<string, number> {
  return Object.fromEntries(samples.map((s) => [s.metric[label] ?? "", Number(s.value[1])]));
}

/** Sends 5 allowed and 3 denied decisions (single and batch). */
async function sendDecisions(pdpUrl: string): Promise<{ allow: number; deny: number }> {
  // The real process reads the system clock: signed in a minute ago.
  const authTime = Math.floor(Date.now() / 1000) - 60;
  const subject = {
    type: "user",
    id: "alice",
    properties: { scope: "mcp:read", auth_time: authTime },
  };
  const context = { ip: "10.1.2.3", device: { trust: "managed" } };
  const single = async (action: string, resource: object, allow: boolean) => {
    const answer = await postJson(`${pdpUrl}/access/v1/evaluation`, {
      subject,
      action: { name: action },
      resource,
      context,
    });
    assert.equal(answer.status, 200);
    assert.equal(
      (answer.body as { decision: boolean }).decision,
      allow,
      JSON.stringify(answer.body),
    );
  };
  const readFile = { type: "tool", id: "read_file", properties: { server: "files" } };
  const writeFile = { type: "tool", id: "write_file", properties: { server: "files" } };
  await single("tools/call", readFile, true);
  await single("tools/call", readFile, true);
  await single("ping", { type: "mcp_server", id: "files" }, true);
  await single("tools/call", writeFile, false);
  await single("foo/bar", { type: "mcp_server", id: "files" }, false);
  const batch = await postJson(`${pdpUrl}/access/v1/evaluations`, {
    subject,
    action: { name: "tools/call" },
    context,
    evaluations: [{ resource: readFile }, { resource: writeFile }, { resource: readFile }],
  });
  assert.deepEqual(
    (batch.body as { evaluations: { decision: boolean }[] }).evaluations.map((e) => e.decision),
    [true, false, true],
  );
  return { allow: 5, deny: 3 };
}

async function assertScraped(
  prometheus: Prometheus,
  pdp: Spawned,
  pdpUrl: string,
  target: string,
): Promise<void> {
  const expected = await sendDecisions(pdpUrl);
  const logs = () => `${prometheus.logs()}\npdp:\n${pdp.stdout()}${pdp.stderr()}`;
  const sum = await waitFor(
    "sum(mcp_pdp_decisions_total) to reach 8 in Prometheus",
    async () => {
      const [sample] = await query(prometheus, "sum(mcp_pdp_decisions_total)");
      const value = sample === undefined ? undefined : Number(sample.value[1]);
      return value === expected.allow + expected.deny ? value : undefined;
    },
    waitMs,
    logs,
  );
  assert.equal(sum, 8);
  assert.deepEqual(
    byLabel(await query(prometheus, "sum by (outcome) (mcp_pdp_decisions_total)"), "outcome"),
    { allow: expected.allow, deny: expected.deny },
  );
  assert.deepEqual(
    byLabel(
      await query(prometheus, 'sum by (action) (mcp_pdp_decisions_total{outcome="deny"})'),
      "action",
    ),
    { "tools/call": 2, other: 1 },
  );
  const up = await query(prometheus, 'up{job="mcp-pdp"}');
  assert.deepEqual(
    up.map((s) => [s.metric.instance, s.value[1]]),
    [[target, "1"]],
  );
  const ready = (await (await fetch(`${pdpUrl}/ready`)).json()) as { revision: string };
  const info = await query(prometheus, "mcp_pdp_bundle_info");
  assert.deepEqual(
    info.map((s) => [s.metric.revision, s.metric.entrypoint, s.value[1]]),
    [[ready.revision, "mcp/authz/decision", "1"]],
  );
  const count = await query(prometheus, "sum(mcp_pdp_evaluation_duration_seconds_count)");
  assert.equal(Number(count[0]?.value[1]), 8);
}

// Concurrently: Prometheus 2.42 applies a new target set only every 5 s, so each test mostly waits.
describe("Prometheus, with the README's scrape configuration", { concurrency: true }, () => {
  test("Prometheus scrapes /metrics on the PDP's main listener", async () => {
    const port = await freePort();
    const pdpUrl = `http://127.0.0.1:${port}`;
    const pdp = startMain({ PORT: String(port), PDP_DATA: operatorData, PDP_DECISION_LOG: "off" });
    running.push(pdp);
    await waitReady(pdpUrl, pdp);
    const target = `127.0.0.1:${port}`;
    const prometheus = await startPrometheus("main-listener", target);
    await assertScraped(prometheus, pdp, pdpUrl, target);
    await prometheus.process.stop();
    await pdp.stop();
  });

  test("Prometheus scrapes PDP_METRICS_PORT; the main listener has no /metrics", async () => {
    const port = await freePort();
    const metricsPort = await freePort();
    const pdpUrl = `http://127.0.0.1:${port}`;
    const pdp = startMain({
      PORT: String(port),
      PDP_METRICS_PORT: String(metricsPort),
      PDP_DATA: operatorData,
      PDP_DECISION_LOG: "off",
    });
    running.push(pdp);
    await waitReady(pdpUrl, pdp);
    assert.equal((await rawRequest(pdpUrl, { method: "GET", path: "/metrics" })).status, 404);
    const target = `127.0.0.1:${metricsPort}`;
    const prometheus = await startPrometheus("metrics-port", target);
    await assertScraped(prometheus, pdp, pdpUrl, target);
    await prometheus.process.stop();
    await pdp.stop();
  });
});

/**
 * The real process with PDP_WORKERS=2, locked down (callers with an API key,
 * an ops key): the main thread and a worker thread listen on one port; new
 * connections reach both; one /metrics scrape, whichever thread answers it,
 * is the whole process; a reload (admin API or SIGHUP) reaches both; decision
 * records from both reach the file whole; SIGTERM drains both; by default
 * there are as many workers as available cores.
 */
import assert from "node:assert/strict";
import { randomBytes } from "node:crypto";
import { readFileSync, writeFileSync } from "node:fs";
import { availableParallelism } from "node:os";
import { join } from "node:path";
import { after, before, describe, test } from "node:test";
import { stringify as toYaml } from "yaml";
import { repoRoot, scratchDir } from "../support/opa.ts";
import {
  freePort,
  jsonLines,
  parseExposition,
  rawRequest,
  seriesOf,
  sha256Hex,
  spawnCaptured,
  startMain,
  total,
  waitFor,
  type Json,
  type Spawned,
} from "../observability/helpers.ts";
import { pdpArgs } from "../support/pdp-command.ts";

const scratch = scratchDir();
const running: Spawned[] = [];
after(async () => {
  for (const child of running) await child.stop();
  scratch.remove();
});

const pepKey = randomBytes(24).toString("base64url");
const opsKey = randomBytes(24).toString("base64url");
const configFile = join(scratch.dir, "pdp-config.yaml");
writeFileSync(
  configFile,
  toYaml({
    callers: [
      {
        name: "pep",
        api_key_sha256: [sha256Hex(pepKey)],
        permissions: ["authzen"],
        assert_subject: true,
      },
    ],
    ops: { api_key_sha256: [sha256Hex(opsKey)] },
  }),
);
const dataFile = join(scratch.dir, "operator-data.yaml");
const operatorData = readFileSync(join(repoRoot, "examples", "operator-data.yaml"), "utf8");
writeFileSync(dataFile, operatorData);
let edits = 0;
/** A real change of the operator data (a new revision): the read class's authentication age. */
function editData(): void {
  edits += 1;
  const edited = operatorData.replace("max_auth_age_s: 86400", `max_auth_age_s: ${86400 - edits}`);
  assert.notEqual(edited, operatorData);
  writeFileSync(dataFile, edited);
}

const asPep = { "x-api-key": pepKey };
const asOps = { "x-api-key": opsKey };

/** A decision with a context value large enough that its record passes 4 KiB (PIPE_BUF). */
function evaluation(marker: number): string {
  return JSON.stringify({
    subject: { type: "user", id: `user-${marker}`, properties: { scope: "mcp:read" } },
    action: { name: "tools/call" },
    resource: { type: "tool", id: "files/read_file" },
    context: { device: { trust: "managed" }, note: `${marker}:${"x".repeat(5000)}` },
  });
}

/** POSTs an evaluation on a connection of its own, so that the kernel picks a worker anew. */
async function decide(url: string, marker: number): Promise<void> {
  const answer = await rawRequest(url, {
    method: "POST",
    path: "/access/v1/evaluation",
    headers: { ...asPep, "content-type": "application/json" },
    body: evaluation(marker),
  });
  assert.equal(answer.status, 200, answer.text);
}

async function get(
  url: string,
  path: string,
): Promise<{ status: number; body: Json; text: string }> {
  const answer = await rawRequest(url, { method: "GET", path, headers: asOps });
  return {
    status: answer.status,
    text: answer.text,
    body: answer.text.startsWith("{") ? (JSON.parse(answer.text) as Json) : {},
  };
}

/** The revision each thread decides with, as /v1/status reports it. */
async function threadRevisions(url: string): Promise<Map<number, string>> {
  const status = await get(url, "/v1/status");
  assert.equal(status.status, 200, status.text);
  const workers = status.body.workers as { worker: number; revision: string }[];
  return new Map(workers.map((w) => [w.worker, w.revision]));
}

/** Waits for the "listening" line: every worker listens (20 s at most). */
async function untilListening(pdp: Spawned): Promise<void> {
  await waitFor(
    "the listening line",
    () => (pdp.stdout().includes('"message":"listening"') ? true : undefined),
    20000,
    () => pdp.stdout() + pdp.stderr(),
  );
}

describe("PDP_WORKERS=2, the real process, locked down", () => {
  let url = "";
  let pdp: Spawned;
  const decisionLog = join(scratch.dir, "decisions.jsonl");
  let decided = 0;

  before(async () => {
    const port = await freePort();
    url = `http://127.0.0.1:${port}`;
    pdp = startMain({
      PORT: String(port),
      PDP_WORKERS: "2",
      PDP_CONFIG: configFile,
      PDP_DATA: dataFile,
      PDP_DECISION_LOG: decisionLog,
      PDP_LOG_LEVEL: "info",
    });
    running.push(pdp);
    await untilListening(pdp);
    assert.equal((await get(url, "/ready")).status, 200);
  });

  test("both threads listen on the one port, and new connections reach both", async () => {
    const listening = jsonLines(pdp.stdout()).find((line) => line.message === "listening");
    assert.equal(listening?.workers, 2);
    for (let i = 0; i < 40; i++) await decide(url, decided++);
    const exposition = parseExposition((await get(url, "/metrics")).text);
    const perWorker = seriesOf(exposition, "mcp_pdp_worker_http_requests_total");
    const served = new Map(perWorker.map((s) => [s.labels.worker, s.value]));
    assert.deepEqual([...served.keys()].sort(), ["0", "1"]);
    for (const [worker, count] of served) assert.ok(count > 0, `worker ${worker} served none`);
    assert.equal(total(exposition, "mcp_pdp_workers"), 2);
  });

  test("one /metrics scrape is the whole process, whichever thread answers it", async () => {
    for (let i = 0; i < 10; i++) await decide(url, decided++);
    const sums = new Set<number>();
    const scrapedBy = new Set<string>();
    for (let i = 0; i < 8; i++) {
      const before = parseExposition((await get(url, "/metrics")).text);
      sums.add(total(before, "mcp_pdp_decisions_total"));
      // The per-thread request counters, summed, are every request the process answered.
      const served = seriesOf(before, "mcp_pdp_worker_http_requests_total");
      scrapedBy.add(served.map((s) => `${s.labels.worker}`).join(","));
      const info = seriesOf(before, "mcp_pdp_bundle_info");
      assert.equal(info.length, 1, "one revision, one series (not one per thread)");
      assert.equal(info[0]?.value, 1);
    }
    assert.deepEqual([...sums], [decided], "every scrape counts every decision");
    assert.deepEqual([...scrapedBy], ["0,1"]);
  });

  test("an admin reload reaches both threads before it answers", async () => {
    const before = await threadRevisions(url);
    assert.equal(new Set(before.values()).size, 1);
    editData();
    const reload = await rawRequest(url, {
      method: "POST",
      path: "/v1/policy/reload",
      headers: asOps,
    });
    assert.equal(reload.status, 200, reload.text);
    const outcome = JSON.parse(reload.text) as { result: string; revision: string };
    assert.equal(outcome.result, "activated");
    assert.notEqual(outcome.revision, [...before.values()][0]);
    assert.deepEqual(
      [...(await threadRevisions(url))],
      [
        [0, outcome.revision],
        [1, outcome.revision],
      ],
    );
    // Every thread answers /ready with the revision it decides with: all the new one.
    const seen = new Set<string>();
    for (let i = 0; i < 20; i++) seen.add(String((await get(url, "/ready")).body.revision));
    assert.deepEqual([...seen], [outcome.revision]);
  });

  test("SIGHUP reaches both threads", async () => {
    const before = [...(await threadRevisions(url)).values()][0];
    editData();
    pdp.child.kill("SIGHUP");
    const after = await waitFor(
      "both threads on a new revision",
      async () => {
        const revisions = new Set((await threadRevisions(url)).values());
        const [only] = revisions;
        return revisions.size === 1 && only !== before ? only : undefined;
      },
      10000,
      () => pdp.stdout(),
    );
    const seen = new Set<string>();
    for (let i = 0; i < 20; i++) seen.add(String((await get(url, "/ready")).body.revision));
    assert.deepEqual([...seen], [after]);
  });

  test("decision records from both threads reach the file whole, none lost", async () => {
    // Concurrent, on fresh connections: both threads append at once.
    const batch = Array.from({ length: 120 }, () => decided++);
    for (let i = 0; i < batch.length; i += 12) {
      await Promise.all(batch.slice(i, i + 12).map((marker) => decide(url, marker)));
    }
    const records = await waitFor(
      `${decided} records in the file`,
      () => {
        const lines = readFileSync(decisionLog, "utf8")
          .split("\n")
          .filter((l) => l !== "");
        return lines.length >= decided ? lines : undefined;
      },
      10000,
    );
    assert.equal(records.length, decided);
    const subjects = new Set<string>();
    for (const line of records) {
      const record = JSON.parse(line) as { subject?: { id?: string } };
      subjects.add(String(record.subject?.id));
    }
    assert.equal(subjects.size, decided, "every decision has its own record");
    const exposition = parseExposition((await get(url, "/metrics")).text);
    assert.equal(total(exposition, "mcp_pdp_decision_records_dropped_total"), 0);
  });
});

describe("PDP_WORKERS=2 with PDP_DECISION_LOG=stdout", () => {
  test("records of both threads on the one stdout, each line whole, none lost", async () => {
    const port = await freePort();
    const url = `http://127.0.0.1:${port}`;
    const pdp = startMain({
      PORT: String(port),
      PDP_WORKERS: "2",
      PDP_CONFIG: configFile,
      PDP_DECISION_LOG: "stdout",
    });
    running.push(pdp);
    await untilListening(pdp);
    // Records of ~5 KiB, above PIPE_BUF, from both threads at once.
    const markers = Array.from({ length: 120 }, (_, i) => 10000 + i);
    for (let i = 0; i < markers.length; i += 12) {
      await Promise.all(markers.slice(i, i + 12).map((marker) => decide(url, marker)));
    }
    const served = seriesOf(
      parseExposition((await get(url, "/metrics")).text),
      "mcp_pdp_worker_http_requests_total",
    );
    // Both series, each above zero: one missing would pass a check over the series present.
    assert.deepEqual(
      served.map((s) => [s.labels.worker, s.value > 0]),
      [
        ["0", true],
        ["1", true],
      ],
      "both threads decided",
    );
    await pdp.stop();
    // Every line of stdout is one JSON document: nothing interleaved mid-line.
    const lines = jsonLines(pdp.stdout());
    const records = lines.filter((line) => line.log === "decision");
    const subjects = new Set(records.map((r) => String((r.subject as Json | undefined)?.id)));
    assert.equal(records.length, markers.length);
    assert.equal(subjects.size, markers.length);
  });
});

describe("the default number of workers, and SIGTERM", () => {
  test("without PDP_WORKERS: one per available core; SIGTERM drains every thread, then exit 0", async () => {
    const port = await freePort();
    const url = `http://127.0.0.1:${port}`;
    // Not startMain: it runs one thread unless told otherwise; this is the default's test.
    const pdp = spawnCaptured(process.execPath, pdpArgs(), {
      PATH: process.env.PATH ?? "",
      HOME: process.env.HOME ?? "",
      PORT: String(port),
      PDP_CONFIG: configFile,
      PDP_DRAIN_DELAY_MS: "1500",
      PDP_DECISION_LOG: "off",
    });
    running.push(pdp);
    await waitFor(
      "/ready (with the ops key)",
      async () => ((await get(url, "/ready")).status === 200 ? true : undefined),
      20000,
      () => pdp.stdout() + pdp.stderr(),
    );
    const listening = jsonLines(pdp.stdout()).find((line) => line.message === "listening");
    assert.equal(listening?.workers, availableParallelism());
    assert.equal((await threadRevisions(url)).size, availableParallelism());

    pdp.child.kill("SIGTERM");
    await waitFor(
      "draining",
      () => (pdp.stdout().includes('"message":"draining"') ? true : undefined),
      5000,
    );
    // During the delay every thread says not ready, and still decides.
    for (let i = 0; i < 10; i++) {
      const ready = await get(url, "/ready");
      assert.equal(ready.status, 503, ready.text);
      assert.equal(ready.body.code, "not_ready");
    }
    await decide(url, 1);
    assert.equal(await pdp.exit, 0);
    assert.ok(jsonLines(pdp.stdout()).some((line) => line.message === "stopped"));
  });
});

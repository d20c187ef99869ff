/**
 * Decision records are bounded (PDP_DECISION_LOG_MAX_RECORD_BYTES, 16 KiB by
 * default): a request carrying a ~1 MiB context, alone or inherited by every
 * item of a batch, writes records of at most the budget, each saying what was
 * replaced by `[TRUNCATED]` and how big it was, counted in
 * mcp_pdp_decision_record_truncations_total. Before the bound, four such
 * batches wrote 1 GB of log. The real process writes to a file; the budget
 * setting itself is checked in process.
 */
import assert from "node:assert/strict";
import { existsSync, readFileSync, statSync } from "node:fs";
import { join } from "node:path";
import { after, describe, test } from "node:test";
import { scratchDir } from "../support/opa.ts";
import { postJson, startPdp, type RunningPdp } from "../support/pdp.ts";
import {
  freePort,
  jsonLines,
  operatorData,
  scrape,
  startMain,
  total,
  waitFor,
  waitReady,
  type Json,
  type Spawned,
} from "./helpers.ts";

const scratch = scratchDir();
const closers: (() => Promise<void>)[] = [];
after(async () => {
  for (const close of closers) await close();
  scratch.remove();
});

const budget = 16384;
/** Just under the default 1 MiB body limit once the rest of the request is added. */
const blob = "x".repeat(1024 * 1024 - 2000);
const item = {
  subject: {
    type: "user",
    id: "alice",
    // Signed in a minute ago (the PDP's clock is the real one here).
    properties: { scopes: ["mcp:read"], auth_time: Math.floor(Date.now() / 1000) - 60 },
  },
  action: { name: "tools/call" },
  resource: { type: "tool", id: "files/read_file" },
};
const device = { id: "laptop-42", trust: "managed" };
const hugeContext = { ip: "10.1.2.3", device, session: { id: "s-1", blob } };

interface Truncated {
  field: string;
  bytes: number;
}

async function startWithFile(
  env: Record<string, string>,
): Promise<{ url: string; file: string; started: Spawned }> {
  const port = await freePort();
  const url = `http://127.0.0.1:${port}`;
  const file = join(scratch.dir, `decisions-${port}.jsonl`);
  const started = startMain({
    PORT: String(port),
    PDP_DATA: operatorData,
    PDP_DECISION_LOG: file,
    ...env,
  });
  closers.push(() => started.stop());
  await waitReady(url, started);
  return { url, file, started };
}

/** The file's records once `count` of them are there. */
async function records(file: string, count: number): Promise<{ lines: Json[]; bytes: number }> {
  return waitFor(
    `${count} records in ${file}`,
    () => {
      if (!existsSync(file)) return undefined;
      const text = readFileSync(file, "utf8");
      const lines = jsonLines(text);
      return lines.length >= count ? { lines, bytes: statSync(file).size } : undefined;
    },
    20000,
  );
}

describe("the real process, PDP_DECISION_LOG=<file>", () => {
  test("4 evaluations with a ~1 MiB context (input logged too): 4 records within the budget", async () => {
    const { url, file } = await startWithFile({ PDP_DECISION_LOG_INPUT: "true" });
    const body = JSON.stringify({ ...item, context: hugeContext });
    for (let i = 0; i < 4; i++) {
      const answer = await postJson(`${url}/access/v1/evaluation`, body);
      assert.equal(answer.status, 200);
      assert.equal((answer.body as { decision: boolean }).decision, true);
    }
    const { lines, bytes } = await records(file, 4);
    assert.equal(lines.length, 4);
    assert.ok(bytes <= 4 * budget, `${bytes} bytes for 4 records`);
    for (const line of lines) {
      const text = JSON.stringify(line);
      assert.ok(text.length <= budget, `${text.length} bytes`);
      const context = line.context as Json;
      assert.equal(context.session, "[TRUNCATED]");
      assert.equal(context.ip, "10.1.2.3", "what fits is kept");
      assert.deepEqual(context.device, device);
      const truncated = line.truncated as Truncated[];
      const fields = truncated.map((t) => t.field).sort();
      assert.deepEqual(fields, ["/context/session", "/input/context"]);
      for (const entry of truncated) assert.ok(entry.bytes > blob.length, JSON.stringify(entry));
      // The decision's facts are whole.
      assert.deepEqual(line.resource, { type: "tool", id: "files/read_file", server: "files" });
      assert.equal(line.outcome, "allow");
    }
    const { exposition } = await scrape(url);
    assert.equal(total(exposition, "mcp_pdp_decision_record_truncations_total"), 4);
  });

  test("a batch of 256 items inheriting a ~1 MiB context: 256 records within the budget", async () => {
    // 256 MiB of policy input: refused by default (batch_too_large); allowed here to reach the log.
    const { url, file } = await startWithFile({
      PDP_MAX_BATCH_INPUT_BYTES: String(512 * 1024 * 1024),
    });
    const body = JSON.stringify({
      ...item,
      context: hugeContext,
      evaluations: Array.from({ length: 256 }, () => ({})),
    });
    const started = performance.now();
    const answer = await postJson(`${url}/access/v1/evaluations`, body);
    const ms = performance.now() - started;
    assert.equal(answer.status, 200);
    const { lines, bytes } = await records(file, 256);
    assert.equal(lines.length, 256);
    assert.ok(bytes <= 256 * budget, `${bytes} bytes for 256 records`);
    for (const line of lines) {
      assert.ok(JSON.stringify(line).length <= budget);
      assert.deepEqual(line.truncated, [
        { field: "/context/session", bytes: blob.length + '{"id":"s-1","blob":""}'.length },
      ]);
    }
    const { exposition } = await scrape(url);
    assert.equal(total(exposition, "mcp_pdp_decision_record_truncations_total"), 256);
    // One request used to write 256 MiB of log and hold the event loop for ~0.7 s.
    assert.ok(ms < 5000, `answered in ${Math.round(ms)} ms`);
  });
});

describe("PDP_DECISION_LOG_MAX_RECORD_BYTES", () => {
  let pdp: RunningPdp;

  test("2048: a 3 KB context value is replaced; a normal record is whole, with no `truncated`", async () => {
    pdp = await startPdp({
      env: { PDP_DATA: operatorData, PDP_DECISION_LOG_MAX_RECORD_BYTES: "2048" },
    });
    closers.push(() => pdp.close());
    const noted = { ...device, note: "n".repeat(3000) };
    const big = await postJson(`${pdp.url}/access/v1/evaluation`, {
      ...item,
      context: { device: noted },
    });
    assert.equal(big.status, 200);
    const normal = await postJson(`${pdp.url}/access/v1/evaluation`, {
      ...item,
      context: { device },
    });
    assert.equal(normal.status, 200);
    const [first, second] = pdp.decisions;
    assert.ok(first !== undefined && second !== undefined);
    assert.equal((first.context as Json).device, "[TRUNCATED]");
    assert.deepEqual(first.truncated, [
      { field: "/context/device", bytes: Buffer.byteLength(JSON.stringify(noted)) },
    ]);
    assert.ok(JSON.stringify(first).length <= 2048);
    assert.deepEqual((second.context as Json).device, device);
    assert.equal(second.truncated, undefined);
    const { exposition } = await scrape(pdp.url);
    assert.equal(total(exposition, "mcp_pdp_decision_record_truncations_total"), 1);
  });
});

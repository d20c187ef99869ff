/**
 * `/metrics` is behind the ops guard as soon as `callers` are configured,
 * even with `/health` and `/ready` open: decision counts, reasons and tool
 * names describe the traffic. `ops.metrics_open: true` opts out. Without
 * callers (loopback development) it stays open unless ops keys close it.
 */
import assert from "node:assert/strict";
import { createHash, randomBytes } from "node:crypto";
import { writeFileSync } from "node:fs";
import { join } from "node:path";
import { after, test } from "node:test";
import { ConfigError, loadConfig } from "../../src/config/index.ts";
import { scratchDir } from "../support/opa.ts";
import { startPdp, type RunningPdp } from "../support/pdp.ts";

const scratch = scratchDir();
const running: RunningPdp[] = [];
after(async () => {
  for (const pdp of running) await pdp.close();
  scratch.remove();
});

const sha256 = (text: string) => createHash("sha256").update(text, "utf8").digest("hex");
const keys = {
  pep: randomBytes(24).toString("base64url"),
  monitor: randomBytes(24).toString("base64url"),
  ops: randomBytes(24).toString("base64url"),
};
const pep = { name: "pep", api_key_sha256: [sha256(keys.pep)] };
const monitor = { name: "monitor", api_key_sha256: [sha256(keys.monitor)], permissions: ["ops"] };

let files = 0;
function configFile(config: unknown): string {
  files += 1;
  const file = join(scratch.dir, `config-${files}.json`);
  writeFileSync(file, JSON.stringify(config));
  return file;
}

async function start(config?: unknown): Promise<RunningPdp> {
  const pdp = await startPdp({
    env: config === undefined ? {} : { PDP_CONFIG: configFile(config) },
  });
  running.push(pdp);
  return pdp;
}

async function status(pdp: RunningPdp, path: string, key?: string): Promise<number> {
  const response = await fetch(`${pdp.url}${path}`, {
    headers: key === undefined ? {} : { "x-api-key": key },
  });
  await response.arrayBuffer();
  return response.status;
}

test("callers configured, ops open: /health and /ready stay open, /metrics needs an ops credential", async () => {
  const pdp = await start({ callers: [pep, monitor] });
  assert.equal(await status(pdp, "/health"), 200);
  assert.equal(await status(pdp, "/ready"), 200);
  assert.equal(await status(pdp, "/metrics"), 401);
  assert.equal(
    await status(pdp, "/metrics", keys.pep),
    403,
    "a decision caller is not an ops caller",
  );
  assert.equal(await status(pdp, "/metrics", keys.monitor), 200);
});

test("with ops keys, the ops key opens /metrics", async () => {
  const pdp = await start({ callers: [pep], ops: { api_key_sha256: [sha256(keys.ops)] } });
  assert.equal(await status(pdp, "/metrics"), 401);
  assert.equal(await status(pdp, "/metrics", keys.ops), 200);
});

test("ops.metrics_open: true opts out", async () => {
  const pdp = await start({ callers: [pep], ops: { metrics_open: true } });
  assert.equal(await status(pdp, "/metrics"), 200);
});

test("no callers: /metrics is open as before (loopback development)", async () => {
  assert.equal(await status(await start(), "/metrics"), 200);
});

test("a closed /metrics nobody can open: a startup warning; explicitly closed: a refusal", async () => {
  const pdp = await start({ callers: [pep] });
  assert.equal(await status(pdp, "/metrics"), 401);
  assert.ok(
    pdp.logs.some(
      (line) => line.level === "warn" && String(line.message).startsWith("/metrics is closed"),
    ),
    "the operator is told at startup",
  );
  const file = configFile({ ops: { metrics_open: false } });
  assert.throws(
    () => loadConfig({ PDP_CONFIG: file }),
    (error: unknown) => {
      assert.ok(error instanceof ConfigError);
      assert.deepEqual(error.problems, [
        `PDP_CONFIG ${file}: ops.metrics_open: false, but no ops key and no caller with the ops permission: /metrics could never be scraped`,
      ]);
      return true;
    },
  );
});

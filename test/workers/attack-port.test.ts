/**
 * An attack on the shared port (issue 11, item 2) that found a fault, now
 * fixed (a plain bind claims the port first); the test asserts what should happen.
 *
 * With PDP_WORKERS ≥ 2 (the default on a multi-core machine) every thread
 * listens with SO_REUSEPORT, so a second PDP started on the same port by the
 * same user (an old version still running during a deploy, a second unit, any
 * process of that user) is not refused with EADDRINUSE: it binds too, and the
 * kernel splits new connections between two PDPs deciding on different
 * policies.
 */
import assert from "node:assert/strict";
import { join } from "node:path";
import { after, test } from "node:test";
import { repoRoot } from "../support/opa.ts";
import { freePort } from "../support/ports.ts";
import { startMain, waitForLog, waitUntil, type MainProcess } from "../support/main-process.ts";

const started: MainProcess[] = [];
after(async () => {
  for (const pdp of started) await pdp.kill();
});

test("a second PDP on a port a PDP with workers listens on is refused (EADDRINUSE), not given half the connections", async () => {
  const port = await freePort();
  const env = {
    PORT: String(port),
    PDP_WORKERS: "2",
    PDP_DECISION_LOG: "off",
    PDP_DRAIN_DELAY_MS: "0",
  };
  const first = startMain({ ...env, PDP_DATA: join(repoRoot, "examples", "operator-data.yaml") });
  started.push(first);
  await waitForLog(first, "listening");
  // The same bundle without the operator data: another revision, other decisions.
  const second = startMain(env);
  started.push(second);
  await waitUntil(
    "the second PDP to start or to refuse",
    () =>
      second.exited() ||
      second
        .logLines()
        .some((line) => line.message === "listening" || line.message === "cannot listen"),
    20000,
  );
  const listened = second.logLines().some((line) => line.message === "listening");
  assert.equal(
    listened,
    false,
    "the second PDP listens on the first one's port: connections are split between two policies",
  );
});

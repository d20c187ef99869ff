/**
 * An attack on decision records with several workers (issue 11, item 2) that
 * found a fault, now fixed; the test asserts what should happen.
 *
 * PDP_DECISION_LOG=/dev/stdout (a path, as containers often configure it, not
 * the `stdout` keyword) is a pipe: every thread opens its own descriptor on it
 * and writes batches of lines with one writev each. A pipe makes only writes
 * of up to PIPE_BUF (4096) bytes atomic; a longer batch into a pipe its reader
 * drains slowly is written in part, and another thread's batch lands in the
 * middle of a line.
 */
import assert from "node:assert/strict";
import { spawn } from "node:child_process";
import { once } from "node:events";
import { join } from "node:path";
import { setTimeout as sleep } from "node:timers/promises";
import { test } from "node:test";
import { rawRequest } from "../observability/helpers.js";
import { repoRoot } from "../support/opa.js";
import { freePort } from "../support/ports.js";

function evaluation(marker: number): string {
  return JSON.stringify({
    subject: { type: "user", id: `user-${marker}`, properties: { scope: "mcp:read" } },
    action: { name: "tools/call" },
    resource: { type: "tool", id: "files/read_file" },
    context: { device: { trust: "managed" }, note: `${marker}:${"x".repeat(6000)}` },
  });
}

test("PDP_DECISION_LOG=/dev/stdout with 2 workers and a slow reader: every record a whole line", async () => {
  const port = await freePort();
  const child = spawn(process.execPath, ["--import", "tsx", join(repoRoot, "src", "main.ts")], {
    cwd: repoRoot,
    env: {
      PATH: process.env.PATH ?? "",
      HOME: process.env.HOME ?? "",
      PORT: String(port),
      PDP_WORKERS: "2",
      PDP_DATA: join(repoRoot, "examples", "operator-data.yaml"),
      PDP_DECISION_LOG: "/dev/stdout",
      PDP_DIAGNOSTIC_LOG: "stderr",
      PDP_DRAIN_DELAY_MS: "0",
    },
    stdio: ["ignore", "pipe", "pipe"],
  });
  try {
    let diagnostics = "";
    child.stderr.on("data", (chunk: Buffer) => (diagnostics += chunk.toString()));
    const chunks: Buffer[] = [];
    child.stdout.on("data", (chunk: Buffer) => chunks.push(chunk));
    const deadline = Date.now() + 20000;
    while (!diagnostics.includes('"message":"listening"')) {
      assert.ok(Date.now() < deadline, `no listening line: ${diagnostics}`);
      await sleep(50);
    }
    // A slow reader: the pipe is read for 5 ms every 50 ms.
    const slow = { reading: true };
    const reader = (async () => {
      while (slow.reading) {
        child.stdout.pause();
        await sleep(45);
        child.stdout.resume();
        await sleep(5);
      }
      child.stdout.resume();
    })();
    const total = 400;
    let next = 0;
    const started = Date.now();
    try {
      await Promise.all(
        Array.from({ length: 48 }, async () => {
          while (next < total) {
            const marker = next++;
            const answer = await rawRequest(`http://127.0.0.1:${port}`, {
              method: "POST",
              path: "/access/v1/evaluation",
              headers: { "content-type": "application/json" },
              body: evaluation(marker),
            });
            assert.equal(answer.status, 200, answer.text);
          }
        }),
      );
    } finally {
      slow.reading = false;
      await reader;
    }
    console.log("decided in", Date.now() - started, "ms");
    const lines = () =>
      Buffer.concat(chunks)
        .toString("utf8")
        .split("\n")
        .filter((line) => line !== "");
    const settle = Date.now() + 10000;
    while (lines().length < total && Date.now() < settle) await sleep(100);
    const broken = lines().filter((line) => {
      try {
        JSON.parse(line);
        return false;
      } catch {
        return true;
      }
    });
    assert.deepEqual(
      broken.map((line) => line.slice(0, 120)),
      [],
      `${broken.length} of ${lines().length} lines are not one whole record`,
    );
  } finally {
    child.kill("SIGKILL");
    await once(child, "exit");
  }
});

/**
 * An attack on decision records with several workers (issue 11, item 2) that
 * found a fault; the test asserts what should happen and is `todo` while it
 * does not (drop the `todo` with the fix).
 *
 * PDP_DECISION_LOG=/dev/stdout (a path, as containers often configure it, not
 * the `stdout` keyword) is a pipe when stdout is one (as is a FIFO, used here
 * in its place: node's spawn gives a socket, not a pipe, and /dev/stdout on a
 * socket cannot be opened): every thread opens its own descriptor on it
 * and writes batches of lines with one writev each. A pipe makes only writes
 * of up to PIPE_BUF (4096) bytes atomic; a longer batch into a pipe its reader
 * drains slowly is written in part, and another thread's batch lands in the
 * middle of a line.
 */
import assert from "node:assert/strict";
import { execFileSync } from "node:child_process";
import { closeSync, constants, openSync, readSync } from "node:fs";
import { join } from "node:path";
import { setTimeout as sleep } from "node:timers/promises";
import { test } from "node:test";
import { rawRequest } from "../observability/helpers.ts";
import { repoRoot, scratchDir } from "../support/opa.ts";
import { freePort } from "../support/ports.ts";
import { startMain, waitForLog } from "../support/main-process.ts";

function evaluation(marker: number): string {
  return JSON.stringify({
    subject: { type: "user", id: `user-${marker}`, properties: { scope: "mcp:read" } },
    action: { name: "tools/call" },
    resource: { type: "tool", id: "files/read_file" },
    context: { device: { trust: "managed" }, note: `${marker}:${"x".repeat(6000)}` },
  });
}

test("a pipe as PDP_DECISION_LOG (/dev/stdout piped, a FIFO) with 2 workers and a slow reader: every record a whole line", async () => {
  const scratch = scratchDir();
  const fifo = join(scratch.dir, "decisions.fifo");
  execFileSync("mkfifo", [fifo]);
  // The reader first: the PDP opens the FIFO without blocking, and refuses one nobody reads.
  const readEnd = openSync(fifo, constants.O_RDONLY | constants.O_NONBLOCK);
  const port = await freePort();
  const pdp = startMain({
    PORT: String(port),
    PDP_WORKERS: "2",
    PDP_DATA: join(repoRoot, "examples", "operator-data.yaml"),
    PDP_DECISION_LOG: fifo,
    PDP_DRAIN_DELAY_MS: "0",
  });
  const chunks: Buffer[] = [];
  /** Reads at most `bytes` of what the FIFO holds now. */
  const drain = (bytes: number): void => {
    const buffer = Buffer.alloc(bytes);
    try {
      const read = readSync(readEnd, buffer, 0, bytes, null);
      if (read > 0) chunks.push(buffer.subarray(0, read));
    } catch (error) {
      if ((error as NodeJS.ErrnoException).code !== "EAGAIN") throw error;
    }
  };
  try {
    await waitForLog(pdp, "listening");
    // A slow reader: 1000 bytes every 10 ms.
    const slow = { reading: true };
    const reader = (async () => {
      while (slow.reading) {
        drain(1000);
        await sleep(10);
      }
    })();
    const total = 400;
    let next = 0;
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
    const received = () => Buffer.concat(chunks).toString("utf8");
    // Only what ends in a newline is a line yet: the last record may still be arriving.
    const lines = () => received().split("\n").slice(0, -1);
    const settle = Date.now() + 10000;
    while (lines().length < total && Date.now() < settle) {
      drain(1 << 16);
      await sleep(20);
    }
    assert.equal(lines().length, total, "one record per decision, none lost");
    assert.equal(received().endsWith("\n"), true, "the last record ends its line");
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
    await pdp.kill();
    closeSync(readEnd);
    scratch.remove();
  }
});

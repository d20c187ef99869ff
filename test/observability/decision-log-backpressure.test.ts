/**
 * No decision record is lost silently: a destination that stops accepting
 * writes must not hold records without bound (past the limit new records are
 * dropped and counted as `backpressure`), one that refuses them (ENOSPC, EIO)
 * has each record counted as `write_error`, and one JSON cannot hold is a
 * `serialize_error`; failure reports are rate-limited.
 */
import assert from "node:assert/strict";
import { Writable } from "node:stream";
import { closeSync, existsSync, readFileSync } from "node:fs";
import { join } from "node:path";
import { test } from "node:test";
import { setTimeout as sleep } from "node:timers/promises";
import { JsonLinesDecisionLog } from "../../src/observability/decision-log.ts";
import {
  FailureReporter,
  FileLineWriter,
  openForAppending,
  StreamLineWriter,
  type FailureSummary,
} from "../../src/observability/log-destination.ts";
import { scratchDir } from "../support/opa.ts";

test("records beyond maxPending are dropped and counted while the destination is stuck", async () => {
  let accepted = 0;
  const release: (() => void)[] = [];
  // A destination that takes records but never finishes writing them until released.
  const stuck = new Writable({
    write(_chunk, _encoding, callback) {
      accepted += 1;
      release.push(callback);
    },
  });
  let dropped = 0;
  const log = new JsonLinesDecisionLog(new StreamLineWriter(stuck), {
    maxPending: 50,
    onDrop: (reason) => {
      assert.equal(reason, "backpressure");
      dropped += 1;
    },
  });
  const pad = "x".repeat(2048);
  for (let i = 0; i < 500; i++) log.record({ decision_id: String(i), pad });
  assert.ok(dropped > 0, "some records were dropped");
  // The stream buffer holds about maxPending KiB: ~25 records of 2 KiB here.
  const kept = 500 - dropped;
  assert.ok(kept >= 20 && kept <= 60, `kept ${kept} records before dropping`);
  assert.ok(accepted < 500, "the stuck destination did not receive everything");

  // Once the destination drains, records flow again.
  for (const callback of release.splice(0)) callback();
  await new Promise((resolve) => setTimeout(resolve, 50));
  for (const callback of release.splice(0)) callback();
  await new Promise((resolve) => setTimeout(resolve, 50));
  const droppedBefore = dropped;
  log.record({ decision_id: "after" });
  assert.equal(dropped, droppedBefore, "a record after the drain is not dropped");
});

test("a file destination slower than the decision rate drops past the limit, then writes the rest", async () => {
  const scratch = scratchDir();
  try {
    const file = join(scratch.dir, "decisions.jsonl");
    let dropped = 0;
    const log = new JsonLinesDecisionLog(new FileLineWriter(openForAppending("TEST_LOG", file)), {
      maxPending: 100,
      onDrop: (reason) => {
        assert.equal(reason, "backpressure");
        dropped += 1;
      },
    });
    // Synchronously, as a saturated event loop would: the file cannot keep up.
    for (let i = 0; i < 5000; i++) log.record({ decision_id: String(i) });
    assert.ok(dropped > 0, "records past the limit were dropped");
    let lines = 0;
    for (let wait = 0; wait < 100; wait++) {
      await new Promise((resolve) => setTimeout(resolve, 50));
      const text = existsSync(file) ? readFileSync(file, "utf8") : "";
      lines = text.split("\n").filter((line) => line !== "").length;
      if (lines === 5000 - dropped) break;
    }
    assert.equal(lines, 5000 - dropped, "every record not dropped reached the file");
  } finally {
    scratch.remove();
  }
});

test("a destination that refuses writes (/dev/full): each record is a write_error, the next is still tried", async () => {
  const fd = openForAppending("TEST_LOG", "/dev/full");
  try {
    const drops: { reason: string; error: unknown }[] = [];
    const log = new JsonLinesDecisionLog(new FileLineWriter(fd), {
      onDrop: (reason, error) => drops.push({ reason, error }),
    });
    for (let i = 0; i < 5; i++) log.record({ decision_id: String(i) });
    const count = () => drops.length;
    for (let wait = 0; wait < 100 && count() < 5; wait++) await sleep(10);
    assert.equal(count(), 5);
    for (const drop of drops) {
      assert.equal(drop.reason, "write_error");
      assert.equal((drop.error as NodeJS.ErrnoException).code, "ENOSPC");
    }
    // Not destroyed by the failure (fs.WriteStream would be): a later record is tried again.
    log.record({ decision_id: "later" });
    for (let wait = 0; wait < 100 && count() < 6; wait++) await sleep(10);
    assert.equal(count(), 6);
  } finally {
    closeSync(fd);
  }
});

test("a stream that errors: the records are counted and the error event does not end the process", async () => {
  const failing = new Writable({
    write(_chunk, _encoding, callback) {
      const error: NodeJS.ErrnoException = new Error("EIO: i/o error, write");
      error.code = "EIO";
      callback(error);
    },
  });
  const reasons: string[] = [];
  const log = new JsonLinesDecisionLog(new StreamLineWriter(failing), {
    onDrop: (reason) => reasons.push(reason),
  });
  log.record({ decision_id: "1" });
  log.record({ decision_id: "2" });
  for (let wait = 0; wait < 100 && reasons.length < 2; wait++) await sleep(10);
  // Without the writer's listener the stream's `error` event would be an uncaught exception here.
  assert.ok(failing.listenerCount("error") > 0);
  assert.deepEqual(reasons, ["write_error", "write_error"]);
});

test("a record JSON cannot hold is a serialize_error, not an exception in the request path", () => {
  const reasons: string[] = [];
  const lines: string[] = [];
  const sink = new Writable({
    write(chunk: Buffer, _encoding, callback) {
      lines.push(chunk.toString());
      callback();
    },
  });
  const log = new JsonLinesDecisionLog(new StreamLineWriter(sink), {
    onDrop: (reason) => reasons.push(reason),
  });
  assert.doesNotThrow(() => {
    log.record({ decision_id: "big", value: 10n });
  });
  assert.deepEqual(reasons, ["serialize_error"]);
});

test("failure reports are rate-limited: the first at once, the rest summed into one per interval", () => {
  let now = 1_000_000;
  const summaries: FailureSummary[] = [];
  const reporter = new FailureReporter((summary) => summaries.push(summary), {
    intervalMs: 10_000,
    now: () => now,
  });
  reporter.report("write_error", new Error("ENOSPC: no space left on device, write"));
  assert.equal(summaries.length, 1, "the first failure is reported at once");
  assert.deepEqual(summaries[0]?.counts, { write_error: 1 });
  for (let i = 0; i < 999; i++) {
    now += 5;
    reporter.report(i % 2 === 0 ? "write_error" : "backpressure", new Error("ENOSPC"));
  }
  assert.equal(summaries.length, 1, "1 000 failures within 5 s: still one line");
  now += 6_000;
  reporter.report("write_error", new Error("ENOSPC: again"));
  assert.equal(summaries.length, 2, "the interval passed: the sum so far");
  const second = summaries.at(1);
  assert.ok(second !== undefined);
  assert.deepEqual(second.counts, { write_error: 501, backpressure: 499 });
  assert.equal(second.lastError, "ENOSPC: again");
});

/**
 * A decision log whose destination stops accepting writes must not hold
 * records without bound: past the limit new records are dropped and counted.
 */
import assert from "node:assert/strict";
import { Writable } from "node:stream";
import { existsSync, readFileSync } from "node:fs";
import { join } from "node:path";
import { test } from "node:test";
import { WinstonDecisionLog } from "../../src/observability/decision-log.js";
import { scratchDir } from "../support/opa.js";

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
  const log = new WinstonDecisionLog(
    { stream: stuck },
    {
      maxPending: 50,
      onDrop: () => {
        dropped += 1;
      },
    },
  );
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
    const log = new WinstonDecisionLog(
      { file },
      {
        maxPending: 100,
        onDrop: () => {
          dropped += 1;
        },
      },
    );
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

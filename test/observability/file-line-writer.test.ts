/**
 * FileLineWriter gathers the lines of one event-loop turn into one write:
 * every line still reaches the file whole and in order, each `done` is told
 * once, and the backlog counts them until they are written.
 */
import assert from "node:assert/strict";
import { closeSync, readFileSync } from "node:fs";
import { join } from "node:path";
import { test } from "node:test";
import { FileLineWriter, openForAppending } from "../../src/observability/log-destination.ts";
import { scratchDir } from "../support/opa.ts";

const lineOf = (index: number): string => `{"n":${index}}\n`;

test("lines of one turn and of later turns arrive whole, in order, each done told once", async (t) => {
  const scratch = scratchDir();
  const fd = openForAppending("TEST_LOG", join(scratch.dir, "lines.log"));
  t.after(() => {
    closeSync(fd);
    scratch.remove();
  });
  const writer = new FileLineWriter(fd);
  const lines = 250;
  const told: number[] = [];
  let allTold: () => void = () => undefined;
  const everyLineTold = new Promise<void>((resolve) => (allTold = resolve));
  const done = (index: number) => (error: unknown) => {
    assert.equal(error, undefined);
    told.push(index);
    if (told.length === lines) allTold();
  };

  let queued = 0;
  for (let index = 0; index < 100; index++) {
    writer.write(lineOf(index), done(index));
    queued += lineOf(index).length;
  }
  // Gathered for this turn's write, not yet written: the backlog shows every byte.
  assert.equal(writer.pendingBytes, queued);
  assert.deepEqual(told, []);
  await new Promise((resolve) => setImmediate(resolve));
  // The first batch may be in flight now; these join the next one.
  for (let index = 100; index < lines; index++) writer.write(lineOf(index), done(index));
  await everyLineTold;

  const indices = Array.from({ length: lines }, (_, index) => index);
  assert.deepEqual(told, indices);
  assert.equal(writer.pendingBytes, 0);
  assert.equal(readFileSync(join(scratch.dir, "lines.log"), "utf8"), indices.map(lineOf).join(""));
});

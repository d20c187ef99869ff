import assert from "node:assert/strict";
import { describe, test } from "node:test";
import { InputJsonCache, inputJsonBytes } from "../../src/policy/input-json.ts";

const text = (bytes: ArrayBuffer | undefined) =>
  bytes === undefined ? undefined : Buffer.from(bytes).toString("utf8");

describe("inputJsonBytes: JSON.stringify's bytes, with a batch's shared parts encoded once", () => {
  const shared = { device: { trust: "managed", tags: ["a", "ü"] }, blob: { k: "x".repeat(1000) } };
  const inputs: unknown[] = [
    { subject: { id: "u", properties: { scopes: ["mcp:read"] } }, context: shared },
    { a: undefined, b: () => 1, c: Symbol("s"), d: null, e: [undefined, 1], f: { g: undefined } },
    { context: { time: new Date(0), nested: { at: new Date(0) } } },
    { 'key "quoted" \u2028': { ключ: { deep: "😀" } }, "": 0 },
    [1, { a: { b: { c: 1 } } }],
    "text",
    42,
    null,
    false,
    { context: { skipped: undefined }, other: { inner: { fn: () => 1 } } },
  ];
  for (const [index, input] of inputs.entries()) {
    test(`input ${index} is byte for byte JSON.stringify, with and without a cache`, () => {
      const expected = JSON.stringify(input);
      assert.equal(text(inputJsonBytes(input)), expected);
      assert.equal(text(inputJsonBytes(input, new InputJsonCache())), expected);
    });
  }

  test("what JSON cannot represent is undefined; cycles and BigInt throw", () => {
    assert.equal(inputJsonBytes(undefined, new InputJsonCache()), undefined);
    const cycle: Record<string, unknown> = {};
    cycle.self = { again: cycle };
    assert.throws(() => inputJsonBytes({ context: cycle }, new InputJsonCache()), TypeError);
    assert.throws(() => inputJsonBytes({ context: { n: 1n } }, new InputJsonCache()), TypeError);
  });

  test("a shared object is encoded once per cache, and each item still gets its own bytes", () => {
    const cache = new InputJsonCache();
    let calls = 0;
    const counted = {
      toJSON() {
        calls += 1;
        return { big: "y".repeat(100) };
      },
    };
    const context = { device: { trust: "managed" }, counted };
    for (let item = 0; item < 50; item++) {
      const input = { resource: { id: `files/t${item}` }, context: { ...context, time: item } };
      const expected = JSON.stringify(input);
      const before = calls;
      assert.equal(text(inputJsonBytes(input, cache)), expected);
      assert.equal(calls - before, item === 0 ? 1 : 0, `item ${item}`);
    }
    // Another batch, another cache: nothing is remembered across requests.
    const before = calls;
    inputJsonBytes({ context }, new InputJsonCache());
    assert.equal(calls - before, 1);
  });

  test("the buffer is standalone: its own ArrayBuffer, exactly the JSON's length", () => {
    const bytes = inputJsonBytes({ context: shared }, new InputJsonCache());
    assert.ok(bytes instanceof ArrayBuffer);
    assert.equal(bytes.byteLength, Buffer.byteLength(JSON.stringify({ context: shared })));
  });
});

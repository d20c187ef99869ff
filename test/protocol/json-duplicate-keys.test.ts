import assert from "node:assert/strict";
import { describe, test } from "node:test";
import { findDuplicateKey } from "../../src/protocol/json-duplicate-keys.ts";
import { parseJsonDocument } from "../../src/protocol/json-body.ts";
import { ApiError } from "../../src/errors.ts";

const limits = { maxBytes: 1 << 20, maxDepth: 32 };

describe("findDuplicateKey: a key twice in one object", () => {
  for (const [text, key] of [
    ['{"name":"delete_repo","name":"read_file"}', "name"],
    ['{"a":1,"b":{"x":1},"b":2}', "b"],
    ['{"params":{"name":"x","arguments":{},"name":"y"}}', "name"],
    ['[{"a":1},{"b":1,"b":2}]', "b"],
    // Escapes spell one key two ways.
    ['{"name":"a","\\u006eame":"b"}', "name"],
    ['{"k\\"q":1,"k\\"q":2}', 'k"q'],
  ] as const) {
    test(`${text} → ${key}`, () => {
      assert.equal(findDuplicateKey(text)?.key, key);
    });
  }

  for (const text of [
    '{"name":"a","Name":"b"}',
    '{"a":{"x":1},"b":{"x":1}}',
    '[{"a":1},{"a":1}]',
    '{"a":["a","a"],"b":"a"}',
    '{"a":"{\\"a\\":1,\\"a\\":2}"}',
    '"text"',
    "[]",
    "{}",
  ]) {
    test(`${text}: no duplicate`, () => {
      assert.equal(findDuplicateKey(text), undefined);
    });
  }

  test("parseJsonDocument refuses duplicates only when asked, with a pointer", () => {
    const body = Buffer.from('{"params":{"name":"delete_repo","name":"read_file"}}');
    assert.deepEqual(parseJsonDocument(body, limits), { params: { name: "read_file" } });
    assert.throws(
      () => parseJsonDocument(body, limits, { refuseDuplicateKeys: true }),
      (error: unknown) => error instanceof ApiError && error.code === "duplicate_key",
    );
  });
});

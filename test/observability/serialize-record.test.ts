/**
 * serializeRecord takes JSON.stringify's fast path when no string can hold a
 * token; its output is always exactly what the redacting replacer writes.
 */
import assert from "node:assert/strict";
import { test } from "node:test";
import { redactText, serializeRecord } from "../../src/observability/masking.ts";

/** The reference: every string value redacted during serialization. */
const reference = (record: Record<string, unknown>): string =>
  JSON.stringify(record, (_key, value: unknown) =>
    typeof value === "string" ? redactText(value) : value,
  );

const jwt = "eyJhbGciOiJFUzI1NiJ9.eyJzdWIiOiJhbGljZSJ9.c2lnbmF0dXJl";

test("records with and without token-like text serialize as the redacting replacer does", () => {
  const records: Record<string, unknown>[] = [
    { log: "decision", subject: { id: "alice" }, reasons: [], n: 1.5, ok: true, none: null },
    { subject: { id: jwt }, context: { session: { id: `Bearer ${jwt}` } } },
    { list: ["a", jwt, 3, { deep: [jwt] }] },
    // `eyJ` without a token's shape, and in a key: nothing to redact, the slow pass is harmless.
    { note: "eyJ alone", [`key-${jwt}`]: "value", at: new Date(0) },
    { escaped: 'quote " and \\ and \u2028 and \ud800', missing: undefined },
  ];
  for (const record of records) assert.equal(serializeRecord(record), reference(record));
  assert.ok(!serializeRecord(records[1] as Record<string, unknown>).includes(jwt));
});

test("what JSON cannot hold still throws", () => {
  assert.throws(() => serializeRecord({ big: 1n }), TypeError);
  const cycle: Record<string, unknown> = {};
  cycle.self = cycle;
  assert.throws(() => serializeRecord(cycle), TypeError);
});

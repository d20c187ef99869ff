/**
 * The per-record byte budget: sizes measured without serializing agree with
 * JSON.stringify; a record within the budget is left alone (the same object);
 * an oversized one loses its largest request-derived values to
 * `[TRUNCATED]`, says which and how big they were, fits, and never changes
 * the objects it shares with the request.
 */
import assert from "node:assert/strict";
import { test } from "node:test";
import { RecordBudget, truncatedMarker } from "../../src/observability/record-budget.ts";
import { serializeRecord } from "../../src/observability/masking.ts";

const budget = new RecordBudget(16384, ["ip", "device", "location", "session"]);
const bytes = (value: unknown): number => Buffer.byteLength(JSON.stringify(value), "utf8");

/** A record shaped as decision-observer.ts builds them. */
function record(overrides: Record<string, unknown> = {}): Record<string, unknown> {
  return {
    log: "decision",
    decision_id: "83343209-0b85-4c5e-a07b-cd445039d659",
    timestamp: "2026-11-26T05:22:43.333Z",
    req_id: "demo-1",
    trace_id: null,
    path: "mcp/authz/decision",
    endpoint: "evaluation",
    caller: "anonymous",
    subject: { type: "user", id: "alice", authenticated: true, issuer: null, client_id: null },
    action: "tools/call",
    resource: { type: "tool", id: "read_file", server: "files" },
    risk: { class: "read", source: "catalog" },
    outcome: "allow",
    reasons: [],
    obligations: {},
    result: { allow: true, reasons: [], obligations: {} },
    revision: "sha256-2d09d4f4bf74887a",
    bundles: { default: { revision: "sha256-2d09d4f4bf74887a" } },
    metrics: { timer_eval_ns: 759841 },
    context: { ip: "10.1.2.3", device: { trust: "managed" }, session: { id: "s-1" } },
    ...overrides,
  };
}

test("sizes agree with JSON.stringify: escapes, every UTF-8 length, lone surrogates, skipped values", () => {
  const values: unknown[] = [
    "",
    "plain",
    'quote " backslash \\ slash /',
    "\n\r\t\b\f \u0000 \u001f \u007f",
    "é ß € 用户 😀 \u{10ffff}",
    "lone \ud800 and \udfff surrogates, reversed \udc00\ud800",
    0,
    -1.5e-7,
    123456789012345,
    Number.NaN,
    Number.POSITIVE_INFINITY,
    true,
    false,
    null,
    [],
    {},
    [1, "a", null, undefined, () => 1, { b: [true] }],
    { a: undefined, b: 1, c: () => 2, 'k"ey': "v", 用户: "😀" },
    { nested: { deeper: { deepest: ["x".repeat(2000), { y: "é".repeat(700) }] } } },
  ];
  for (const value of values) {
    assert.equal(budget.size(value), bytes(value), JSON.stringify(value).slice(0, 80));
  }
  assert.equal(budget.size(record()), bytes(record()));
});

test("a record within the budget is returned as is, nothing copied", () => {
  const normal = record();
  const bounded = budget.bound(normal);
  assert.equal(bounded.record, normal);
  assert.deepEqual(bounded.truncated, []);
});

test("an oversized context value is replaced and named; the request's objects are unchanged", () => {
  const device = { trust: "managed", fingerprint: "f".repeat(1024 * 1024) };
  const oversized = record({ context: { ip: "10.1.2.3", device, session: { id: "s-1" } } });
  const bounded = budget.bound(oversized);
  const kept = bounded.record.context as Record<string, unknown>;
  assert.equal(kept.device, truncatedMarker);
  assert.equal(kept.ip, "10.1.2.3", "small values stay");
  assert.deepEqual(kept.session, { id: "s-1" });
  assert.deepEqual(bounded.truncated, [{ field: "/context/device", bytes: bytes(device) }]);
  assert.ok(
    serializeRecord({ ...bounded.record, truncated: bounded.truncated }).length <= 16384,
    "fits",
  );
  assert.equal((oversized.context as Record<string, unknown>).device, device, "not mutated");
  assert.equal(device.fingerprint.length, 1024 * 1024);
});

test("many medium values: the largest go first, until the record fits", () => {
  const input = {
    subject: { type: "user", id: "alice", properties: { claims: "c".repeat(9000) } },
    action: { name: "tools/call" },
    resource: { type: "tool", id: "read_file", properties: { note: "n".repeat(7000) } },
    context: { ip: "10.1.2.3", extra: "e".repeat(10000) },
  };
  const bounded = budget.bound(record({ input }));
  const fields = bounded.truncated.map((t) => t.field);
  assert.deepEqual(fields, ["/input/context", "/input/subject/properties"]);
  const kept = bounded.record.input as typeof input;
  assert.equal(kept.resource.properties.note.length, 7000, "what fits stays");
  assert.ok(serializeRecord({ ...bounded.record, truncated: bounded.truncated }).length <= 16384);
});

test("the caller's key names never appear in the list: input with 2 000 top-level keys is replaced whole", () => {
  const input: Record<string, unknown> = {
    subject: { type: "user", id: "alice" },
    action: { name: "ping" },
    resource: { type: "mcp_server", id: "files" },
  };
  for (let i = 0; i < 2000; i++) input[`k${i}-${"z".repeat(20)}`] = i;
  const bounded = budget.bound(record({ input }));
  assert.deepEqual(bounded.truncated, [{ field: "/input", bytes: bytes(input) }]);
  assert.equal(bounded.record.input, truncatedMarker);
});

test("an oversized string outside context (a subject id) keeps its type: a string marker", () => {
  const id = "u".repeat(100_000);
  const bounded = budget.bound(
    record({ subject: { type: "user", id, authenticated: true, issuer: null, client_id: null } }),
  );
  assert.equal((bounded.record.subject as Record<string, unknown>).id, truncatedMarker);
  assert.deepEqual(bounded.truncated, [{ field: "/subject/id", bytes: id.length + 2 }]);
});

test("a batch's shared defaults are measured once: 256 records of a 1 MiB context stay cheap", () => {
  const shared = { trust: "managed", blob: Array.from({ length: 20000 }, (_, i) => `v${i}`) };
  const started = process.hrtime.bigint();
  for (let i = 0; i < 256; i++) {
    const bounded = budget.bound(record({ context: { device: shared, ip: `10.0.0.${i % 256}` } }));
    assert.equal((bounded.record.context as Record<string, unknown>).device, truncatedMarker);
  }
  const ms = Number(process.hrtime.bigint() - started) / 1e6;
  // One walk of the 20 000-item array, then a lookup per record (measured ≈ 5 ms in all).
  assert.ok(ms < 250, `${ms.toFixed(1)} ms for 256 records`);
});

test("a shared tree of small objects is measured once per budget, whatever its shape", () => {
  // A binary tree of depth 12 (8191 two-key objects, ~190 KB): no object has many entries.
  let walks = 0;
  const tree = (depth: number): unknown => {
    const node = depth === 0 ? { leaf: "x" } : { l: tree(depth - 1), r: tree(depth - 1) };
    return new Proxy(node, {
      ownKeys(target) {
        walks += 1;
        return Reflect.ownKeys(target);
      },
    });
  };
  const shared = tree(12);
  const sharing = new RecordBudget(16384, ["ip", "device", "location", "session"]);
  sharing.bound(record({ context: { device: shared } }));
  const first = walks;
  // The first record measures the whole tree (8191 objects).
  assert.ok(first >= 8191, `${first} walks for the first record`);
  for (let item = 0; item < 10; item++) sharing.bound(record({ context: { device: shared } }));
  // Later ones look its size up: only the quick fits-check's bounded walk remains (≈ 160).
  const perRecord = (walks - first) / 10;
  assert.ok(perRecord < 8191 / 20, `${perRecord} walks per later record`);
});

test("a record is measured as written: redaction that lengthens strings stays within the budget", () => {
  // Each "eyJab.cd." (9 characters) is written as "[REDACTED]" (10): ~10 % longer than measured raw.
  // Just under the budget as measured raw, so that only redaction could push it over.
  const base = bytes(record({ context: { ip: "10.1.2.3", session: { id: "" } } }));
  const context = {
    ip: "10.1.2.3",
    session: { id: "eyJab.cd.,".repeat(Math.floor((16384 - base - 20) / 10)) },
  };
  const { record: bounded } = budget.bound(record({ context }));
  assert.ok(serializeRecord(bounded).length <= 16384, `${serializeRecord(bounded).length} bytes`);
});

/**
 * The decision endpoints are served by a lean node:http path, everything else
 * by express. Both must answer every request identically: the same requests
 * go to a PDP with the lean path and to one served by express alone.
 */
import assert from "node:assert/strict";
import { gzipSync } from "node:zlib";
import { after, before, describe, test } from "node:test";
import { join } from "node:path";
import { startPdp, type RunningPdp } from "../support/pdp.js";
import { repoRoot } from "../support/opa.js";

const now = Date.UTC(2025, 10, 26, 10, 0, 0);
const valid = {
  subject: {
    type: "user",
    id: "alice",
    properties: { scopes: ["mcp:write"], auth_time: now / 1000 - 60 },
  },
  action: { name: "tools/call" },
  resource: { type: "tool", id: "files/write_file" },
  context: { ip: "10.1.2.3", device: { trust: "managed" } },
};

interface Probe {
  name: string;
  path?: string;
  method?: string;
  headers?: Record<string, string>;
  body?: string | Uint8Array;
}

const json = { "content-type": "application/json" };
const probes: Probe[] = [
  { name: "allowed", headers: json, body: JSON.stringify(valid) },
  {
    name: "denied",
    headers: json,
    body: JSON.stringify({ ...valid, resource: { type: "tool", id: "files/delete_x" } }),
  },
  {
    name: "request id echoed",
    headers: { ...json, "x-request-id": "parity-1" },
    body: JSON.stringify(valid),
  },
  {
    name: "bad request id replaced",
    headers: { ...json, "x-request-id": "has space" },
    body: JSON.stringify(valid),
  },
  { name: "malformed JSON", headers: json, body: '{"subject": ' },
  { name: "empty body", headers: json, body: "" },
  { name: "invalid UTF-8", headers: json, body: new Uint8Array([0x7b, 0xff, 0xfe, 0x7d]) },
  { name: "missing content type", body: JSON.stringify(valid) },
  { name: "text/plain", headers: { "content-type": "text/plain" }, body: JSON.stringify(valid) },
  { name: "forbidden key", headers: json, body: '{"__proto__": {"x": 1}}' },
  { name: "too deep", headers: json, body: `${"[".repeat(100)}${"]".repeat(100)}` },
  { name: "top-level array", headers: json, body: "[]" },
  {
    name: "wrong type",
    headers: json,
    body: JSON.stringify({ ...valid, subject: { type: "user", id: 7 } }),
  },
  {
    name: "over the body limit",
    headers: json,
    body: JSON.stringify({ ...valid, pad: "x".repeat(9000) }),
  },
  {
    name: "gzip body",
    headers: { ...json, "content-encoding": "gzip" },
    body: gzipSync(JSON.stringify(valid)),
  },
  {
    name: "batch",
    path: "/access/v1/evaluations",
    headers: json,
    body: JSON.stringify({
      ...valid,
      evaluations: [{}, { resource: { type: "tool", id: "nope" } }, { action: {} }],
    }),
  },
  { name: "GET on a POST path", method: "GET", path: "/access/v1/evaluation" },
  {
    name: "query string",
    path: "/access/v1/evaluation?x=1",
    headers: json,
    body: JSON.stringify(valid),
  },
];

/** What must be equal: status, body with ids blanked, and the headers a client reads. */
async function observe(base: string, probe: Probe) {
  const response = await fetch(`${base}${probe.path ?? "/access/v1/evaluation"}`, {
    method: probe.method ?? "POST",
    headers: probe.headers ?? {},
    ...(probe.body === undefined ? {} : { body: probe.body }),
  });
  const text = await response.text();
  const requestId = response.headers.get("x-request-id");
  return {
    status: response.status,
    body: text.replace(/[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}/g, "<uuid>"),
    contentType: response.headers.get("content-type"),
    allow: response.headers.get("allow"),
    decisionId: response.headers.get("x-decision-id") === null ? "absent" : "present",
    requestId: requestId === "parity-1" ? requestId : requestId === null ? "absent" : "generated",
  };
}

describe("lean path and express answer alike", () => {
  let lean: RunningPdp;
  let reference: RunningPdp;
  before(async () => {
    const env = {
      PDP_DATA: join(repoRoot, "examples", "operator-data.yaml"),
      PDP_MAX_BODY_BYTES: "8192",
    };
    lean = await startPdp({ env, clock: () => now });
    reference = await startPdp({ env, clock: () => now, expressOnly: true });
  });
  after(async () => {
    await Promise.all([lean.close(), reference.close()]);
  });

  for (const probe of probes) {
    test(probe.name, async () => {
      assert.deepEqual(await observe(lean.url, probe), await observe(reference.url, probe));
    });
  }
});

import assert from "node:assert/strict";
import { request } from "node:http";
import { after, before, describe, test } from "node:test";
import { fileURLToPath } from "node:url";
import { deflateSync, gzipSync } from "node:zlib";
import { apiErrorStatus } from "../../src/errors.ts";
import { startPdp, type RunningPdp } from "../support/pdp.ts";

/**
 * The hostile-input suite: every malformed, mistyped, oversized, too deep or
 * booby-trapped body is refused over HTTP with a 4xx and a stable code, never
 * a 200 (let alone an allow) and never a 500, by both decision endpoints; and
 * the service keeps answering afterwards.
 */

const operatorData = fileURLToPath(new URL("../../examples/operator-data.yaml", import.meta.url));
const nowMs = Date.UTC(2025, 10, 26, 10, 0, 0);
const nowS = nowMs / 1000;

const endpoints = ["/access/v1/evaluation", "/access/v1/evaluations"] as const;
type Endpoint = (typeof endpoints)[number];

type Json = Record<string, unknown>;

/** A request the operator data allows (a reader reading a file), so a refusal is never a lucky deny. */
function validRequest(): Json {
  return {
    subject: {
      type: "user",
      id: "alice",
      properties: { scopes: ["mcp:read"], auth_time: nowS - 300, acr: "pwd", amr: ["pwd"] },
    },
    action: { name: "tools/call", properties: { arguments: { path: "/tmp/x" } } },
    resource: {
      type: "tool",
      id: "files/read_file",
      properties: { annotations: { readOnlyHint: true, title: "Read file" } },
    },
    context: {
      ip: "10.1.2.3",
      device: { id: "d1", trust: "compliant" },
      location: { country: "DE" },
      session: { id: "s1" },
    },
  };
}

const removed = Symbol("removed");

/** The valid request with the value at `path` replaced (or removed), serialized. */
function variant(path: readonly string[], value: unknown): string {
  const root = validRequest();
  let node: Json = root;
  for (const key of path.slice(0, -1)) {
    const next = node[key];
    assert.ok(typeof next === "object" && next !== null, `no object at ${key}`);
    node = next as Json;
  }
  const last = path.at(-1);
  assert.ok(last !== undefined);
  if (value === removed) Reflect.deleteProperty(node, last);
  else node[last] = value;
  return JSON.stringify(root);
}

interface Response {
  status: number;
  headers: Record<string, string | string[] | undefined>;
  body: unknown;
  text: string;
}

/** A POST with exactly these headers and bytes (node:http, so nothing is added or fixed up). */
function rawPost(
  base: string,
  path: string,
  headers: Record<string, string>,
  body: Buffer,
): Promise<Response> {
  const url = new URL(base);
  return new Promise((resolve, reject) => {
    const req = request(
      { host: url.hostname, port: url.port, method: "POST", path, headers },
      (res) => {
        const chunks: Buffer[] = [];
        res.on("data", (chunk: Buffer) => chunks.push(chunk));
        res.on("error", reject);
        res.on("end", () => {
          const text = Buffer.concat(chunks).toString("utf8");
          let parsed: unknown;
          try {
            parsed = text === "" ? undefined : JSON.parse(text);
          } catch {
            parsed = text;
          }
          resolve({ status: res.statusCode ?? 0, headers: res.headers, body: parsed, text });
        });
      },
    );
    req.on("error", reject);
    req.end(body);
  });
}

interface Hostile {
  name: string;
  body: string | Buffer;
  /** Replaces the default `content-type: application/json`. */
  headers?: Record<string, string>;
  /** The status of `code` in the error registry (apiErrorStatus). */
  status: number;
  /** The stable code; several when the registry allows more than one honest answer. */
  code: string | readonly string[];
  /** The JSON pointer the error must name, when one is to blame. */
  field?: string;
  /** Sent to one endpoint only; both by default. */
  only?: Endpoint;
}

function send(base: string, endpoint: Endpoint, hostile: Hostile): Promise<Response> {
  const body = typeof hostile.body === "string" ? Buffer.from(hostile.body, "utf8") : hostile.body;
  return rawPost(base, endpoint, hostile.headers ?? { "content-type": "application/json" }, body);
}

/** The checks every hostile request gets. */
function assertRefused(response: Response, hostile: Hostile): void {
  const label = `${hostile.name}: ${response.status} ${response.text.slice(0, 300)}`;
  assert.ok(response.status >= 400 && response.status < 500, `expected a 4xx; ${label}`);
  assert.ok(typeof response.body === "object" && response.body !== null, label);
  const body = response.body as Json;
  assert.notEqual(body.decision, true, label);
  assert.ok(!("evaluations" in body), label);
  const codes = typeof hostile.code === "string" ? [hostile.code] : hostile.code;
  assert.ok(codes.includes(body.code as string), `expected code ${codes.join("|")}; ${label}`);
  if (typeof hostile.code === "string") assert.equal(response.status, hostile.status, label);
  assert.equal(response.status, apiErrorStatus[body.code as keyof typeof apiErrorStatus], label);
  if (hostile.field !== undefined) assert.equal(body.field, hostile.field, label);
}

function expectation(hostile: Hostile): string {
  return typeof hostile.code === "string"
    ? `${String(hostile.status)} ${hostile.code}`
    : `4xx ${hostile.code.join(" or ")}`;
}

/** A mistyped or missing field: 400 invalid_request naming that field. */
function wrongType(path: readonly string[], value: unknown, what: string): Hostile {
  const field = `/${path.join("/")}`;
  return {
    name: `${field} ${what}`,
    body: variant(path, value),
    status: 400,
    code: "invalid_request",
    field,
  };
}

const typeCases: Hostile[] = [
  wrongType(["subject"], "alice", "a string"),
  wrongType(["subject"], null, "null"),
  wrongType(["subject"], ["alice"], "an array"),
  wrongType(["subject"], removed, "missing"),
  wrongType(["subject", "type"], removed, "missing"),
  wrongType(["subject", "type"], 1, "a number"),
  wrongType(["subject", "id"], 42, "a number"),
  wrongType(["subject", "id"], "", "empty"),
  wrongType(["subject", "id"], "x".repeat(1025), "longer than 1024"),
  wrongType(["subject", "id"], removed, "missing"),
  wrongType(["subject", "properties"], [], "an array"),
  wrongType(["subject", "properties"], "scopes", "a string"),
  wrongType(["subject", "properties", "scopes"], "mcp:read", "not an array"),
  wrongType(["subject", "properties", "scopes"], { 0: "mcp:read" }, "an object"),
  wrongType(["subject", "properties", "scopes"], Array(257).fill("s"), "with 257 items"),
  wrongType(["subject", "properties", "scope"], ["mcp:read"], "an array"),
  wrongType(["subject", "properties", "auth_time"], String(nowS), "a string"),
  wrongType(["subject", "properties", "auth_time"], null, "null"),
  wrongType(["subject", "properties", "acr"], 2, "a number"),
  wrongType(["subject", "properties", "amr"], "pwd", "a string"),
  wrongType(["subject", "properties", "client_id"], { id: "c" }, "an object"),
  wrongType(["action"], "tools/call", "a string"),
  wrongType(["action"], removed, "missing"),
  wrongType(["action", "name"], removed, "missing"),
  wrongType(["action", "name"], 7, "a number"),
  wrongType(["action", "name"], "", "empty"),
  wrongType(["action", "properties"], [1], "an array"),
  wrongType(["resource"], 1, "a number"),
  wrongType(["resource"], removed, "missing"),
  wrongType(["resource", "type"], removed, "missing"),
  wrongType(["resource", "id"], removed, "missing"),
  wrongType(["resource", "id"], ["files/read_file"], "an array"),
  wrongType(["resource", "properties"], true, "a boolean"),
  wrongType(["resource", "properties", "server"], 1, "a number"),
  wrongType(["resource", "properties", "tool"], ["read_file"], "an array"),
  wrongType(["resource", "properties", "annotations"], "readOnly", "a string"),
  wrongType(["resource", "properties", "annotations", "readOnlyHint"], "true", "a string"),
  wrongType(["resource", "properties", "annotations", "destructiveHint"], 0, "a number"),
  wrongType(["context"], 5, "a number"),
  wrongType(["context"], "ctx", "a string"),
  wrongType(["context"], [], "an array"),
  wrongType(["context", "ip"], 167838211, "a number"),
  wrongType(["context", "device"], "compliant", "a string"),
  wrongType(["context", "device", "trust"], { level: "compliant" }, "an object"),
  wrongType(["context", "device", "trust"], ["compliant"], "an array"),
  wrongType(["context", "location", "country"], ["DE"], "an array"),
  wrongType(["context", "session", "id"], 1, "a number"),
];

const deepContext = `{"subject":{"type":"user","id":"a"},"action":{"name":"tools/call"},"resource":{"type":"tool","id":"x"},"context":${'{"a":'.repeat(10000)}1${"}".repeat(10000)}}`;
const valid = JSON.stringify(validRequest());
const validBytes = Buffer.from(valid, "utf8");

const syntaxCases: Hostile[] = [
  { name: "malformed JSON", body: "{subject: alice}", status: 400, code: "invalid_json" },
  { name: "plain text", body: "allow me", status: 400, code: "invalid_json" },
  {
    name: "truncated JSON",
    body: valid.slice(0, valid.length - 7),
    status: 400,
    code: "invalid_json",
  },
  { name: "a lone brace", body: "{", status: 400, code: "invalid_json" },
  { name: "trailing garbage", body: `${valid}x`, status: 400, code: "invalid_json" },
  { name: "two documents", body: `${valid}${valid}`, status: 400, code: "invalid_json" },
  { name: "an empty body", body: "", status: 400, code: "empty_body" },
  { name: "a whitespace body", body: " \r\n\t ", status: 400, code: "empty_body" },
  {
    name: "invalid UTF-8 in a string",
    body: Buffer.concat([
      Buffer.from('{"subject":{"type":"user","id":"'),
      Buffer.from([0xff, 0xfe]),
      Buffer.from('"}}'),
    ]),
    status: 400,
    code: "invalid_utf8",
  },
  {
    name: "an overlong UTF-8 sequence",
    body: Buffer.concat([
      validBytes.subarray(0, 10),
      Buffer.from([0xc0, 0xaf]),
      validBytes.subarray(10),
    ]),
    status: 400,
    code: "invalid_utf8",
  },
  {
    name: "a top-level array",
    body: `[${valid}]`,
    status: 400,
    code: "invalid_request",
    field: "",
  },
  { name: "a top-level number", body: "1", status: 400, code: "invalid_request", field: "" },
  {
    name: "a top-level string",
    body: JSON.stringify(valid),
    status: 400,
    code: "invalid_request",
    field: "",
  },
  { name: "a top-level null", body: "null", status: 400, code: "invalid_request", field: "" },
  { name: "a top-level true", body: "true", status: 400, code: "invalid_request", field: "" },
  {
    name: "10 000 levels of nesting in context",
    body: deepContext,
    status: 400,
    code: "body_too_deep",
    field: `/context${"/a".repeat(31)}`,
  },
  {
    name: "a 500 000-deep array in context",
    body: `{"context":${"[".repeat(500000)}${"]".repeat(500000)}}`,
    status: 400,
    code: "body_too_deep",
  },
  {
    name: "a top-level __proto__ key",
    body: `{"__proto__":{"allow":true},${valid.slice(1)}`,
    status: 400,
    code: "forbidden_key",
    field: "/__proto__",
  },
  {
    name: "__proto__ in subject.properties",
    body: variant(["subject", "properties"], { scopes: ["mcp:read"] }).replace(
      '"properties":{',
      '"properties":{"__proto__":{"scopes":["mcp:admin"]},',
    ),
    status: 400,
    code: "forbidden_key",
    field: "/subject/properties/__proto__",
  },
  {
    name: "constructor in context",
    body: variant(["context", "constructor"], { prototype: { isAdmin: true } }),
    status: 400,
    code: "forbidden_key",
    field: "/context/constructor",
  },
  {
    name: "prototype in resource.properties",
    body: variant(["resource", "properties", "prototype"], {}),
    status: 400,
    code: "forbidden_key",
    field: "/resource/properties/prototype",
  },
  {
    name: "a __proto__ key spelled with escapes",
    body: valid.replace('"action":{', '"action":{"\\u005f_proto__":{"name":"x"},'),
    status: 400,
    code: "forbidden_key",
    field: "/action/__proto__",
  },
  {
    name: "a 5 MB string with the default limit",
    body: variant(["context", "note"], "x".repeat(5 * 1024 * 1024)),
    status: 413,
    code: "body_too_large",
  },
  {
    name: "a gzip bomb (20 MB inflated)",
    body: gzipSync(variant(["context", "note"], "0".repeat(20 * 1024 * 1024))),
    headers: { "content-type": "application/json", "content-encoding": "gzip" },
    status: 413,
    code: "body_too_large",
  },
  {
    name: "an unknown Content-Encoding",
    body: valid,
    headers: { "content-type": "application/json", "content-encoding": "x-rot13" },
    status: 415,
    code: "unsupported_media_type",
  },
  {
    name: "Content-Type text/plain",
    body: valid,
    headers: { "content-type": "text/plain" },
    status: 415,
    code: "unsupported_media_type",
  },
  {
    name: "no Content-Type",
    body: valid,
    headers: {},
    status: 415,
    code: "unsupported_media_type",
  },
  {
    name: "charset latin1",
    body: valid,
    headers: { "content-type": "application/json; charset=latin1" },
    status: 415,
    code: "unsupported_media_type",
  },
];

/**
 * Bodies that claim a compression they do not have. Refusing them is a client
 * error; which 4xx code is the product's choice, so either registry code fits.
 */
function badEncoding(encoding: string, what: string, body: string | Buffer): Hostile {
  return {
    name: `Content-Encoding: ${encoding} with ${what}`,
    body,
    headers: { "content-type": "application/json", "content-encoding": encoding },
    status: 400,
    code: ["invalid_request", "unsupported_media_type"],
  };
}

const encodingCases: Hostile[] = [
  badEncoding("gzip", "a plain JSON body", valid),
  badEncoding("deflate", "a plain JSON body", valid),
  badEncoding("br", "a plain JSON body", valid),
  badEncoding("gzip", "a truncated gzip body", gzipSync(valid).subarray(0, 20)),
];

/** A mistyped field of a batch request: 400 invalid_request naming `field`. */
function wrongBatch(field: string, what: string, extra: Json): Hostile {
  return {
    name: `${field} ${what}`,
    body: JSON.stringify({ ...validRequest(), ...extra }),
    status: 400,
    code: "invalid_request",
    field,
  };
}

const batchCases: Hostile[] = [
  wrongBatch("/evaluations", "an object", { evaluations: { 0: {} } }),
  wrongBatch("/evaluations", "a string", { evaluations: "all" }),
  wrongBatch("/evaluations/0", "a string", { evaluations: ["x"] }),
  wrongBatch("/evaluations/1/subject", "a string", { evaluations: [{}, { subject: "alice" }] }),
  wrongBatch("/evaluations/0/context", "a number", { evaluations: [{ context: 3 }] }),
  wrongBatch("/options", "a string", { options: "execute_all" }),
  wrongBatch("/options/evaluations_semantic", "unknown", {
    options: { evaluations_semantic: "first" },
  }),
  wrongBatch("/options/include_context", "a string", { options: { include_context: "yes" } }),
  {
    name: "10 000 evaluations",
    body: JSON.stringify({
      ...validRequest(),
      evaluations: Array.from({ length: 10000 }, () => ({})),
    }),
    status: 400,
    code: "too_many_evaluations",
    field: "/evaluations",
  },
].map((hostile) => ({ ...hostile, only: "/access/v1/evaluations" as const }));

const allCases = [...typeCases, ...syntaxCases, ...encodingCases, ...batchCases];

let pdp: RunningPdp;

before(async () => {
  pdp = await startPdp({ env: { PDP_DATA: operatorData }, clock: () => nowMs });
});

after(async () => {
  await pdp.close();
});

async function assertAlive(base: string): Promise<void> {
  const health = await fetch(`${base}/health`);
  assert.equal(health.status, 200);
  assert.deepEqual(await health.json(), { status: "ok" });
  for (const endpoint of endpoints) {
    const response = await rawPost(
      base,
      endpoint,
      { "content-type": "application/json" },
      validBytes,
    );
    assert.equal(response.status, 200, response.text);
    assert.equal((response.body as Json).decision, true, response.text);
  }
  const deny = await rawPost(
    base,
    "/access/v1/evaluation",
    { "content-type": "application/json" },
    Buffer.from(variant(["resource", "id"], "files/delete_file")),
  );
  assert.equal(deny.status, 200, deny.text);
  assert.equal((deny.body as Json).decision, false);
}

test("the valid base request is allowed on both endpoints (so refusals below are meaningful)", async () => {
  await assertAlive(pdp.url);
});

for (const endpoint of endpoints) {
  describe(`POST ${endpoint}`, () => {
    for (const hostile of allCases) {
      if (hostile.only !== undefined && hostile.only !== endpoint) continue;
      test(`${hostile.name} → ${expectation(hostile)}`, async () => {
        assertRefused(await send(pdp.url, endpoint, hostile), hostile);
      });
    }
  });
}

describe("PDP_MAX_BODY_BYTES=4096", () => {
  let small: RunningPdp;

  before(async () => {
    small = await startPdp({
      env: { PDP_DATA: operatorData, PDP_MAX_BODY_BYTES: "4096" },
      clock: () => nowMs,
    });
  });

  after(async () => {
    await small.close();
  });

  /** The valid request padded with an ignored field to exactly `bytes` bytes. */
  function padded(bytes: number): string {
    const empty = variant(["context", "pad"], "");
    const text = variant(["context", "pad"], "p".repeat(bytes - Buffer.byteLength(empty)));
    assert.equal(Buffer.byteLength(text), bytes);
    return text;
  }

  for (const endpoint of endpoints) {
    test(`${endpoint}: exactly 4096 bytes is evaluated`, async () => {
      const response = await rawPost(
        small.url,
        endpoint,
        { "content-type": "application/json" },
        Buffer.from(padded(4096)),
      );
      assert.equal(response.status, 200, response.text);
      assert.equal((response.body as Json).decision, true);
    });

    for (const [name, body] of [
      ["4097 bytes", padded(4097)],
      ["64 KiB", padded(64 * 1024)],
      ["4097 bytes of garbage", "x".repeat(4097)],
    ] as const) {
      test(`${endpoint}: ${name} → 413 body_too_large`, async () => {
        const hostile: Hostile = { name, body, status: 413, code: "body_too_large" };
        assertRefused(await send(small.url, endpoint, hostile), hostile);
      });
    }

    test(`${endpoint}: a small gzip body inflating past 4096 bytes → 413 body_too_large`, async () => {
      const hostile: Hostile = {
        name: "gzip over the limit",
        body: gzipSync(padded(8192)),
        headers: { "content-type": "application/json", "content-encoding": "gzip" },
        status: 413,
        code: "body_too_large",
      };
      assertRefused(await send(small.url, endpoint, hostile), hostile);
    });

    test(`${endpoint}: a deflated body within the limit is evaluated`, async () => {
      const response = await rawPost(
        small.url,
        endpoint,
        { "content-type": "application/json", "content-encoding": "deflate" },
        deflateSync(padded(4000)),
      );
      assert.equal(response.status, 200, response.text);
      assert.equal((response.body as Json).decision, true);
    });
  }

  test("the small PDP survived", async () => {
    await assertAlive(small.url);
  });
});

describe("a burst of hostile requests", () => {
  test("200 concurrent hostile requests are each refused and the service stays up", async () => {
    // Every kind but the 5 MB body (kept out to bound memory) and the Content-Encoding
    // cases (the corrupt ones are reported by their dedicated tests above); each kind goes
    // to one endpoint in the first round and to the other in the next.
    const kinds = [...typeCases, ...syntaxCases, ...batchCases].filter(
      (hostile) =>
        Buffer.byteLength(hostile.body) < 2 * 1024 * 1024 &&
        !("content-encoding" in (hostile.headers ?? {})),
    );
    assert.ok(kinds.length > 50);
    const sent = Array.from({ length: 200 }, (_, i) => {
      const hostile = kinds[i % kinds.length];
      assert.ok(hostile !== undefined);
      const round = Math.floor(i / kinds.length) + i;
      const endpoint = hostile.only ?? endpoints[round % 2] ?? "/access/v1/evaluation";
      return { hostile, response: send(pdp.url, endpoint, hostile) };
    });
    const results = await Promise.all(
      sent.map(async (s) => ({ ...s, response: await s.response })),
    );
    assert.equal(results.length, 200);
    for (const { hostile, response } of results) assertRefused(response, hostile);
    await assertAlive(pdp.url);
  });
});

test("after the whole suite the service still decides correctly and /health is 200", async () => {
  await assertAlive(pdp.url);
  const ready = await fetch(`${pdp.url}/ready`);
  assert.equal(ready.status, 200);
});

/**
 * Decision records: one per decision on /access/v1/evaluation,
 * /access/v1/evaluations (one per item) and /forward-auth; every documented
 * field; the correlation ids (decision id in the response and the upstream
 * headers, X-Request-ID, W3C traceparent); masking (input only on request,
 * tool arguments erased by default, operator JSON pointers, token-like
 * strings redacted anywhere, raw tokens never written); and the destinations
 * of the real process (a file, stderr, off). In-process PDPs capture records
 * in `pdp.decisions` and diagnostics in `pdp.logs`. Real tokens from a real
 * JWKS server; default policy + examples/operator-data.yaml; clock frozen at
 * 2026-03-10T12:00:00Z.
 */
import assert from "node:assert/strict";
import { randomBytes, randomUUID } from "node:crypto";
import { existsSync, readFileSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { after, before, describe, test } from "node:test";
import { JwksServer } from "../support/jwks-server.ts";
import { scratchDir } from "../support/opa.ts";
import { postJson, startPdp, type RunningPdp } from "../support/pdp.ts";
import {
  encryptedToken,
  generateTestKey,
  handBuilt,
  mint,
  signaturePart,
  type TestKey,
} from "../support/tokens.ts";
import {
  freePort,
  headerOf,
  jsonLines,
  operatorData,
  rawRequest,
  scrape,
  sha256Hex,
  startMain,
  total,
  waitFor,
  waitReady,
  type Json,
  type RawAnswer,
  type Spawned,
} from "./helpers.ts";

const noonUtcMs = Date.UTC(2026, 2, 10, 12, 0, 0);
const nowS = noonUtcMs / 1000;
const clock = () => noonUtcMs;
const issuer = "https://idp.example.com";
const audience = "https://mcp.example.com/files";
const uuid = /^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$/;

/** Every top-level field of a record; `input` and `erased` only when configured / non-empty. */
const recordFields = [
  "log",
  "decision_id",
  "timestamp",
  "req_id",
  "trace_id",
  "path",
  "endpoint",
  "caller",
  "subject",
  "action",
  "resource",
  "risk",
  "outcome",
  "reasons",
  "obligations",
  "result",
  "revision",
  "bundles",
  "metrics",
  "context",
];

interface DecisionRecord {
  log: string;
  decision_id: string;
  timestamp: string;
  req_id: string | null;
  trace_id: string | null;
  path: string;
  endpoint: string;
  caller: string;
  subject: {
    type: string;
    id: string;
    authenticated: boolean;
    authentication: string | null;
    issuer: string | null;
    client_id: string | null;
    token_error: { code: string; message: string } | null;
  };
  action: string;
  resource: { type: string; id: string; server: string | null };
  risk: unknown;
  outcome: "allow" | "deny";
  reasons: string[];
  obligations: Json;
  result: { allow: boolean; reasons: string[]; obligations: Json };
  revision: string;
  bundles: { default: { revision: string } };
  metrics: { timer_eval_ns: number };
  context: Json;
  input?: Json;
  erased?: string[];
}

interface DecisionBody {
  decision: boolean;
  context: {
    id: string;
    reasons: { code: string }[];
    risk: unknown;
    obligations: Json;
  };
}

// ---------------------------------------------------------------- resources

const scratch = scratchDir();
const closers: (() => Promise<void>)[] = [];
/** Every in-process PDP, for the token search at the end. */
const allPdps: RunningPdp[] = [];
/** Every token sent, in a request body or an Authorization header. */
const sentTokens = new Set<string>();
let configCount = 0;

const keys = { pep: randomBytes(24).toString("base64url") };
let signer: TestKey;
let jwks: JwksServer;
let revision: string;

function writeConfig(config: Json): string {
  configCount += 1;
  const path = join(scratch.dir, `pdp-config-${configCount}.json`);
  writeFileSync(path, JSON.stringify(config, null, 2));
  return path;
}

function pdpConfig(): Json {
  return {
    issuers: [{ issuer, jwks_uri: jwks.url, audiences: [audience] }],
    callers: [
      {
        name: "pep",
        api_key_sha256: [sha256Hex(keys.pep)],
        assert_subject: true,
      },
    ],
    servers: { files: { resource: audience } },
    forward_auth: {
      trusted_proxies: ["127.0.0.1/32"],
      context_headers: { "x-device-trust": "device.trust" },
    },
  };
}

async function start(env: Record<string, string> = {}): Promise<RunningPdp> {
  const pdp = await startPdp({
    env: {
      PDP_CONFIG: writeConfig(pdpConfig()),
      PDP_DATA: operatorData,
      LOG_LEVEL: "debug",
      ...env,
    },
    clock,
  });
  allPdps.push(pdp);
  closers.push(() => pdp.close());
  return pdp;
}

function claims(overrides: Json = {}): Json {
  return {
    iss: issuer,
    sub: "alice",
    aud: audience,
    iat: nowS - 60,
    exp: nowS + 600,
    auth_time: nowS - 300,
    scope: "mcp:read",
    client_id: "client-a",
    ...overrides,
  };
}

async function token(overrides: Json = {}): Promise<string> {
  const minted = await mint(signer, claims(overrides));
  sentTokens.add(minted);
  return minted;
}

function tokenSubject(value: string): Json {
  sentTokens.add(value);
  return { type: "user", properties: { token: value } };
}

function call(subject: Json, tool = "read_file", extra: Json = {}, context?: Json): Json {
  return {
    subject,
    action: { name: "tools/call" },
    resource: {
      type: "tool",
      id: tool,
      properties: { server: "files", arguments: { path: "/etc/motd" }, ...extra },
    },
    context: context ?? {
      ip: "10.1.2.3",
      device: { trust: "managed" },
      location: { country: "DE" },
      session: { id: "session-1" },
      note: "not a selected key",
      http: { method: "POST" },
    },
  };
}

function traceparent(): { header: string; traceId: string } {
  const traceId = randomBytes(16).toString("hex");
  return { header: `00-${traceId}-${randomBytes(8).toString("hex")}-01`, traceId };
}

async function evaluate(
  pdp: RunningPdp,
  path: "evaluation" | "evaluations",
  body: Json,
  headers: Record<string, string> = {},
): Promise<{ body: unknown; headers: Headers; records: DecisionRecord[] }> {
  const before = pdp.decisions.length;
  const answer = await postJson(`${pdp.url}/access/v1/${path}`, body, {
    "x-api-key": keys.pep,
    ...headers,
  });
  assert.equal(answer.status, 200, JSON.stringify(answer.body));
  return {
    body: answer.body,
    headers: answer.headers,
    records: pdp.decisions.slice(before) as unknown as DecisionRecord[],
  };
}

function only(records: DecisionRecord[]): DecisionRecord {
  assert.equal(records.length, 1, `expected one record, got ${records.length}`);
  return records[0] as DecisionRecord;
}

/** The parts of a token long enough that finding them somewhere is not a coincidence. */
function secretParts(value: string): string[] {
  const parts = [value];
  const signature = signaturePart(value);
  if (signature.length >= 16) parts.push(signature);
  return parts;
}

function assertNoToken(text: string, where: string): void {
  for (const sent of sentTokens) {
    for (const part of secretParts(sent)) {
      assert.ok(!text.includes(part), `${where} contains a raw token (or its signature)`);
    }
  }
}

before(async () => {
  signer = await generateTestKey("ES256");
  jwks = await JwksServer.start([signer.publicJwk]);
  closers.push(() => jwks.close());
});

after(async () => {
  for (const close of closers.reverse()) await close();
  scratch.remove();
});

// ---------------------------------------------------------------- fields

describe("one record per decision, every documented field", () => {
  let pdp: RunningPdp;

  before(async () => {
    pdp = await start();
    revision = ((await (await fetch(`${pdp.url}/ready`)).json()) as { revision: string }).revision;
  });

  test("/access/v1/evaluation, allowed with a verified token: every field", async () => {
    const requestId = `req-${randomUUID()}`;
    const trace = traceparent();
    const answer = await evaluate(pdp, "evaluation", call(tokenSubject(await token())), {
      "x-request-id": requestId,
      traceparent: trace.header,
    });
    const body = answer.body as DecisionBody;
    const record = only(answer.records);
    assert.deepEqual(Object.keys(record).sort(), [...recordFields].sort());
    assert.equal(record.log, "decision");

    // Correlation: the decision id is the response's, the request id is echoed.
    assert.match(record.decision_id, uuid);
    assert.equal(record.decision_id, body.context.id);
    assert.equal(record.decision_id, answer.headers.get("x-decision-id"));
    assert.equal(record.req_id, requestId);
    assert.equal(answer.headers.get("x-request-id"), requestId);
    assert.equal(record.trace_id, trace.traceId);

    // Stamped by the PDP's clock (frozen here), the one the policy saw as context.time.
    assert.match(record.timestamp, /^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z$/);
    assert.equal(record.timestamp, new Date(noonUtcMs).toISOString());

    assert.equal(record.path, "mcp/authz/decision");
    assert.equal(record.endpoint, "evaluation");
    assert.equal(record.caller, "pep");
    assert.deepEqual(record.subject, {
      type: "user",
      id: "alice",
      authenticated: true,
      authentication: "token",
      issuer,
      client_id: "client-a",
      token_error: null,
    });
    assert.equal(record.action, "tools/call");
    assert.deepEqual(record.resource, { type: "tool", id: "read_file", server: "files" });
    assert.deepEqual(record.risk, { class: "read", source: "catalog" });
    assert.deepEqual(record.risk, body.context.risk);
    assert.equal(record.outcome, "allow");
    assert.deepEqual(record.reasons, []);
    assert.deepEqual(record.obligations, {});
    assert.deepEqual(record.result, { allow: true, reasons: [], obligations: {} });
    // The bundle's revision and, with PDP_DATA, the digest of the operator data.
    assert.match(revision, /^sha256-[0-9a-f]{16}\+data\.[0-9a-f]{12}$/);
    assert.equal(record.revision, revision);
    assert.deepEqual(record.bundles, { default: { revision } });
    assert.deepEqual(Object.keys(record.metrics), ["timer_eval_ns"]);
    assert.ok(Number.isInteger(record.metrics.timer_eval_ns) && record.metrics.timer_eval_ns > 0);
    // Only the selected context keys (default: ip, device, location, session).
    assert.deepEqual(record.context, {
      ip: "10.1.2.3",
      device: { trust: "managed" },
      location: { country: "DE" },
      session: { id: "session-1" },
    });
    assert.equal(record.input, undefined, "no input unless PDP_DECISION_LOG_INPUT=true");
    assert.equal(record.erased, undefined, "nothing erased from a record without input");
  });

  test("a denied decision: outcome, reason codes, obligations and result as answered", async () => {
    const answer = await evaluate(
      pdp,
      "evaluation",
      call(tokenSubject(await token()), "delete_repo", {}, { ip: "10.1.2.3" }),
    );
    const body = answer.body as DecisionBody;
    const record = only(answer.records);
    assert.equal(body.decision, false);
    assert.equal(record.outcome, "deny");
    const codes = body.context.reasons.map((r) => r.code);
    assert.ok(codes.length >= 2, codes.join(","));
    assert.deepEqual(record.reasons, codes);
    assert.deepEqual(record.obligations, body.context.obligations);
    assert.deepEqual(record.result, {
      allow: false,
      reasons: codes,
      obligations: body.context.obligations,
    });
    assert.deepEqual(record.risk, { class: "destructive", source: "catalog" });
    assert.deepEqual(record.context, { ip: "10.1.2.3" });
    assert.equal(record.decision_id, body.context.id);
  });

  test("a rejected token: an anonymous subject with token_error", async () => {
    const answer = await evaluate(
      pdp,
      "evaluation",
      call(tokenSubject(await token({ iat: nowS - 7200, exp: nowS - 3600 }))),
    );
    const record = only(answer.records);
    assert.equal(record.outcome, "deny");
    assert.deepEqual(record.reasons, ["token_expired"]);
    const { token_error: tokenError, ...subject } = record.subject;
    assert.deepEqual(subject, {
      type: "user",
      id: "",
      authenticated: false,
      authentication: null,
      issuer: null,
      client_id: null,
    });
    assert.ok(tokenError !== null);
    assert.equal(tokenError.code, "token_expired");
    assert.ok(tokenError.message.length > 0);
  });

  test("an asserted subject: authentication asserted; no X-Request-ID: the assigned one", async () => {
    const answer = await evaluate(
      pdp,
      "evaluation",
      call({ type: "agent", id: "bot-1", properties: { scope: "mcp:read", client_id: "c-9" } }),
    );
    const record = only(answer.records);
    assert.deepEqual(record.subject, {
      type: "agent",
      id: "bot-1",
      authenticated: true,
      authentication: "asserted",
      issuer: null,
      client_id: "c-9",
      token_error: null,
    });
    assert.match(record.req_id ?? "", uuid);
    assert.equal(record.req_id, answer.headers.get("x-request-id"));
    assert.equal(record.trace_id, null, "no traceparent");
  });

  test("an unacceptable X-Request-ID is replaced (and echoed); a malformed traceparent is null", async () => {
    for (const [requestId, header] of [
      ["has spaces", `00-${"0".repeat(32)}-${"1".repeat(16)}-01`],
      ["x".repeat(129), "not a traceparent"],
    ] as const) {
      const answer = await evaluate(
        pdp,
        "evaluation",
        call({ type: "user", id: "alice", properties: { scope: "mcp:read" } }),
        { "x-request-id": requestId, traceparent: header },
      );
      const record = only(answer.records);
      assert.match(record.req_id ?? "", uuid);
      assert.equal(record.req_id, answer.headers.get("x-request-id"));
      assert.equal(record.trace_id, null);
    }
  });

  test("a `<server>/<tool>` resource id records its server", async () => {
    const body = call(tokenSubject(await token()));
    body.resource = { type: "tool", id: "files/read_file" };
    const record = only((await evaluate(pdp, "evaluation", body)).records);
    assert.equal(record.outcome, "allow");
    assert.deepEqual(record.resource, { type: "tool", id: "files/read_file", server: "files" });
  });

  test("/access/v1/evaluations: one record per evaluated item, none for an invalid item", async () => {
    const requestId = `batch-${randomUUID()}`;
    const trace = traceparent();
    const answer = await evaluate(
      pdp,
      "evaluations",
      {
        subject: tokenSubject(await token()),
        action: { name: "tools/call" },
        context: { ip: "10.1.2.3", device: { trust: "managed" } },
        evaluations: [
          { resource: { type: "tool", id: "read_file", properties: { server: "files" } } },
          { resource: { type: "tool", id: "write_file", properties: { server: "files" } } },
          { resource: { type: "tool" } },
          { action: { name: "ping" }, resource: { type: "mcp_server", id: "files" } },
        ],
      },
      { "x-request-id": requestId, traceparent: trace.header },
    );
    const items = (answer.body as { evaluations: { decision: boolean; context: Json }[] })
      .evaluations;
    assert.equal(items.length, 4);
    assert.ok(items[2]?.context.error !== undefined, "the invalid item fails alone");
    assert.equal(answer.records.length, 3);
    const decided = [items[0], items[1], items[3]];
    for (const [index, record] of answer.records.entries()) {
      const item = decided[index];
      assert.ok(item !== undefined);
      assert.deepEqual(Object.keys(record).sort(), [...recordFields].sort());
      // Items carry only their decision; the record is found by its place and the request id.
      assert.match(record.decision_id, /^[0-9a-f-]{36}$/);
      assert.equal(record.outcome, item.decision ? "allow" : "deny");
      assert.equal(record.endpoint, "evaluations");
      assert.equal(record.req_id, requestId);
      assert.equal(record.trace_id, trace.traceId);
      assert.equal(record.subject.authentication, "token");
    }
    assert.deepEqual(
      answer.records.map((r) => [r.action, r.resource.id, r.outcome]),
      [
        ["tools/call", "read_file", "allow"],
        ["tools/call", "write_file", "deny"],
        ["ping", "files", "allow"],
      ],
    );
    assert.equal(new Set(answer.records.map((r) => r.decision_id)).size, 3);

    // deny_on_first_deny stops after the deny: only the evaluated items are recorded.
    const short = await evaluate(pdp, "evaluations", {
      subject: tokenSubject(await token()),
      action: { name: "tools/call" },
      context: { device: { trust: "managed" } },
      options: { evaluations_semantic: "deny_on_first_deny" },
      evaluations: [
        { resource: { type: "tool", id: "read_file", properties: { server: "files" } } },
        { resource: { type: "tool", id: "write_file", properties: { server: "files" } } },
        { resource: { type: "tool", id: "read_file", properties: { server: "files" } } },
      ],
    });
    assert.equal((short.body as { evaluations: unknown[] }).evaluations.length, 2);
    assert.deepEqual(
      short.records.map((r) => r.outcome),
      ["allow", "deny"],
    );
  });

  describe("/forward-auth", () => {
    function envoy(headers: Record<string, string>, body: Json): Promise<RawAnswer> {
      return rawRequest(pdp.url, {
        method: "POST",
        path: "/forward-auth/files/mcp",
        headers: {
          host: "mcp.example.com",
          "x-api-key": keys.pep,
          "content-type": "application/json",
          accept: "application/json, text/event-stream",
          "mcp-session-id": "session-7",
          "x-forwarded-for": "10.9.8.7",
          "x-forwarded-proto": "https",
          "x-device-trust": "managed",
          ...headers,
        },
        body: JSON.stringify(body),
      });
    }

    const toolCall = {
      jsonrpc: "2.0",
      id: 3,
      method: "tools/call",
      params: { name: "read_file", arguments: { path: "/etc/motd" } },
    };

    test("allowed: the upstream x-pdp-decision-id is the record's decision_id", async () => {
      const before = pdp.decisions.length;
      const requestId = `fa-${randomUUID()}`;
      const trace = traceparent();
      const bearer = await token();
      const answer = await envoy(
        {
          authorization: `Bearer ${bearer}`,
          "x-request-id": requestId,
          traceparent: trace.header,
        },
        toolCall,
      );
      assert.equal(answer.status, 200, answer.text);
      const record = only(pdp.decisions.slice(before) as unknown as DecisionRecord[]);
      assert.deepEqual(Object.keys(record).sort(), [...recordFields].sort());
      assert.equal(headerOf(answer, "x-pdp-decision-id"), record.decision_id);
      assert.equal((JSON.parse(answer.text) as Json).decision_id, record.decision_id);
      assert.equal(headerOf(answer, "x-request-id"), requestId);
      assert.equal(record.req_id, requestId);
      assert.equal(record.trace_id, trace.traceId);
      assert.equal(record.endpoint, "forward_auth");
      assert.equal(record.caller, "pep");
      assert.equal(record.outcome, "allow");
      assert.deepEqual(record.subject, {
        type: "user",
        id: "alice",
        authenticated: true,
        authentication: "token",
        issuer,
        client_id: "client-a",
        token_error: null,
      });
      assert.equal(record.action, "tools/call");
      assert.deepEqual(record.resource, { type: "tool", id: "read_file", server: "files" });
      assert.deepEqual(record.context, {
        ip: "10.9.8.7",
        device: { trust: "managed" },
        session: { id: "session-7" },
      });
    });

    test("denied without a token: the 401 carries the record's decision id", async () => {
      const before = pdp.decisions.length;
      const answer = await envoy({}, toolCall);
      assert.equal(answer.status, 401, answer.text);
      const record = only(pdp.decisions.slice(before) as unknown as DecisionRecord[]);
      assert.equal(headerOf(answer, "x-pdp-decision-id"), record.decision_id);
      assert.equal(record.outcome, "deny");
      assert.equal(record.subject.token_error?.code, "token_missing");
      assert.deepEqual(record.reasons, ["token_missing"]);
    });
  });
});

// ---------------------------------------------------------------- masking

describe("masking", () => {
  let pdp: RunningPdp;

  before(async () => {
    pdp = await start({
      PDP_DECISION_LOG_INPUT: "true",
      PDP_DECISION_LOG_ERASE: "/input/subject/properties/claims, /context/location",
      PDP_DECISION_LOG_CONTEXT: "ip,location,session",
    });
  });

  test("PDP_DECISION_LOG_INPUT=true: the input, without the tool arguments (erased by default)", async () => {
    const answer = await evaluate(
      pdp,
      "evaluation",
      call(tokenSubject(await token()), "read_file", { arguments: { secret: "hunter2" } }),
    );
    const record = only(answer.records);
    assert.deepEqual(Object.keys(record).sort(), [...recordFields, "input", "erased"].sort());
    const input = record.input as {
      subject: { properties: Json };
      resource: { id: string; properties: Json };
      context: Json;
    };
    assert.equal(input.resource.id, "read_file");
    assert.equal(input.resource.properties.server, "files");
    assert.equal("arguments" in input.resource.properties, false);
    assert.ok(input.context.time !== undefined, "the input as the policy saw it");
    assert.equal(input.subject.properties.authenticated, true);
    // The operator's pointers are removed too, and every removed pointer is listed.
    assert.equal("claims" in input.subject.properties, false);
    assert.deepEqual(record.context, { ip: "10.1.2.3", session: { id: "session-1" } });
    assert.deepEqual(record.erased, [
      "/input/resource/properties/arguments",
      "/input/subject/properties/claims",
      "/context/location",
    ]);
    assert.ok(!JSON.stringify(record).includes("hunter2"));
    assert.ok(!JSON.stringify(record).includes("/etc/motd"));
  });

  test("only the pointers that were present are listed as erased", async () => {
    const answer = await evaluate(pdp, "evaluation", {
      subject: { type: "user", id: "alice", properties: { scope: "mcp:read" } },
      action: { name: "ping" },
      resource: { type: "mcp_server", id: "files" },
    });
    assert.equal(only(answer.records).erased, undefined);
  });

  test("token-like strings are redacted anywhere in a record", async () => {
    const jwt = await token({ sub: "someone-else" });
    const short = handBuilt({ alg: "none", typ: "JWT" }, { sub: "x" }, "c2lnbmF0dXJl");
    sentTokens.add(short);
    const trace = traceparent();
    const answer = await evaluate(
      pdp,
      "evaluation",
      {
        subject: { type: "user", id: jwt, properties: { scope: "mcp:read", acr: `x ${jwt}` } },
        action: { name: "tools/call" },
        resource: {
          type: "tool",
          id: "read_file",
          properties: { server: "files", description: `Bearer ${jwt}`, arguments: { jwt } },
        },
        context: { ip: "10.1.2.3", device: { trust: "managed" }, session: { id: jwt } },
      },
      { "x-request-id": short, traceparent: trace.header },
    );
    const record = only(answer.records);
    const input = record.input as {
      subject: { id: string; properties: Json };
      resource: { properties: Json };
      context: { session: { id: string } };
    };
    assert.equal(record.subject.id, "[REDACTED]");
    assert.deepEqual(record.context.session, { id: "[REDACTED]" });
    assert.equal(input.subject.id, "[REDACTED]");
    assert.equal(input.subject.properties.acr, "x [REDACTED]");
    assert.equal(input.resource.properties.description, "Bearer [REDACTED]");
    assert.equal(input.context.session.id, "[REDACTED]");
    assert.equal(record.req_id, "[REDACTED]");
    assert.equal(answer.headers.get("x-request-id"), short, "the client still gets its id back");
    assertNoToken(JSON.stringify(record), "the record");
  });
});

// ---------------------------------------------------------------- tokens never written

test("raw tokens never appear in any decision record or diagnostic line", async () => {
  const pdp = await start({ PDP_DECISION_LOG_INPUT: "true", PDP_DECISION_LOG_ERASE: "" });
  const stranger = await generateTestKey("ES256", signer.kid);
  const badSignature = await mint(stranger, claims());
  sentTokens.add(badSignature);
  const tokens = [
    await token(),
    await token({ iat: nowS - 7200, exp: nowS - 3600 }),
    await token({ aud: "https://elsewhere.example.com" }),
    await token({ iss: "https://unknown.example.com" }),
    badSignature,
    handBuilt({ alg: "none", typ: "JWT" }, claims()),
    await encryptedToken(claims()),
  ];
  for (const value of tokens) {
    sentTokens.add(value);
    await evaluate(pdp, "evaluation", call(tokenSubject(value)));
    await evaluate(pdp, "evaluations", {
      subject: tokenSubject(value),
      action: { name: "tools/call" },
      evaluations: [{ resource: { type: "tool", id: "files/read_file" } }],
    });
    const forwarded = await rawRequest(pdp.url, {
      method: "POST",
      path: "/forward-auth/files/mcp",
      headers: {
        "x-api-key": keys.pep,
        authorization: `Bearer ${value}`,
        "content-type": "application/json",
        accept: "application/json, text/event-stream",
        "x-device-trust": "managed",
      },
      body: JSON.stringify({
        jsonrpc: "2.0",
        id: 1,
        method: "tools/call",
        params: { name: "read_file", arguments: { token: value } },
      }),
    });
    assert.ok([200, 401].includes(forwarded.status), forwarded.text);
  }
  assert.ok(
    pdp.logs.some((line) => line.message === "token rejected"),
    "debug lines about rejected tokens were written (and searched)",
  );
  for (const running of allPdps) {
    assert.ok(running.decisions.length > 0);
    for (const record of running.decisions) assertNoToken(JSON.stringify(record), "a record");
    for (const line of running.logs) assertNoToken(JSON.stringify(line), "a diagnostic line");
  }
});

// ---------------------------------------------------------------- destinations (real process)

describe("destinations: the real process", () => {
  const decisionBody = JSON.stringify({
    subject: { type: "user", id: "alice", properties: { scope: "mcp:read" } },
    action: { name: "ping" },
    resource: { type: "mcp_server", id: "files" },
  });

  async function run(env: Record<string, string>): Promise<{
    started: Spawned;
    url: string;
    ids: string[];
  }> {
    const port = await freePort();
    const url = `http://127.0.0.1:${port}`;
    const started = startMain({ PORT: String(port), PDP_DATA: operatorData, ...env });
    closers.push(() => started.stop());
    await waitReady(url, started);
    const ids: string[] = [];
    for (let i = 0; i < 2; i += 1) {
      const answer = await postJson(`${url}/access/v1/evaluation`, decisionBody);
      assert.equal(answer.status, 200);
      ids.push((answer.body as DecisionBody).context.id);
    }
    return { started, url, ids };
  }

  function output(started: Spawned): string {
    return `stdout:\n${started.stdout()}\nstderr:\n${started.stderr()}`;
  }

  test("PDP_DECISION_LOG=<file>: JSON lines in the file, none on stdout", async () => {
    const file = join(scratch.dir, "decisions.log");
    const { started, ids } = await run({ PDP_DECISION_LOG: file });
    const lines = await waitFor(
      "two records in the file",
      () => {
        if (!existsSync(file)) return undefined;
        const records = jsonLines(readFileSync(file, "utf8"));
        return records.length >= 2 ? records : undefined;
      },
      10000,
      () => output(started),
    );
    await started.stop();
    assert.deepEqual(
      lines.map((line) => [line.log, line.decision_id]),
      ids.map((id) => ["decision", id]),
    );
    const stdout = jsonLines(started.stdout());
    assert.ok(stdout.length > 0);
    assert.ok(
      stdout.every((line) => line.log === "diagnostic"),
      output(started),
    );
    assert.ok(stdout.some((line) => line.message === "listening"));
    for (const id of ids) assert.ok(!started.stdout().includes(id), "a record on stdout");
    assert.equal(started.stderr(), "");
  });

  test("PDP_DIAGNOSTIC_LOG=stderr: diagnostics on stderr, records alone on stdout", async () => {
    const { started, ids } = await run({ PDP_DIAGNOSTIC_LOG: "stderr" });
    await waitFor(
      "two records on stdout",
      () => (jsonLines(started.stdout()).length >= 2 ? true : undefined),
      10000,
      () => output(started),
    );
    await started.stop();
    assert.deepEqual(
      jsonLines(started.stdout()).map((line) => [line.log, line.decision_id]),
      ids.map((id) => ["decision", id]),
    );
    const stderr = jsonLines(started.stderr());
    assert.ok(
      stderr.every((line) => line.log === "diagnostic"),
      output(started),
    );
    assert.ok(stderr.some((line) => line.message === "listening"));
    assert.ok(stderr.some((line) => line.message === "stopped"));
  });

  test("PDP_DECISION_LOG=off: no record anywhere (decisions still counted)", async () => {
    const diagnostics = join(scratch.dir, "diagnostics.log");
    const { started, url, ids } = await run({
      PDP_DECISION_LOG: "off",
      PDP_DIAGNOSTIC_LOG: diagnostics,
    });
    const { exposition } = await scrape(url);
    assert.equal(total(exposition, "mcp_pdp_decisions_total"), 2);
    await started.stop();
    assert.equal(started.stdout(), "", output(started));
    assert.equal(started.stderr(), "");
    const lines = jsonLines(readFileSync(diagnostics, "utf8"));
    assert.ok(lines.some((line) => line.message === "listening"));
    assert.ok(lines.every((line) => line.log === "diagnostic"));
    for (const id of ids) assert.ok(!JSON.stringify(lines).includes(id));
  });
});

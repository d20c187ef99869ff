/**
 * The Prometheus metrics over real HTTP (in-process PDPs on loopback): every
 * family metrics.ts declares is exported; decisions, reasons, tools and
 * clients are counted exactly; label values stay bounded with distinct tools,
 * clients, methods and paths (a smoke test: the 2 × 10 000 proof is
 * metrics-cardinality.test.ts, on the module); token verifications,
 * JWKS fetches (a real JWKS server) and caller-authentication failures are
 * counted; HTTP requests by route, method and status; latency histograms in
 * seconds; the bundle revision; /metrics behind ops credentials and on its
 * own port. Default policy + examples/operator-data.yaml, clock frozen at
 * 2026-03-10T12:00:00Z.
 */
import assert from "node:assert/strict";
import { randomBytes } from "node:crypto";
import { readFileSync, writeFileSync } from "node:fs";
import { createServer, type Server } from "node:http";
import type { AddressInfo } from "node:net";
import { join } from "node:path";
import { after, before, describe, test } from "node:test";
import { startupErrorCodes } from "../../src/errors.ts";
import { pdpReasonCodes, policyLabels } from "../../src/observability/observability.ts";
import { policySourceNames } from "../../src/policy/policy-holder.ts";
import { JwksServer } from "../support/jwks-server.ts";
import { repoRoot, scratchDir } from "../support/opa.ts";
import { postJson, startPdp, type RunningPdp } from "../support/pdp.ts";
import { generateTestKey, mint, type TestKey } from "../support/tokens.ts";
import {
  countsBy,
  declaredFamilies,
  familyOf,
  headerOf,
  key,
  labelValues,
  operatorData,
  rawRequest,
  scrape,
  seriesOf,
  seriesPerFamily,
  sha256Hex,
  total,
  type Exposition,
  type Json,
  type RawRequest,
} from "./helpers.ts";

const noonUtcMs = Date.UTC(2026, 2, 10, 12, 0, 0);
const nowS = noonUtcMs / 1000;
const clock = () => noonUtcMs;

const issuer = "https://idp.example.com";
const downIssuer = "https://down.example.com";
const audience = "https://mcp.example.com/files";

const scratch = scratchDir();
const closers: (() => Promise<void>)[] = [];
let configCount = 0;

function writeConfig(config: Json): string {
  configCount += 1;
  const path = join(scratch.dir, `pdp-config-${configCount}.json`);
  writeFileSync(path, JSON.stringify(config, null, 2));
  return path;
}

async function start(env: Record<string, string> = {}, config?: Json): Promise<RunningPdp> {
  const pdp = await startPdp({
    env: {
      PDP_DATA: operatorData,
      LOG_LEVEL: "debug",
      ...(config === undefined ? {} : { PDP_CONFIG: writeConfig(config) }),
      ...env,
    },
    clock,
  });
  closers.push(() => pdp.close());
  return pdp;
}

after(async () => {
  for (const close of closers.reverse()) await close();
  scratch.remove();
});

// ---------------------------------------------------------------- requests

const managed = { ip: "10.1.2.3", device: { trust: "managed" } };

function user(scope: string, properties: Json = {}): Json {
  return {
    type: "user",
    id: "alice",
    properties: { scope, auth_time: nowS - 300, acr: "mfa", ...properties },
  };
}

function call(tool: string, server: string, subject: Json, context: Json = managed): Json {
  return {
    subject,
    action: { name: "tools/call" },
    resource: { type: "tool", id: tool, properties: { server } },
    context,
  };
}

function method(name: string, subject: Json, context: Json = managed): Json {
  return { subject, action: { name }, resource: { type: "mcp_server", id: "files" }, context };
}

interface DecisionBody {
  decision: boolean;
  context: { id: string; risk: { class?: string } | null; reasons: { code: string }[] };
}

async function evaluate(
  pdp: RunningPdp,
  body: Json,
  headers: Record<string, string> = {},
): Promise<DecisionBody> {
  const answer = await postJson(`${pdp.url}/access/v1/evaluation`, body, headers);
  assert.equal(answer.status, 200, JSON.stringify(answer.body));
  return answer.body as DecisionBody;
}

/** The outcome of a decision as metrics label it. */
interface Expected {
  allow: boolean;
  risk: string;
  action: string;
  reasons: string[];
}

function outcomeOf(body: DecisionBody, action: string): Expected {
  return {
    allow: body.decision,
    risk: body.context.risk?.class ?? "none",
    action,
    reasons: body.context.reasons.map((r) => r.code).sort(),
  };
}

function increment(counts: Record<string, number>, k: string, by = 1): void {
  counts[k] = (counts[k] ?? 0) + by;
}

// ---------------------------------------------------------------- every family

test("every metric family declared in metrics.ts is exported, with samples, after a mix of decisions", async () => {
  const key1 = await generateTestKey("ES256");
  const jwks = await JwksServer.start([key1.publicJwk]);
  closers.push(() => jwks.close());
  const pepKey = randomBytes(24).toString("base64url");
  const pdp = await start(
    { PDP_METRICS_TOOL_LABELS: "files/read_file", PDP_METRICS_CLIENT_LABELS: "client-a" },
    {
      issuers: [{ issuer, jwks_uri: jwks.url, audiences: [audience] }],
      callers: [{ name: "pep", api_key_sha256: [sha256Hex(pepKey)], assert_subject: true }],
      servers: { files: { resource: audience } },
      ops: { metrics_open: true },
      forward_auth: {
        trusted_proxies: ["127.0.0.1/32"],
        context_headers: { "x-device-trust": "device.trust" },
      },
    },
  );
  const withKey = { "x-api-key": pepKey };
  const token = await mint(key1, {
    iss: issuer,
    sub: "alice",
    aud: audience,
    iat: nowS - 60,
    exp: nowS + 600,
    auth_time: nowS - 300,
    scope: "mcp:read",
    client_id: "client-a",
  });
  // Allowed with a verified token, denied as asserted, a caller refused, forward-auth, a Data API query.
  await evaluate(pdp, call("read_file", "files", { type: "user", properties: { token } }), withKey);
  await evaluate(pdp, call("write_file", "files", user("mcp:read")), withKey);
  assert.equal((await postJson(`${pdp.url}/access/v1/evaluation`, {})).status, 401);
  const forward = await rawRequest(pdp.url, {
    method: "POST",
    path: "/forward-auth/files/mcp",
    headers: {
      ...withKey,
      authorization: `Bearer ${token}`,
      "content-type": "application/json",
      accept: "application/json, text/event-stream",
      "x-device-trust": "managed",
    },
    body: JSON.stringify({
      jsonrpc: "2.0",
      id: 1,
      method: "tools/call",
      params: { name: "read_file", arguments: { path: "/etc/motd" } },
    }),
  });
  assert.equal(forward.status, 200, forward.text);
  const query = await postJson(`${pdp.url}/v1/data/mcp/authz/decision`, { input: {} }, withKey);
  assert.equal(query.status, 200);

  await scrape(pdp.url);
  const { exposition } = await scrape(pdp.url);
  const families = declaredFamilies();
  const series = seriesPerFamily(exposition);
  for (const family of [
    "mcp_pdp_decisions_total",
    "mcp_pdp_decision_reasons_total",
    "mcp_pdp_tool_decisions_total",
    "mcp_pdp_client_decisions_total",
    "mcp_pdp_evaluation_duration_seconds",
    "mcp_pdp_http_request_duration_seconds",
    "mcp_pdp_http_requests_total",
    "mcp_pdp_bundle_info",
    "mcp_pdp_bundle_loaded_timestamp_seconds",
    "mcp_pdp_bundle_load_failures_total",
    "mcp_pdp_token_verifications_total",
    "mcp_pdp_jwks_fetches_total",
    "mcp_pdp_caller_auth_failures_total",
    "mcp_pdp_data_queries_total",
  ]) {
    assert.ok(families.includes(family), `metrics.ts no longer declares ${family}`);
  }
  for (const family of families) {
    assert.ok(exposition.types.has(family), `${family}: no # TYPE line`);
    assert.ok((exposition.help.get(family) ?? "").length > 10, `${family}: no # HELP text`);
    assert.ok((series.get(family) ?? 0) > 0, `${family}: no sample`);
  }
  // Everything exported is under the prefix (the process metrics too).
  for (const family of exposition.types.keys()) {
    assert.match(family, /^mcp_pdp_[a-z0-9_]+$/, family);
  }
  assert.ok(exposition.types.has("mcp_pdp_process_cpu_seconds_total"), "process metrics");
  assert.ok(exposition.types.has("mcp_pdp_nodejs_eventloop_lag_seconds"), "event-loop metrics");
});

// ---------------------------------------------------------------- decisions

describe("decision counters for a known sequence", () => {
  let pdp: RunningPdp;
  let exposition: Exposition;
  const expectedDecisions: Record<string, number> = {};
  const expectedReasons: Record<string, number> = {};
  const expectedTools: Record<string, number> = {};
  const expectedClients: Record<string, number> = {};
  let decisionCount = 0;

  function expect(outcome: Expected, tool: string | undefined, client: string | undefined): void {
    const result = outcome.allow ? "allow" : "deny";
    decisionCount += 1;
    increment(
      expectedDecisions,
      key({ outcome: result, risk: outcome.risk, action: outcome.action }),
    );
    if (!outcome.allow)
      for (const reason of outcome.reasons) increment(expectedReasons, key({ reason }));
    if (tool !== undefined) increment(expectedTools, key({ tool, outcome: result }));
    if (client !== undefined) increment(expectedClients, key({ client, outcome: result }));
  }

  const cases: {
    name: string;
    body: Json;
    outcome: Expected;
    tool?: string;
    client?: string;
  }[] = [
    {
      name: "files/read_file with mcp:read (client-a)",
      body: call("read_file", "files", user("mcp:read", { client_id: "client-a" })),
      outcome: { allow: true, risk: "read", action: "tools/call", reasons: [] },
      tool: "files/read_file",
      client: "client-a",
    },
    {
      name: "files/read_file again (client-a)",
      body: call("read_file", "files", user("mcp:read", { client_id: "client-a" })),
      outcome: { allow: true, risk: "read", action: "tools/call", reasons: [] },
      tool: "files/read_file",
      client: "client-a",
    },
    {
      name: "files/write_file without mcp:write (client-b, not allow-listed)",
      body: call("write_file", "files", user("mcp:read", { client_id: "client-b" })),
      outcome: { allow: false, risk: "write", action: "tools/call", reasons: ["scope_missing"] },
      tool: "other",
      client: "other",
    },
    {
      name: "files/write_file from an unmanaged device outside 10/8",
      body: call("write_file", "files", user("mcp:write"), {
        ip: "192.0.2.1",
        device: { trust: "unmanaged" },
      }),
      outcome: {
        allow: false,
        risk: "write",
        action: "tools/call",
        reasons: ["device_untrusted", "network_denied"],
      },
      tool: "other",
    },
    {
      name: "files/delete_repo with acr pwd, no mcp:admin",
      body: call("delete_repo", "files", user("mcp:read mcp:write", { acr: "pwd" }), {
        ip: "10.1.2.3",
        device: { trust: "compliant" },
      }),
      outcome: {
        allow: false,
        risk: "destructive",
        action: "tools/call",
        reasons: ["acr_insufficient", "scope_missing"],
      },
      tool: "other",
    },
    {
      name: "ping",
      body: method("ping", user("mcp:read")),
      outcome: { allow: true, risk: "none", action: "ping", reasons: [] },
    },
    {
      name: "tools/list",
      body: method("tools/list", user("mcp:read", { client_id: "client-a" })),
      outcome: { allow: true, risk: "read", action: "tools/list", reasons: [] },
      client: "client-a",
    },
    {
      name: "an unknown method",
      body: method("foo/bar", user("mcp:read")),
      outcome: { allow: false, risk: "none", action: "other", reasons: ["method_unknown"] },
    },
    {
      name: "an unknown tool on an unknown server",
      body: call("zzz", "srv", user("mcp:read")),
      outcome: {
        allow: false,
        risk: "destructive",
        action: "tools/call",
        reasons: ["device_untrusted", "scope_missing"],
      },
      tool: "other",
    },
    {
      name: "resources/read",
      body: {
        subject: user("mcp:read"),
        action: { name: "resources/read" },
        resource: { type: "resource", id: "file:///a", properties: { server: "files" } },
        context: managed,
      },
      outcome: { allow: true, risk: "read", action: "resources/read", reasons: [] },
    },
  ];

  before(async () => {
    pdp = await start({
      PDP_METRICS_TOOL_LABELS: "files/read_file",
      PDP_METRICS_CLIENT_LABELS: "client-a, client-c",
    });
    for (const c of cases) {
      const action = (c.body.action as { name: string }).name;
      const body = await evaluate(pdp, c.body);
      const folded = action === "foo/bar" ? "other" : action;
      assert.deepEqual(outcomeOf(body, folded), c.outcome, c.name);
      expect(c.outcome, c.tool, c.client);
    }
    // A batch: every item is a decision of its own.
    const batch = await postJson(`${pdp.url}/access/v1/evaluations`, {
      subject: user("mcp:read", { client_id: "client-c" }),
      action: { name: "tools/call" },
      context: managed,
      options: { include_context: true },
      evaluations: [
        { resource: { type: "tool", id: "read_file", properties: { server: "files" } } },
        { resource: { type: "tool", id: "write_file", properties: { server: "files" } } },
        { action: { name: "ping" }, resource: { type: "mcp_server", id: "files" } },
      ],
    });
    assert.equal(batch.status, 200);
    const items = (batch.body as { evaluations: DecisionBody[] }).evaluations;
    const batchExpected: [Expected, string | undefined][] = [
      [{ allow: true, risk: "read", action: "tools/call", reasons: [] }, "files/read_file"],
      [{ allow: false, risk: "write", action: "tools/call", reasons: ["scope_missing"] }, "other"],
      [{ allow: true, risk: "none", action: "ping", reasons: [] }, undefined],
    ];
    assert.equal(items.length, batchExpected.length);
    for (const [index, [outcome, tool]] of batchExpected.entries()) {
      const item = items[index];
      assert.ok(item !== undefined);
      assert.deepEqual(outcomeOf(item, outcome.action), outcome, `batch item ${index}`);
      expect(outcome, tool, "client-c");
    }
    ({ exposition } = await scrape(pdp.url));
  });

  test("mcp_pdp_decisions_total counts each decision by outcome, risk class and method", () => {
    assert.deepEqual(
      countsBy(exposition, "mcp_pdp_decisions_total", ["outcome", "risk", "action"]),
      expectedDecisions,
    );
    assert.equal(total(exposition, "mcp_pdp_decisions_total"), decisionCount);
    assert.equal(total(exposition, "mcp_pdp_decisions_total", { outcome: "allow" }), 7);
    assert.equal(total(exposition, "mcp_pdp_decisions_total", { outcome: "deny" }), 6);
    assert.equal(pdp.decisions.length, decisionCount, "one decision record per decision");
  });

  test("mcp_pdp_decision_reasons_total counts every reason of every denied decision", () => {
    assert.deepEqual(
      countsBy(exposition, "mcp_pdp_decision_reasons_total", ["reason"]),
      expectedReasons,
    );
    assert.equal(
      total(exposition, "mcp_pdp_decision_reasons_total", { reason: "scope_missing" }),
      4,
    );
  });

  test("tools and clients: allow-listed values are labels, everything else is `other`", () => {
    assert.deepEqual(
      countsBy(exposition, "mcp_pdp_tool_decisions_total", ["tool", "outcome"]),
      expectedTools,
    );
    assert.deepEqual(
      countsBy(exposition, "mcp_pdp_client_decisions_total", ["client", "outcome"]),
      expectedClients,
    );
  });

  test("the evaluation histogram observes every decision, in seconds, matching the records", () => {
    assert.equal(total(exposition, "mcp_pdp_evaluation_duration_seconds_count"), decisionCount);
    const recordedNs = pdp.decisions
      .map((record) => (record.metrics as { timer_eval_ns: number }).timer_eval_ns)
      .reduce((sum, ns) => sum + ns, 0);
    const sum = total(exposition, "mcp_pdp_evaluation_duration_seconds_sum");
    assert.ok(
      Math.abs(sum - recordedNs / 1e9) < 1e-6,
      `histogram sum ${sum} s vs records ${recordedNs} ns`,
    );
    assert.ok(sum > 0 && sum / decisionCount < 0.5, `mean ${sum / decisionCount} s`);
  });
});

// ---------------------------------------------------------------- tool label allow-list

describe("PDP_METRICS_TOOL_LABELS=files/read_file", () => {
  let pdp: RunningPdp;
  const reader = user("mcp:read");

  before(async () => {
    pdp = await start(
      { PDP_METRICS_TOOL_LABELS: "files/read_file" },
      { servers: { files: { resource: audience } } },
    );
  });

  test("makes exactly that tool a label value (server property, forward-auth)", async () => {
    const base = total((await scrape(pdp.url)).exposition, "mcp_pdp_tool_decisions_total");
    await evaluate(pdp, call("read_file", "files", reader));
    await evaluate(pdp, call("write_file", "files", reader));
    await evaluate(pdp, call("read_file", "other", reader));
    await evaluate(pdp, call("read_file_2", "files", reader));
    // Forward-auth names the server in the path and the tool in the JSON-RPC body.
    const forward = await rawRequest(pdp.url, {
      method: "POST",
      path: "/forward-auth/files/mcp",
      headers: { "content-type": "application/json", accept: "application/json" },
      body: JSON.stringify({
        jsonrpc: "2.0",
        id: 7,
        method: "tools/call",
        params: { name: "read_file", arguments: {} },
      }),
    });
    assert.equal(forward.status, 401, forward.text);
    const { exposition } = await scrape(pdp.url);
    assert.deepEqual(
      labelValues(exposition, "mcp_pdp_tool_decisions_total", "tool"),
      new Set(["files/read_file", "other"]),
    );
    assert.equal(
      total(exposition, "mcp_pdp_tool_decisions_total", { tool: "files/read_file" }),
      2,
      "files/read_file: one allowed AuthZEN call, one forward-auth call",
    );
    assert.equal(
      total(exposition, "mcp_pdp_tool_decisions_total", {
        tool: "files/read_file",
        outcome: "allow",
      }),
      1,
    );
    assert.equal(total(exposition, "mcp_pdp_tool_decisions_total") - base, 5);
  });

  test("counts a `<server>/<tool>` resource id (the AuthZEN MCP form) as that tool", async () => {
    const tools = async () =>
      countsBy((await scrape(pdp.url)).exposition, "mcp_pdp_tool_decisions_total", ["tool"]);
    const before = await tools();
    const body = await evaluate(pdp, {
      subject: reader,
      action: { name: "tools/call" },
      resource: { type: "tool", id: "files/read_file" },
      context: managed,
    });
    assert.equal(body.decision, true, "the policy reads files/read_file as the catalogued tool");
    const after = await tools();
    const delta = Object.fromEntries(
      Object.entries(after)
        .map(([labels, n]) => [labels, n - (before[labels] ?? 0)] as const)
        .filter(([, n]) => n !== 0),
    );
    assert.deepEqual(delta, { [key({ tool: "files/read_file" })]: 1 });
  });
});

// ---------------------------------------------------------------- bounded cardinality

// The proof over 2 × 10 000 values is a unit test of the metrics module
// (metrics-cardinality.test.ts); this smoke test shows the APIs hand it raw
// values to fold, with the label values the active bundle names.
describe("bounded cardinality over HTTP: 2 × 500 distinct tools, servers, clients, methods and paths", () => {
  let pdp: RunningPdp;
  const batchSize = 250;
  const perRound = 500;
  const hostileRequests = 20;
  const bundleLabels = policyLabels(
    JSON.parse(readFileSync(join(repoRoot, "rego", "data.json"), "utf8")) as Json,
  );
  /** Families whose series must not change between rounds (the process metrics may). */
  const pdpFamilies = declaredFamilies();

  const allowedLabels: Record<string, Record<string, ReadonlySet<string>>> = {
    mcp_pdp_decisions_total: {
      outcome: new Set(["allow", "deny"]),
      risk: new Set(["read", "write", "destructive", "none", "other"]),
      action: new Set([...bundleLabels.actions, "other"]),
    },
    mcp_pdp_tool_decisions_total: {
      tool: new Set(["files/read_file", "other"]),
      outcome: new Set(["allow", "deny"]),
    },
    mcp_pdp_client_decisions_total: {
      client: new Set(["client-a", "other"]),
      outcome: new Set(["allow", "deny"]),
    },
    mcp_pdp_decision_reasons_total: {
      reason: new Set([...pdpReasonCodes, ...bundleLabels.reasonCodes, "other"]),
    },
    mcp_pdp_http_requests_total: {
      route: new Set([
        "evaluation",
        "evaluations",
        "forward_auth",
        "opa_data",
        "metadata",
        "health",
        "ready",
        "metrics",
        "other",
      ]),
      method: new Set(["GET", "POST", "PUT", "DELETE", "PATCH", "HEAD", "OPTIONS", "other"]),
    },
  };

  /** One AuthZEN item whose names are all new; its shape (and so its labels) depends on i % 10. */
  function item(round: number, i: number): Json {
    const name = `${round}-${i}-${randomBytes(4).toString("hex")}`;
    const shape = i % 10;
    const resource =
      shape === 0
        ? { type: "tool", id: "read_file", properties: { server: "files" } }
        : shape === 5
          ? // A trusted server's annotations classify an uncatalogued tool.
            {
              type: "tool",
              id: `tool-${name}`,
              properties: { server: "files", annotations: { readOnlyHint: true } },
            }
          : { type: "tool", id: `tool-${name}`, properties: { server: `srv-${name}` } };
    return {
      subject: {
        type: "user",
        id: `user-${name}`,
        properties: {
          scope: shape === 6 ? `scope-${name}` : "mcp:read",
          client_id: shape === 3 ? "client-a" : `client-${name}`,
          auth_time: nowS - 60,
          acr: `acr-${name}`,
        },
      },
      action: { name: shape === 1 ? `x/${name}` : shape === 2 ? "tools/list" : "tools/call" },
      resource,
      context: {
        ip: `10.${i % 250}.${round}.${(i >> 8) % 250}`,
        device: { trust: shape === 4 ? `trust-${name}` : "managed" },
        location: { country: `C${name}` },
      },
    };
  }

  async function round(number: number): Promise<Exposition> {
    for (let first = 0; first < perRound; first += batchSize) {
      const evaluations = Array.from({ length: batchSize }, (_unused, k) =>
        item(number, first + k),
      );
      const answer = await postJson(
        `${pdp.url}/access/v1/evaluations`,
        { evaluations },
        { "x-request-id": `round-${number}-${first}` },
      );
      assert.equal(answer.status, 200, JSON.stringify(answer.body).slice(0, 500));
      assert.equal((answer.body as { evaluations: unknown[] }).evaluations.length, batchSize);
    }
    // Unknown paths, odd methods, forward-auth to ever new servers and tools.
    for (let i = 0; i < hostileRequests; i += 1) {
      const name = `${number}-${i}-${randomBytes(4).toString("hex")}`;
      const requests: RawRequest[] = [
        { method: "GET", path: `/nothing-${name}` },
        { method: ["PROPFIND", "MKCOL", "PURGE", "LOCK"][i % 4] ?? "", path: `/x/${name}` },
        {
          method: "POST",
          path: `/forward-auth/srv-${name}/mcp`,
          headers: { "content-type": "application/json", accept: "application/json" },
          body: JSON.stringify({
            jsonrpc: "2.0",
            id: i,
            method: "tools/call",
            params: { name: `tool-${name}` },
          }),
        },
      ];
      for (const request of requests) await rawRequest(pdp.url, request);
    }
    await scrape(pdp.url);
    return (await scrape(pdp.url)).exposition;
  }

  function pdpSeries(exposition: Exposition): Record<string, number> {
    const counts = seriesPerFamily(exposition);
    return Object.fromEntries(pdpFamilies.map((family) => [family, counts.get(family) ?? 0]));
  }

  function assertLabelsBounded(exposition: Exposition): void {
    for (const [name, labels] of Object.entries(allowedLabels)) {
      for (const [label, allowed] of Object.entries(labels)) {
        const values = labelValues(exposition, name, label);
        const stray = [...values].filter((value) => !allowed.has(value));
        assert.deepEqual(stray, [], `${name}{${label}} took values outside its allow-list`);
      }
    }
    const statuses = labelValues(exposition, "mcp_pdp_http_requests_total", "status");
    for (const status of statuses) assert.match(status, /^[1-5]\d\d$/);
    assert.ok(statuses.size <= 10, `statuses: ${[...statuses].join(",")}`);
  }

  let first: Exposition;
  let second: Exposition;

  before(async () => {
    pdp = await start({
      PDP_METRICS_TOOL_LABELS: "files/read_file",
      PDP_METRICS_CLIENT_LABELS: "client-a",
    });
    first = await round(1);
    second = await round(2);
  });

  test("every decision is counted, folded into bounded label values", () => {
    const forwardAuth = hostileRequests;
    assert.equal(total(first, "mcp_pdp_decisions_total"), perRound + forwardAuth);
    assert.equal(total(second, "mcp_pdp_decisions_total"), 2 * (perRound + forwardAuth));
    assert.equal(
      total(second, "mcp_pdp_tool_decisions_total", { tool: "files/read_file" }),
      (2 * perRound) / 10,
    );
    assert.equal(
      total(second, "mcp_pdp_client_decisions_total", { client: "client-a" }),
      (2 * perRound) / 10,
    );
    assertLabelsBounded(first);
    assertLabelsBounded(second);
  });

  test("the number of series is small and the same after another round", (t) => {
    const before = pdpSeries(first);
    const after = pdpSeries(second);
    assert.deepEqual(after, before);
    // The refusal counter is pre-set for every source and startup code (so the first refusal is
    // an increase an alert sees): exactly that many series, whatever the traffic.
    const refusals = "mcp_pdp_bundle_load_failures_total";
    assert.equal(
      after[refusals],
      policySourceNames.length * (startupErrorCodes.length + 1),
      "one series per source and refusal code",
    );
    const pdpTotal = Object.entries(after)
      .filter(([family]) => family !== refusals)
      .reduce((sum, [, n]) => sum + n, 0);
    assert.ok(pdpTotal < 200, `the PDP's own families hold ${pdpTotal} series`);
    const everything = second.samples.filter((s) =>
      familyOf(second, s.name).startsWith("mcp_pdp_"),
    );
    assert.ok(everything.length < 500, `${everything.length} series in all`);
    t.diagnostic(
      `series: ${pdpTotal} in the PDP's families, ${everything.length} with process metrics`,
    );
    assert.equal(everything.length, second.samples.length, "nothing outside mcp_pdp_");
    for (const family of ["mcp_pdp_tool_decisions_total", "mcp_pdp_client_decisions_total"]) {
      assert.ok((after[family] ?? 0) <= 4, `${family}: ${after[family]} series`);
    }
  });
});

// ---------------------------------------------------------------- identity

describe("token verifications, JWKS fetches and caller authentication failures", () => {
  let pdp: RunningPdp;
  let jwks: JwksServer;
  let downJwks: JwksServer;
  let signer: TestKey;
  let exposition: Exposition;
  const keys = {
    pep: randomBytes(24).toString("base64url"),
    reporting: randomBytes(24).toString("base64url"),
    unknown: randomBytes(24).toString("base64url"),
  };
  const tokenErrors: string[] = [];

  function claims(overrides: Json = {}): Json {
    return {
      iss: issuer,
      sub: "alice",
      aud: audience,
      iat: nowS - 60,
      exp: nowS + 600,
      auth_time: nowS - 300,
      scope: "mcp:read",
      ...overrides,
    };
  }

  async function withToken(token: string): Promise<DecisionBody> {
    const body = await evaluate(
      pdp,
      call("read_file", "files", { type: "user", properties: { token } }),
      { "x-api-key": keys.pep },
    );
    const record = pdp.decisions.at(-1) as { subject: { token_error: { code: string } | null } };
    tokenErrors.push(record.subject.token_error?.code ?? "valid");
    return body;
  }

  before(async () => {
    signer = await generateTestKey("RS256");
    jwks = await JwksServer.start([signer.publicJwk]);
    closers.push(() => jwks.close());
    downJwks = await JwksServer.start([signer.publicJwk]);
    downJwks.outage = "status-503";
    closers.push(() => downJwks.close());
    const issuerSettings = { audiences: [audience], jwks_cooldown_s: 1, jwks_timeout_ms: 500 };
    pdp = await start(
      {},
      {
        issuers: [
          { issuer, jwks_uri: jwks.url, ...issuerSettings },
          { issuer: downIssuer, jwks_uri: downJwks.url, ...issuerSettings },
        ],
        token_cache: { max_entries: 0 },
        servers: { files: { resource: audience } },
        callers: [
          {
            name: "pep",
            api_key_sha256: [sha256Hex(keys.pep)],
            permissions: ["authzen", "forward_auth"],
          },
          { name: "reporting", api_key_sha256: [sha256Hex(keys.reporting)], permissions: [] },
        ],
        ops: { metrics_open: true },
      },
    );

    assert.equal((await withToken(await mint(signer, claims()))).decision, true);
    assert.equal(
      (await withToken(await mint(signer, claims({ client_id: "client-a" })))).decision,
      true,
    );
    await withToken(await mint(signer, claims({ iat: nowS - 7200, exp: nowS - 3600 })));
    await withToken(await mint(signer, claims({ aud: "https://elsewhere.example.com" })));
    await withToken(await mint(signer, claims({ iss: downIssuer })));
    await withToken("not-a-token");

    const body = JSON.stringify(call("read_file", "files", { type: "user", id: "alice" }));
    const refused = [
      { headers: {}, status: 401 },
      { headers: { "x-api-key": keys.unknown }, status: 401 },
      { headers: { "x-api-key": keys.reporting }, status: 403 },
    ];
    for (const { headers, status } of refused) {
      const answer = await rawRequest(pdp.url, {
        method: "POST",
        path: "/access/v1/evaluation",
        headers: { "content-type": "application/json", ...headers },
        body,
      });
      assert.equal(answer.status, status, answer.text);
    }
    ({ exposition } = await scrape(pdp.url));
  });

  test("mcp_pdp_token_verifications_total: valid, or the reason code", () => {
    assert.deepEqual(tokenErrors, [
      "valid",
      "valid",
      "token_expired",
      "token_wrong_audience",
      "jwks_unavailable",
      "token_malformed",
    ]);
    const expected: Record<string, number> = {};
    for (const result of tokenErrors) increment(expected, key({ result }));
    assert.deepEqual(
      countsBy(exposition, "mcp_pdp_token_verifications_total", ["result"]),
      expected,
    );
  });

  test("mcp_pdp_jwks_fetches_total: success and failure per issuer, one per real fetch", () => {
    const counts = countsBy(exposition, "mcp_pdp_jwks_fetches_total", ["issuer", "outcome"]);
    assert.deepEqual(Object.keys(counts).sort(), [
      key({ issuer: downIssuer, outcome: "failure" }),
      key({ issuer, outcome: "success" }),
    ]);
    assert.equal(counts[key({ issuer, outcome: "success" })], jwks.jwksRequests);
    assert.equal(jwks.jwksRequests, 1, "the keys were fetched once");
    assert.equal(counts[key({ issuer: downIssuer, outcome: "failure" })], downJwks.requests);
    assert.ok(downJwks.requests >= 1);
  });

  test("mcp_pdp_caller_auth_failures_total: unauthenticated (401) and forbidden (403)", () => {
    assert.deepEqual(countsBy(exposition, "mcp_pdp_caller_auth_failures_total", ["reason"]), {
      [key({ reason: "unauthenticated" })]: 2,
      [key({ reason: "forbidden" })]: 1,
    });
    assert.equal(
      total(exposition, "mcp_pdp_http_requests_total", { route: "evaluation", status: "401" }),
      2,
    );
    assert.equal(
      total(exposition, "mcp_pdp_http_requests_total", { route: "evaluation", status: "403" }),
      1,
    );
  });
});

// ---------------------------------------------------------------- HTTP

describe("HTTP requests by route, method and status; histograms; the bundle", () => {
  let pdp: RunningPdp;
  let exposition: Exposition;
  const expected: Record<string, number> = {};

  before(async () => {
    pdp = await start({}, { servers: { files: { resource: audience } } });
    const json = { "content-type": "application/json" };
    const valid = JSON.stringify(method("ping", user("mcp:read")));
    const requests: [string, RawRequest][] = [
      ["evaluation", { method: "POST", path: "/access/v1/evaluation", headers: json, body: valid }],
      ["evaluation", { method: "POST", path: "/access/v1/evaluation", headers: json, body: valid }],
      ["evaluation", { method: "POST", path: "/access/v1/evaluation", headers: json, body: "{" }],
      ["evaluation", { method: "PUT", path: "/access/v1/evaluation", headers: json, body: valid }],
      ["evaluation", { method: "PROPFIND", path: "/access/v1/evaluation" }],
      [
        "evaluations",
        {
          method: "POST",
          path: "/access/v1/evaluations",
          headers: json,
          body: JSON.stringify({
            subject: user("mcp:read"),
            action: { name: "ping" },
            resource: { type: "mcp_server", id: "files" },
            evaluations: [{}, {}],
          }),
        },
      ],
      [
        "search",
        {
          method: "POST",
          path: "/access/v1/search/action",
          headers: json,
          body: JSON.stringify({
            subject: user("mcp:read"),
            action: {},
            resource: { type: "mcp_server", id: "files" },
          }),
        },
      ],
      ["metadata", { method: "GET", path: "/.well-known/authzen-configuration" }],
      ["health", { method: "GET", path: "/health" }],
      ["ready", { method: "GET", path: "/ready" }],
      ["other", { method: "GET", path: "/nope" }],
      [
        "forward_auth",
        { method: "GET", path: "/forward-auth/files", headers: { accept: "text/event-stream" } },
      ],
      [
        "opa_data",
        {
          method: "POST",
          path: "/v1/data/mcp/authz/decision",
          headers: json,
          body: JSON.stringify({ input: {} }),
        },
      ],
      ["metrics", { method: "GET", path: "/metrics" }],
    ];
    for (const [route, request] of requests) {
      const answer = await rawRequest(pdp.url, request);
      const methodLabel = request.method === "PROPFIND" ? "other" : request.method;
      increment(expected, key({ route, method: methodLabel, status: String(answer.status) }));
    }
    ({ exposition } = await scrape(pdp.url));
  });

  test("mcp_pdp_http_requests_total: every request, on the lean path and through express", () => {
    assert.deepEqual(
      countsBy(exposition, "mcp_pdp_http_requests_total", ["route", "method", "status"]),
      expected,
    );
    // The statuses are the ones each route answers.
    for (const [labels, status] of [
      [{ route: "evaluation", method: "POST" }, "200"],
      [{ route: "evaluation", method: "POST" }, "400"],
      [{ route: "evaluation", method: "PUT" }, "405"],
      [{ route: "other", method: "GET" }, "404"],
      [{ route: "forward_auth", method: "GET" }, "401"],
      [{ route: "opa_data", method: "POST" }, "200"],
      [{ route: "metrics", method: "GET" }, "200"],
    ] as const) {
      assert.ok(
        total(exposition, "mcp_pdp_http_requests_total", { ...labels, status }) >= 1,
        `${JSON.stringify(labels)} ${status}`,
      );
    }
  });

  test("mcp_pdp_http_request_duration_seconds: one observation per request, per route", () => {
    for (const route of labelValues(exposition, "mcp_pdp_http_requests_total", "route")) {
      assert.equal(
        total(exposition, "mcp_pdp_http_request_duration_seconds_count", { route }),
        total(exposition, "mcp_pdp_http_requests_total", { route }),
        route,
      );
    }
  });

  test("histograms are in seconds, with buckets from ≤ 10 µs to ≥ 1 s", () => {
    const le = (sample: { labels: Record<string, string> }) =>
      sample.labels.le === "+Inf" ? Infinity : Number(sample.labels.le);
    const histograms = declaredFamilies().filter((f) => exposition.types.get(f) === "histogram");
    assert.deepEqual(histograms, [
      "mcp_pdp_evaluation_duration_seconds",
      "mcp_pdp_http_request_duration_seconds",
    ]);
    for (const family of histograms) {
      const buckets = seriesOf(exposition, `${family}_bucket`);
      assert.ok(buckets.length > 0, family);
      const bounds = [...new Set(buckets.map(le))].sort((a, b) => a - b);
      const finite = bounds.filter((b) => Number.isFinite(b));
      assert.ok((finite[0] ?? 1) <= 0.00001, `${family}: smallest bucket ${finite[0]}`);
      assert.ok((finite.at(-1) ?? 0) >= 1, `${family}: largest bucket ${finite.at(-1)}`);
      assert.equal(bounds.at(-1), Infinity, `${family}: +Inf bucket`);
      // Per series (route): cumulative buckets, the +Inf one equal to the count, a mean in seconds.
      for (const route of new Set(buckets.map((b) => b.labels.route))) {
        const selector: Record<string, string> = route === undefined ? {} : { route };
        const own = buckets.filter((b) => b.labels.route === route).sort((a, b) => le(a) - le(b));
        for (let i = 1; i < own.length; i += 1) {
          assert.ok((own[i]?.value ?? 0) >= (own[i - 1]?.value ?? 0), `${family} ${route}`);
        }
        const count = total(exposition, `${family}_count`, selector);
        assert.equal(own.at(-1)?.value, count);
        // A loopback request or an evaluation takes well under a second (not milliseconds).
        const mean = total(exposition, `${family}_sum`, selector) / count;
        assert.ok(mean > 0 && mean < 0.5, `${family} ${route}: mean ${mean}`);
      }
    }
  });

  test("mcp_pdp_bundle_info carries the active revision and entrypoint", async () => {
    const ready = (await (await fetch(`${pdp.url}/ready`)).json()) as { revision: string };
    // The bundle's revision and, with PDP_DATA, the digest of the operator data.
    assert.match(ready.revision, /^sha256-[0-9a-f]{16}\+data\.[0-9a-f]{12}$/);
    assert.deepEqual(seriesOf(exposition, "mcp_pdp_bundle_info"), [
      {
        name: "mcp_pdp_bundle_info",
        labels: { revision: ready.revision, entrypoint: "mcp/authz/decision" },
        value: 1,
      },
    ]);
    assert.ok(pdp.decisions.length > 0);
    for (const record of pdp.decisions) assert.equal(record.revision, ready.revision);
    const loadedAt = total(exposition, "mcp_pdp_bundle_loaded_timestamp_seconds");
    // Activation time on the PDP's (injected, frozen) clock, like every other time it reports.
    assert.equal(loadedAt, noonUtcMs / 1000);
    assert.equal(total(exposition, "mcp_pdp_bundle_load_failures_total"), 0);
  });
});

// ---------------------------------------------------------------- where /metrics is served

describe("/metrics placement and ops credentials", () => {
  const keys = {
    ops: randomBytes(24).toString("base64url"),
    monitor: randomBytes(24).toString("base64url"),
    pep: randomBytes(24).toString("base64url"),
  };
  const closedOps = {
    callers: [
      { name: "monitor", api_key_sha256: [sha256Hex(keys.monitor)], permissions: ["ops"] },
      {
        name: "pep",
        api_key_sha256: [sha256Hex(keys.pep)],
        permissions: ["authzen"],
        assert_subject: true,
      },
    ],
    ops: { api_key_sha256: [sha256Hex(keys.ops)] },
  };

  async function getMetrics(url: string, headers: Record<string, string> = {}) {
    return rawRequest(url, { method: "GET", path: "/metrics", headers });
  }

  test("with ops.api_key_sha256: 401 without or with a wrong key, 403 for a caller without ops, 200 with", async () => {
    const pdp = await start({}, closedOps);
    const without = await getMetrics(pdp.url);
    assert.equal(without.status, 401, without.text);
    assert.match(headerOf(without, "www-authenticate") ?? "", /^ApiKey /);
    assert.doesNotMatch(without.text, /mcp_pdp_/);
    assert.equal((await getMetrics(pdp.url, { "x-api-key": "wrong" })).status, 401);
    assert.equal((await getMetrics(pdp.url, { "x-api-key": keys.pep })).status, 403);
    const monitor = await getMetrics(pdp.url, { "x-api-key": keys.monitor });
    assert.equal(monitor.status, 200, monitor.text);
    const { exposition } = await scrape(pdp.url, { "x-api-key": keys.ops });
    assert.deepEqual(countsBy(exposition, "mcp_pdp_caller_auth_failures_total", ["reason"]), {
      [key({ reason: "unauthenticated" })]: 2,
      [key({ reason: "forbidden" })]: 1,
    });
    assert.equal(
      total(exposition, "mcp_pdp_http_requests_total", { route: "metrics", status: "401" }),
      2,
    );
  });

  test("without ops keys /metrics is open on the main listener", async () => {
    const pdp = await start();
    await scrape(pdp.url);
  });

  test("PDP_METRICS_PORT: /metrics leaves the main listener for its own, still behind the ops guard", async () => {
    const pdp = await start({ PDP_METRICS_PORT: "0" }, closedOps);
    assert.equal((await getMetrics(pdp.url, { "x-api-key": keys.ops })).status, 404);
    const listener = pdp.app.metricsListener;
    assert.ok(listener !== undefined, "app.metricsListener");
    const server: Server = createServer(listener);
    await new Promise<void>((resolve) => server.listen(0, "127.0.0.1", resolve));
    closers.push(
      () =>
        new Promise<void>((resolve) => {
          server.closeAllConnections();
          server.close(() => {
            resolve();
          });
        }),
    );
    const metricsUrl = `http://127.0.0.1:${(server.address() as AddressInfo).port}`;
    assert.equal((await getMetrics(metricsUrl)).status, 401);
    await evaluate(pdp, method("ping", user("mcp:read")), { "x-api-key": keys.pep });
    const { exposition } = await scrape(metricsUrl, { "x-api-key": keys.ops });
    assert.equal(total(exposition, "mcp_pdp_decisions_total", { action: "ping" }), 1);
    assert.equal((await rawRequest(metricsUrl, { method: "GET", path: "/health" })).status, 404);
  });
});

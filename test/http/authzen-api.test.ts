import assert from "node:assert/strict";
import { after, before, describe, test } from "node:test";
import { fileURLToPath } from "node:url";
import { postJson, startPdp, type RunningPdp } from "../support/pdp.ts";

/**
 * The AuthZEN Authorization API over real HTTP, with the operator data of
 * examples/operator-data.yaml and a clock frozen at 2025-11-26T10:00:00Z
 * (inside the destructive class's hours_utc [7, 19]).
 */

const operatorData = fileURLToPath(new URL("../../examples/operator-data.yaml", import.meta.url));
const publicUrl = "https://pdp.example.test/authz";
const maxEvaluations = 4;

const tenUtcMs = Date.UTC(2025, 10, 26, 10, 0, 0);
const threeUtcMs = Date.UTC(2025, 10, 26, 3, 0, 0);
const nowS = tenUtcMs / 1000;
/** The PDP's clock; one test moves it and puts it back. */
let clockMs = tenUtcMs;

const uuid = /^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$/;

interface DecisionContext {
  id: string;
  reasons: { code: string; admin: string; user: string }[];
  risk: unknown;
  obligations: Record<string, unknown>;
  reason_admin?: { en: string };
  reason_user?: { en: string };
}

interface DecisionBody {
  decision: boolean;
  context: DecisionContext;
}

interface BatchBody {
  evaluations: { decision: boolean; context: Record<string, unknown> }[];
}

interface ErrorBody {
  code: string;
  message: string;
  field?: string;
}

type Json = Record<string, unknown>;

/** A reader: mcp:read, signed in 5 minutes ago, no MFA. */
function reader(properties: Json = {}): Json {
  return {
    type: "user",
    id: "alice",
    properties: { scopes: ["mcp:read"], auth_time: nowS - 300, ...properties },
  };
}

/** An administrator who passes every destructive requirement at 10:00 UTC. */
function admin(properties: Json = {}): Json {
  return {
    type: "user",
    id: "root",
    properties: { scopes: ["mcp:admin"], acr: "mfa", auth_time: nowS - 300, ...properties },
  };
}

const toolCall = { name: "tools/call" };
const readFile = { type: "tool", id: "files/read_file" };
const deleteFile = { type: "tool", id: "files/delete_file" };
const compliant = { device: { trust: "compliant" } };

function call(subject: Json, resource: Json, context: Json = compliant): Json {
  return { subject, action: toolCall, resource, context };
}

let pdp: RunningPdp;

before(async () => {
  pdp = await startPdp({
    env: {
      PDP_DATA: operatorData,
      PDP_PUBLIC_URL: `${publicUrl}/`,
      PDP_MAX_EVALUATIONS: String(maxEvaluations),
      // The least allowed (PDP_MAX_BODY_BYTES), so a few items can reach it.
      PDP_MAX_BATCH_INPUT_BYTES: String(1024 * 1024),
    },
    clock: () => clockMs,
  });
});

after(async () => {
  await pdp.close();
});

async function evaluation(
  body: unknown,
  headers: Record<string, string> = {},
): Promise<{ status: number; headers: Headers; body: DecisionBody }> {
  const response = await postJson(`${pdp.url}/access/v1/evaluation`, body, headers);
  assert.equal(response.status, 200, JSON.stringify(response.body));
  return { ...response, body: response.body as DecisionBody };
}

async function decisionOf(body: unknown): Promise<DecisionBody> {
  return (await evaluation(body)).body;
}

async function batch(body: unknown): Promise<BatchBody> {
  const response = await postJson(`${pdp.url}/access/v1/evaluations`, body);
  assert.equal(response.status, 200, JSON.stringify(response.body));
  const parsed = response.body as BatchBody;
  assert.ok(Array.isArray(parsed.evaluations), "the response lists evaluations");
  return parsed;
}

async function send(
  method: string,
  path: string,
  init: { headers?: Record<string, string>; body?: string | Uint8Array } = {},
): Promise<{ status: number; headers: Headers; body: unknown }> {
  const response = await fetch(`${pdp.url}${path}`, {
    method,
    ...(init.headers === undefined ? {} : { headers: init.headers }),
    ...(init.body === undefined ? {} : { body: init.body }),
  });
  const text = await response.text();
  return {
    status: response.status,
    headers: response.headers,
    body: text === "" ? undefined : JSON.parse(text),
  };
}

function codes(body: DecisionBody): string[] {
  return body.context.reasons.map((reason) => reason.code).sort();
}

describe("POST /access/v1/evaluation", () => {
  test("allows a read tool named <server>/<tool> in the id, with the full response shape", async () => {
    const { body } = await evaluation(call(reader(), readFile, { device: { trust: "unmanaged" } }));
    assert.equal(body.decision, true);
    assert.deepEqual(Object.keys(body).sort(), ["context", "decision"]);
    assert.deepEqual(Object.keys(body.context).sort(), ["id", "obligations", "reasons", "risk"]);
    assert.match(body.context.id, uuid);
    assert.deepEqual(body.context.reasons, []);
    assert.deepEqual(body.context.risk, { class: "read", source: "catalog" });
    assert.deepEqual(body.context.obligations, {});
  });

  test("allows the same tool named by properties.server (with and without properties.tool)", async () => {
    for (const resource of [
      { type: "tool", id: "read_file", properties: { server: "files" } },
      { type: "tool", id: "read_file", properties: { server: "files", tool: "read_file" } },
    ]) {
      const body = await decisionOf(call(reader(), resource));
      assert.equal(body.decision, true, JSON.stringify(resource));
      assert.deepEqual(body.context.risk, { class: "read", source: "catalog" });
    }
  });

  test("denies a destructive tool to a reader, with reasons and a step_up obligation", async () => {
    const { body } = await evaluation(call(reader(), deleteFile));
    assert.equal(body.decision, false);
    assert.deepEqual(Object.keys(body.context).sort(), [
      "id",
      "obligations",
      "reason_admin",
      "reason_user",
      "reasons",
      "risk",
    ]);
    assert.deepEqual(codes(body), ["acr_insufficient", "scope_missing"]);
    for (const reason of body.context.reasons) {
      assert.equal(typeof reason.admin, "string");
      assert.ok(reason.user.length > 0);
    }
    assert.deepEqual(body.context.risk, { class: "destructive", source: "catalog" });
    assert.deepEqual(body.context.obligations, {
      step_up: { scopes: ["mcp:admin"], acr_values: ["mfa"] },
    });
    const reasonAdmin = body.context.reason_admin?.en ?? "";
    for (const code of codes(body)) assert.ok(reasonAdmin.includes(code), reasonAdmin);
    assert.ok((body.context.reason_user?.en ?? "").length > 0);
  });

  test("offers no step_up when a denial cannot be fixed by signing in again", async () => {
    const body = await decisionOf(call(reader(), deleteFile, { device: { trust: "unmanaged" } }));
    assert.equal(body.decision, false);
    assert.ok(codes(body).includes("device_untrusted"));
    assert.deepEqual(body.context.obligations, {});
  });

  test("allows the destructive tool to an administrator on a compliant device", async () => {
    const body = await decisionOf(call(admin(), deleteFile));
    assert.equal(body.decision, true, JSON.stringify(body.context.reasons));
    assert.deepEqual(body.context.risk, { class: "destructive", source: "catalog" });
  });

  test("the x-decision-id header equals context.id, and every decision has its own id", async () => {
    const first = await evaluation(call(reader(), readFile));
    const second = await evaluation(call(reader(), deleteFile));
    assert.equal(first.headers.get("x-decision-id"), first.body.context.id);
    assert.equal(second.headers.get("x-decision-id"), second.body.context.id);
    assert.match(first.body.context.id, uuid);
    assert.notEqual(first.body.context.id, second.body.context.id);
  });

  test("echoes a client's X-Request-ID", async () => {
    const { headers } = await evaluation(call(reader(), readFile), {
      "x-request-id": "req-123_abc.XYZ",
    });
    assert.equal(headers.get("x-request-id"), "req-123_abc.XYZ");
  });

  test("assigns a fresh X-Request-ID when none (or a malformed one) is sent", async () => {
    const none = await evaluation(call(reader(), readFile));
    const other = await evaluation(call(reader(), readFile));
    const bad = await evaluation(call(reader(), readFile), { "x-request-id": "has spaces in it" });
    const long = await evaluation(call(reader(), readFile), { "x-request-id": "x".repeat(129) });
    const ids = [none, other, bad, long].map((r) => r.headers.get("x-request-id") ?? "");
    for (const id of ids) assert.match(id, uuid);
    assert.equal(new Set(ids).size, ids.length);
  });

  test("ignores unknown fields at every level", async () => {
    const body = {
      subject: {
        ...reader(),
        extra: { a: 1 },
        properties: { ...(reader().properties as Json), team: "x" },
      },
      action: { ...toolCall, properties: { arguments: { path: "/etc/hosts" } }, verb: "run" },
      resource: {
        ...readFile,
        owner: "ops",
        properties: { annotations: { readOnlyHint: true, customHint: "x" }, labels: ["a"] },
      },
      context: { device: { trust: "unmanaged", os: "linux" }, weather: "sunny", user_agent: "t" },
      extension: { nested: [1, 2, { deep: true }] },
      version: 7,
    };
    const allowed = await decisionOf(body);
    assert.equal(allowed.decision, true);
    assert.deepEqual(allowed.context.risk, { class: "read", source: "catalog" });
    const denied = await decisionOf({ ...body, resource: { ...deleteFile, owner: "ops" } });
    assert.equal(denied.decision, false);
  });
});

describe("scopes", () => {
  test("a space-separated scope string grants like a scopes array", async () => {
    const fromString = await decisionOf(
      call(
        { type: "user", id: "a", properties: { scope: "openid mcp:read", auth_time: nowS } },
        readFile,
      ),
    );
    const fromArray = await decisionOf(
      call(
        { type: "user", id: "a", properties: { scopes: ["openid", "mcp:read"], auth_time: nowS } },
        readFile,
      ),
    );
    assert.equal(fromString.decision, true);
    assert.equal(fromArray.decision, true);
  });

  test("extra spaces in the scope string do not matter", async () => {
    const body = await decisionOf(
      call(
        { type: "user", id: "a", properties: { scope: "  openid   mcp:read ", auth_time: nowS } },
        readFile,
      ),
    );
    assert.equal(body.decision, true);
  });

  test("without the required scope, in either form, the call is denied with scope_missing", async () => {
    for (const properties of [
      { scope: "openid profile", auth_time: nowS },
      { scopes: ["openid", "mcp:readonly"], auth_time: nowS },
      { scope: "mcp:read:extra", auth_time: nowS },
      { auth_time: nowS },
    ]) {
      const body = await decisionOf(call({ type: "user", id: "a", properties }, readFile));
      assert.equal(body.decision, false, JSON.stringify(properties));
      assert.deepEqual(codes(body), ["scope_missing"]);
      assert.deepEqual(body.context.obligations, { step_up: { scopes: ["mcp:read"] } });
    }
  });

  test("all destructive scopes can come from the scope string", async () => {
    const subject = {
      type: "user",
      id: "a",
      properties: { scope: "mcp:admin", acr: "mfa", auth_time: nowS },
    };
    assert.equal((await decisionOf(call(subject, deleteFile))).decision, true);
  });
});

describe("auth_time", () => {
  // The read class allows authentication up to 86 400 s old.
  test("the auth age is computed from the PDP's clock: 86 400 s old is fresh, 86 401 s is not", async () => {
    const fresh = await decisionOf(call(reader({ auth_time: nowS - 86400 }), readFile));
    assert.equal(fresh.decision, true);
    const stale = await decisionOf(call(reader({ auth_time: nowS - 86401 }), readFile));
    assert.equal(stale.decision, false);
    assert.deepEqual(codes(stale), ["auth_too_old"]);
    assert.deepEqual(stale.context.obligations, { step_up: { max_age: 86400 } });
  });

  test("without auth_time the authentication is never fresh", async () => {
    const body = await decisionOf(
      call({ type: "user", id: "a", properties: { scopes: ["mcp:read"] } }, readFile),
    );
    assert.equal(body.decision, false);
    assert.deepEqual(codes(body), ["auth_too_old"]);
  });

  test("a caller-supplied auth_age_s cannot make a stale authentication fresh", async () => {
    for (const properties of [
      { auth_time: nowS - 86401, auth_age_s: 0 },
      { auth_age_s: 0 },
      { auth_age_s: -5 },
    ]) {
      const subject = {
        type: "user",
        id: "a",
        properties: { scopes: ["mcp:read"], ...properties },
      };
      const body = await decisionOf(call(subject, readFile));
      assert.equal(body.decision, false, JSON.stringify(properties));
      assert.deepEqual(codes(body), ["auth_too_old"]);
    }
  });

  test("a caller-supplied auth_age_s cannot make a fresh authentication stale", async () => {
    const body = await decisionOf(call(reader({ auth_age_s: 10_000_000 }), readFile));
    assert.equal(body.decision, true);
  });

  // Product bug (fails): auth_age_s = now - auth_time goes negative and negative counts as fresh.
  test("an auth_time a day in the future is not fresh (fails closed)", async () => {
    const body = await decisionOf(call(reader({ auth_time: nowS + 86400 }), readFile));
    assert.equal(body.decision, false);
  });
});

describe("context.time", () => {
  test("a caller-supplied context.time outside the allowed hours does not deny", async () => {
    const context = {
      ...compliant,
      time: { rfc3339: "2025-11-26T03:00:00Z", unix_s: threeUtcMs / 1000 },
    };
    const body = await decisionOf(call(admin(), deleteFile, context));
    assert.equal(body.decision, true, JSON.stringify(body.context.reasons));
  });

  test("a caller-supplied context.time inside the allowed hours does not allow at 03:00", async () => {
    clockMs = threeUtcMs;
    try {
      const context = { ...compliant, time: { rfc3339: "2025-11-26T10:00:00Z", unix_s: nowS } };
      const subject = admin({ auth_time: threeUtcMs / 1000 - 60 });
      const body = await decisionOf(call(subject, deleteFile, context));
      assert.equal(body.decision, false);
      assert.deepEqual(codes(body), ["outside_hours"]);
    } finally {
      clockMs = tenUtcMs;
    }
  });

  test("a context.time of the wrong shape is replaced, not an error", async () => {
    const body = await decisionOf(call(admin(), deleteFile, { ...compliant, time: "whenever" }));
    assert.equal(body.decision, true);
  });
});

describe("POST /access/v1/evaluations", () => {
  const defaults = { subject: reader(), action: toolCall, context: compliant };

  test("items inherit subject, action and context from the request", async () => {
    const { evaluations } = await batch({
      ...defaults,
      evaluations: [{ resource: readFile }, { resource: deleteFile }],
      options: { include_context: true },
    });
    assert.equal(evaluations.length, 2);
    assert.equal(evaluations[0]?.decision, true);
    assert.equal(evaluations[1]?.decision, false);
    assert.deepEqual(evaluations[1].context.obligations, {
      step_up: { scopes: ["mcp:admin"], acr_values: ["mfa"] },
    });
  });

  test("the top-level resource is a default too", async () => {
    const { evaluations } = await batch({
      ...defaults,
      resource: deleteFile,
      evaluations: [{}, { subject: admin() }],
    });
    assert.deepEqual(
      evaluations.map((e) => e.decision),
      [false, true],
    );
  });

  test("an item's own subject replaces the default wholesale (no merge of properties)", async () => {
    const { evaluations } = await batch({
      ...defaults,
      resource: readFile,
      // The default subject has mcp:read; this one has no properties at all.
      evaluations: [{}, { subject: { type: "user", id: "bob" } }],
      options: { include_context: true },
    });
    assert.equal(evaluations[0]?.decision, true);
    assert.equal(evaluations[1]?.decision, false);
    const reasons = evaluations[1].context.reasons as { code: string }[];
    assert.deepEqual(reasons.map((r) => r.code).sort(), ["auth_too_old", "scope_missing"]);
  });

  test("an item's own context replaces the default wholesale", async () => {
    const { evaluations } = await batch({
      ...defaults,
      resource: deleteFile,
      subject: admin(),
      // The default context has a compliant device; this one names only an ip.
      evaluations: [{}, { context: { ip: "10.1.2.3" } }],
      options: { include_context: true },
    });
    assert.equal(evaluations[0]?.decision, true);
    assert.equal(evaluations[1]?.decision, false);
    const reasons = evaluations[1].context.reasons as { code: string }[];
    assert.deepEqual(
      reasons.map((r) => r.code),
      ["device_untrusted"],
    );
  });

  const mixed = [{ resource: readFile }, { resource: deleteFile }, { resource: readFile }];
  const denyAllowDeny = [
    { resource: deleteFile },
    { resource: readFile },
    { resource: deleteFile },
  ];

  test("execute_all (explicit or default) evaluates every item", async () => {
    for (const options of [{}, { evaluations_semantic: "execute_all" }]) {
      const { evaluations } = await batch({ ...defaults, evaluations: mixed, options });
      assert.deepEqual(
        evaluations.map((e) => e.decision),
        [true, false, true],
      );
    }
  });

  test("deny_on_first_deny stops after the first deny", async () => {
    const { evaluations } = await batch({
      ...defaults,
      evaluations: mixed,
      options: { evaluations_semantic: "deny_on_first_deny" },
    });
    assert.deepEqual(
      evaluations.map((e) => e.decision),
      [true, false],
    );
  });

  test("deny_on_first_deny evaluates everything when nothing is denied", async () => {
    const { evaluations } = await batch({
      ...defaults,
      evaluations: [{ resource: readFile }, { resource: readFile }, { resource: readFile }],
      options: { evaluations_semantic: "deny_on_first_deny" },
    });
    assert.deepEqual(
      evaluations.map((e) => e.decision),
      [true, true, true],
    );
  });

  test("permit_on_first_permit stops after the first permit", async () => {
    const { evaluations } = await batch({
      ...defaults,
      evaluations: denyAllowDeny,
      options: { evaluations_semantic: "permit_on_first_permit" },
    });
    assert.deepEqual(
      evaluations.map((e) => e.decision),
      [false, true],
    );
  });

  test("permit_on_first_permit evaluates everything when nothing is permitted", async () => {
    const { evaluations } = await batch({
      ...defaults,
      evaluations: [{ resource: deleteFile }, { resource: deleteFile }],
      options: { evaluations_semantic: "permit_on_first_permit" },
    });
    assert.deepEqual(
      evaluations.map((e) => e.decision),
      [false, false],
    );
  });

  test("an invalid item fails alone with its error; the others are evaluated", async () => {
    const { evaluations } = await batch({
      ...defaults,
      evaluations: [
        { resource: readFile },
        { resource: { type: "tool" } },
        { resource: deleteFile },
        { resource: readFile, action: { name: 42 } },
      ],
    });
    assert.equal(evaluations.length, 4);
    assert.equal(evaluations[0]?.decision, true);
    assert.equal(evaluations[2]?.decision, false);
    assert.equal(evaluations[3]?.decision, false);
    for (const [index, field] of [
      [1, "/evaluations/1/resource/id"],
      [3, "/evaluations/3/action/name"],
    ] as const) {
      const item = evaluations[index];
      assert.equal(item?.decision, false);
      assert.deepEqual(Object.keys(item.context), ["error"]);
      const error = item.context.error as ErrorBody & { status: number };
      assert.equal(error.status, 400);
      assert.equal(error.code, "invalid_request");
      assert.equal(error.field, field);
    }
  });

  test("an item missing resource with no default names /evaluations/<i>/resource", async () => {
    const { evaluations } = await batch({
      ...defaults,
      evaluations: [{ resource: readFile }, {}],
    });
    const error = evaluations[1]?.context.error as ErrorBody & { status: number };
    assert.equal(evaluations[1]?.decision, false);
    assert.equal(error.code, "invalid_request");
    assert.equal(error.field, "/evaluations/1/resource");
  });

  test("an unknown evaluations_semantic is 400 invalid_request naming the option", async () => {
    const response = await postJson(`${pdp.url}/access/v1/evaluations`, {
      ...defaults,
      evaluations: mixed,
      options: { evaluations_semantic: "first_match" },
    });
    assert.equal(response.status, 400);
    const body = response.body as ErrorBody;
    assert.equal(body.code, "invalid_request");
    assert.equal(body.field, "/options/evaluations_semantic");
  });

  test("without evaluations (missing or empty) the request answers as a single evaluation", async () => {
    for (const extra of [{}, { evaluations: [] }]) {
      const response = await postJson(`${pdp.url}/access/v1/evaluations`, {
        ...defaults,
        resource: readFile,
        ...extra,
      });
      assert.equal(response.status, 200);
      const body = response.body as DecisionBody;
      assert.equal(body.decision, true);
      assert.ok(!("evaluations" in body));
      assert.deepEqual(body.context.risk, { class: "read", source: "catalog" });
      assert.equal(response.headers.get("x-decision-id"), body.context.id);
    }
  });

  test("without evaluations a missing resource is 400 naming /resource", async () => {
    const response = await postJson(`${pdp.url}/access/v1/evaluations`, {
      ...defaults,
      evaluations: [],
    });
    assert.equal(response.status, 400);
    const body = response.body as ErrorBody;
    assert.equal(body.code, "invalid_request");
    assert.equal(body.field, "/resource");
  });

  test(`at most PDP_MAX_EVALUATIONS (${maxEvaluations}) items; more is 400 too_many_evaluations`, async () => {
    const atLimit = await batch({
      ...defaults,
      evaluations: Array.from({ length: maxEvaluations }, () => ({ resource: readFile })),
    });
    assert.equal(atLimit.evaluations.length, maxEvaluations);
    const response = await postJson(`${pdp.url}/access/v1/evaluations`, {
      ...defaults,
      evaluations: Array.from({ length: maxEvaluations + 1 }, () => ({ resource: readFile })),
    });
    assert.equal(response.status, 400);
    const body = response.body as ErrorBody;
    assert.equal(body.code, "too_many_evaluations");
    assert.equal(body.field, "/evaluations");
  });

  test("inherited parts count once per item: over PDP_MAX_BATCH_INPUT_BYTES is 400 batch_too_large", async () => {
    // 4 items inheriting a 300 KB context are 1.2 MB for the evaluator to parse (limit here:
    // 1 MiB), from a body of 300 KB; 2 such items are 0.9 MB and served.
    const context = { ...compliant, note: "x".repeat(300_000) };
    const many = await postJson(`${pdp.url}/access/v1/evaluations`, {
      ...defaults,
      context,
      evaluations: Array.from({ length: maxEvaluations }, () => ({ resource: readFile })),
    });
    assert.equal(many.status, 400);
    const body = many.body as ErrorBody;
    assert.equal(body.code, "batch_too_large");
    assert.equal(body.field, "/evaluations");
    const fewer = await batch({
      ...defaults,
      context,
      evaluations: Array.from({ length: 2 }, () => ({ resource: readFile })),
    });
    assert.equal(fewer.evaluations.length, 2);
    // Items that bring their own small context inherit nothing large.
    const own = await batch({
      ...defaults,
      context,
      evaluations: Array.from({ length: maxEvaluations }, () => ({
        resource: readFile,
        context: compliant,
      })),
    });
    assert.equal(own.evaluations.length, maxEvaluations);
  });

  test("items carry only what was asked for by default: {decision}", async () => {
    for (const options of [{}, { include_context: false }]) {
      const { evaluations } = await batch({ ...defaults, evaluations: mixed, options });
      assert.deepEqual(
        evaluations.map((item) => Object.keys(item)),
        [["decision"], ["decision"], ["decision"]],
      );
    }
  });

  test("include_context: true gives every item the full decision context", async () => {
    const { evaluations } = await batch({
      ...defaults,
      evaluations: mixed,
      options: { include_context: true },
    });
    const [allowed, denied] = evaluations;
    assert.deepEqual(Object.keys(allowed?.context ?? {}).sort(), [
      "id",
      "obligations",
      "reasons",
      "risk",
    ]);
    assert.deepEqual(allowed?.context.risk, { class: "read", source: "catalog" });
    assert.deepEqual(allowed.context.reasons, []);
    assert.deepEqual(Object.keys(denied?.context ?? {}).sort(), [
      "id",
      "obligations",
      "reason_admin",
      "reason_user",
      "reasons",
      "risk",
    ]);
    assert.deepEqual(denied?.context.risk, { class: "destructive", source: "catalog" });
  });
});

describe("GET /.well-known/authzen-configuration", () => {
  test("publishes the PDP, both evaluation endpoints and the search endpoints under PDP_PUBLIC_URL (trailing slash dropped)", async () => {
    const response = await send("GET", "/.well-known/authzen-configuration");
    assert.equal(response.status, 200);
    assert.deepEqual(response.body, {
      policy_decision_point: publicUrl,
      access_evaluation_endpoint: `${publicUrl}/access/v1/evaluation`,
      access_evaluations_endpoint: `${publicUrl}/access/v1/evaluations`,
      search_resource_endpoint: `${publicUrl}/access/v1/search/resource`,
      search_action_endpoint: `${publicUrl}/access/v1/search/action`,
      search_subject_endpoint: `${publicUrl}/access/v1/search/subject`,
      supported_obligations: ["step-up", "custom"],
    });
  });
});

describe("routing and operations", () => {
  for (const [method, path, allow] of [
    ["GET", "/access/v1/evaluation", "POST"],
    ["PUT", "/access/v1/evaluation", "POST"],
    ["DELETE", "/access/v1/evaluation", "POST"],
    ["GET", "/access/v1/evaluations", "POST"],
    ["PUT", "/access/v1/evaluations", "POST"],
    ["POST", "/.well-known/authzen-configuration", "GET"],
    ["POST", "/health", "GET"],
    ["POST", "/ready", "GET"],
  ] as const) {
    test(`${method} ${path} is 405 with Allow: ${allow}`, async () => {
      const response = await send(method, path, {
        headers: { "content-type": "application/json" },
        ...(method === "GET" ? {} : { body: "{}" }),
      });
      assert.equal(response.status, 405);
      assert.equal(response.headers.get("allow"), allow);
      assert.equal((response.body as ErrorBody).code, "method_not_allowed");
    });
  }

  for (const [method, path] of [
    ["GET", "/"],
    ["GET", "/nope"],
    ["POST", "/access/v1/evaluationz"],
    ["POST", "/access/v2/evaluation"],
    ["POST", "/access/v1/evaluation/extra"],
    ["GET", "/.well-known/openid-configuration"],
  ] as const) {
    test(`${method} ${path} is 404 not_found`, async () => {
      const response = await send(method, path, {
        headers: { "content-type": "application/json" },
        ...(method === "GET" ? {} : { body: "{}" }),
      });
      assert.equal(response.status, 404);
      assert.equal((response.body as ErrorBody).code, "not_found");
    });
  }

  for (const path of ["/access/v1/evaluation", "/access/v1/evaluations"]) {
    const valid = JSON.stringify(call(reader(), readFile));

    test(`POST ${path} with text/plain is 415 unsupported_media_type`, async () => {
      const response = await send("POST", path, {
        headers: { "content-type": "text/plain" },
        body: valid,
      });
      assert.equal(response.status, 415);
      assert.equal((response.body as ErrorBody).code, "unsupported_media_type");
    });

    test(`POST ${path} without Content-Type is 415 unsupported_media_type`, async () => {
      // A byte body makes fetch send no Content-Type at all.
      const response = await send("POST", path, { body: new TextEncoder().encode(valid) });
      assert.equal(response.status, 415);
      assert.equal((response.body as ErrorBody).code, "unsupported_media_type");
    });

    test(`POST ${path} accepts application/json; charset=utf-8`, async () => {
      const response = await send("POST", path, {
        headers: { "content-type": "application/json; charset=utf-8" },
        body: valid,
      });
      assert.equal(response.status, 200);
      assert.equal((response.body as DecisionBody).decision, true);
    });
  }

  test("GET /health is 200", async () => {
    const response = await send("GET", "/health");
    assert.equal(response.status, 200);
    assert.deepEqual(response.body, { status: "ok" });
  });

  test("GET /ready is 200 with the engine's revision", async () => {
    const response = await send("GET", "/ready");
    assert.equal(response.status, 200);
    const revision = pdp.app.engine.revision;
    assert.equal(typeof revision, "string");
    assert.ok(revision.length > 0);
    assert.deepEqual(response.body, { status: "ready", revision });
  });
});

/**
 * Caller authentication over HTTP: who may call the PDP's own API (X-Api-Key,
 * stored as SHA-256 digests, several per caller for rotation), with which
 * permission, and whether it may assert subject properties without a token
 * (the trusted-gateway mode). Ops endpoints: open by default, or behind their
 * own keys.
 */
import assert from "node:assert/strict";
import { createHash, randomBytes } from "node:crypto";
import { writeFileSync } from "node:fs";
import { join } from "node:path";
import { after, before, describe, test } from "node:test";
import { fileURLToPath } from "node:url";
import { loadConfig } from "../../src/config/index.ts";
import { StartupError } from "../../src/errors.ts";
import { scratchDir } from "../support/opa.ts";
import { startPdp, type RunningPdp } from "../support/pdp.ts";

const operatorData = fileURLToPath(new URL("../../examples/operator-data.yaml", import.meta.url));
const nowMs = Date.UTC(2025, 10, 26, 10, 0, 0);
const nowS = nowMs / 1000;

type Json = Record<string, unknown>;

interface ErrorBody {
  code: string;
  message: string;
  field?: string;
}

interface DecisionBody {
  decision: boolean;
  context: { reasons?: { code: string }[]; error?: ErrorBody & { status: number } };
}

interface Reply {
  status: number;
  headers: Headers;
  body: unknown;
}

/** A fresh random API key: generated per run, never committed. */
function newKey(): string {
  return randomBytes(24).toString("base64url");
}

function sha256Hex(key: string): string {
  return createHash("sha256").update(key, "utf8").digest("hex");
}

const keys = {
  pepOld: newKey(),
  pepNew: newKey(),
  gateway: newKey(),
  noPermission: newKey(),
  monitor: newKey(),
  ops: newKey(),
  unknown: newKey(),
};

const callers = [
  {
    name: "pep",
    api_key_sha256: [sha256Hex(keys.pepOld), sha256Hex(keys.pepNew)],
    permissions: ["authzen"],
  },
  { name: "gateway", api_key_sha256: [sha256Hex(keys.gateway)], assert_subject: true },
  { name: "reporting", api_key_sha256: [sha256Hex(keys.noPermission)], permissions: [] },
  { name: "monitor", api_key_sha256: [sha256Hex(keys.monitor)], permissions: ["ops"] },
];

const scratch = scratchDir();

function writeConfig(name: string, content: Json): string {
  const file = join(scratch.dir, name);
  writeFileSync(file, JSON.stringify(content, null, 2));
  return file;
}

const callersConfig = writeConfig("callers.json", { callers });
const opsLockedConfig = writeConfig("ops-locked.json", {
  callers,
  ops: { api_key_sha256: [sha256Hex(keys.ops)] },
});

const publicUrl = "https://pdp.example.test";

function env(configFile: string): Record<string, string> {
  return { PDP_CONFIG: configFile, PDP_DATA: operatorData, PDP_PUBLIC_URL: publicUrl };
}

let lean: RunningPdp;
let opsLocked: RunningPdp;

before(async () => {
  lean = await startPdp({ env: env(callersConfig), clock: () => nowMs });
  opsLocked = await startPdp({ env: env(opsLockedConfig), clock: () => nowMs });
});

after(async () => {
  await Promise.all([lean.close(), opsLocked.close()]);
  scratch.remove();
});

async function send(
  pdp: RunningPdp,
  method: string,
  path: string,
  init: { headers?: Record<string, string>; body?: unknown } = {},
): Promise<Reply> {
  const body =
    init.body === undefined
      ? undefined
      : typeof init.body === "string"
        ? init.body
        : JSON.stringify(init.body);
  const response = await fetch(`${pdp.url}${path}`, {
    method,
    headers: {
      ...(body === undefined ? {} : { "content-type": "application/json" }),
      ...init.headers,
    },
    ...(body === undefined ? {} : { body }),
  });
  const text = await response.text();
  return {
    status: response.status,
    headers: response.headers,
    body: text === "" ? undefined : JSON.parse(text),
  };
}

const evaluationPath = "/access/v1/evaluation";
const evaluationsPath = "/access/v1/evaluations";
const decisionPaths = [evaluationPath, evaluationsPath] as const;

function apiKey(key: string): Record<string, string> {
  return { "x-api-key": key };
}

const bareSubject = { type: "user", id: "alice" };

/** The operator data allows this read to an authenticated reader on a managed device. */
function readCall(subject: Json): Json {
  return {
    subject,
    action: { name: "tools/call" },
    resource: { type: "tool", id: "files/read_file" },
    context: { device: { trust: "managed" } },
  };
}

/** A reader as a gateway asserts it: mcp:read, signed in five minutes ago. */
function assertedReader(properties: Json = {}): Json {
  return {
    type: "user",
    id: "alice",
    properties: { scopes: ["mcp:read"], auth_time: nowS - 300, ...properties },
  };
}

async function decide(
  pdp: RunningPdp,
  body: Json,
  key: string,
): Promise<DecisionBody & { status: number }> {
  const reply = await send(pdp, "POST", evaluationPath, { headers: apiKey(key), body });
  assert.equal(reply.status, 200, JSON.stringify(reply.body));
  return { status: reply.status, ...(reply.body as DecisionBody) };
}

function reasonCodes(body: DecisionBody): string[] {
  return (body.context.reasons ?? []).map((r) => r.code).sort();
}

function assertError(reply: Reply, status: number, code: string, label = ""): ErrorBody {
  assert.equal(reply.status, status, `${label} ${JSON.stringify(reply.body)}`);
  const body = reply.body as ErrorBody;
  assert.equal(body.code, code, label);
  return body;
}

function assertUnauthenticated(reply: Reply, label = ""): void {
  assertError(reply, 401, "caller_unauthenticated", label);
  const challenge = reply.headers.get("www-authenticate");
  assert.ok(challenge !== null && challenge.length > 0, `${label}: a 401 names the scheme`);
  assert.match(challenge, /X-Api-Key/i, label);
}

/** A body each decision endpoint would accept from an authorized caller. */
function validBody(path: (typeof decisionPaths)[number]): Json {
  const single = readCall(bareSubject);
  return path === evaluationPath ? single : { ...single, evaluations: [{}] };
}

// Every route has one stack (http/dispatcher.ts): the express-only run retired with the second one.
for (const [label, pdpOf] of [["the dispatcher", () => lean]] as const) {
  describe(`decision endpoints refuse unauthenticated and unauthorized callers (${label})`, () => {
    for (const path of decisionPaths) {
      test(`${path}: no X-Api-Key → 401 caller_unauthenticated with WWW-Authenticate`, async () => {
        assertUnauthenticated(await send(pdpOf(), "POST", path, { body: validBody(path) }));
      });

      test(`${path}: a wrong, an empty or a digest-as-key X-Api-Key → 401`, async () => {
        for (const key of [keys.unknown, "", sha256Hex(keys.pepOld), keys.pepOld.toUpperCase()]) {
          const reply = await send(pdpOf(), "POST", path, {
            headers: apiKey(key),
            body: validBody(path),
          });
          assertUnauthenticated(reply, `key ${JSON.stringify(key)}`);
        }
      });

      test(`${path}: the key as Authorization: Bearer → 401 (Authorization is the end user's)`, async () => {
        for (const headers of [
          { authorization: `Bearer ${keys.pepOld}` },
          { authorization: `ApiKey ${keys.pepOld}` },
        ]) {
          const reply = await send(pdpOf(), "POST", path, { headers, body: validBody(path) });
          assertUnauthenticated(reply, headers.authorization);
        }
      });

      test(`${path}: the caller is checked before the body is parsed`, async () => {
        assertUnauthenticated(await send(pdpOf(), "POST", path, { body: '{"subject": ' }));
        const forbidden = await send(pdpOf(), "POST", path, {
          headers: apiKey(keys.noPermission),
          body: '{"subject": ',
        });
        assertError(forbidden, 403, "caller_forbidden");
      });

      test(`${path}: both rotated keys of one caller are accepted`, async () => {
        for (const key of [keys.pepOld, keys.pepNew]) {
          const reply = await send(pdpOf(), "POST", path, {
            headers: apiKey(key),
            body: validBody(path),
          });
          assert.equal(reply.status, 200, JSON.stringify(reply.body));
        }
      });

      test(`${path}: a known caller without the authzen permission → 403 caller_forbidden`, async () => {
        const reply = await send(pdpOf(), "POST", path, {
          headers: apiKey(keys.noPermission),
          body: validBody(path),
        });
        assertError(reply, 403, "caller_forbidden");
        assert.equal(reply.headers.get("www-authenticate"), null);
      });

      test(`${path}: a non-asserting caller sending subject properties without a token → 403 subject_assertion_forbidden`, async () => {
        const single = readCall(assertedReader());
        const reply = await send(pdpOf(), "POST", path, {
          headers: apiKey(keys.pepOld),
          body: single,
        });
        const body = assertError(reply, 403, "subject_assertion_forbidden");
        assert.equal(body.field, "/subject/properties");
      });
    }
  });
}

describe("subject assertion", () => {
  test("a non-asserting caller's batch item with subject properties fails alone with subject_assertion_forbidden", async () => {
    const reply = await send(lean, "POST", evaluationsPath, {
      headers: apiKey(keys.pepOld),
      body: {
        action: { name: "tools/call" },
        resource: { type: "tool", id: "files/read_file" },
        context: { device: { trust: "managed" } },
        evaluations: [{ subject: bareSubject }, { subject: assertedReader() }],
      },
    });
    assert.equal(reply.status, 200, JSON.stringify(reply.body));
    const { evaluations } = reply.body as { evaluations: DecisionBody[] };
    assert.equal(evaluations.length, 2);
    const [bare, item] = evaluations;
    assert.ok(bare !== undefined);
    assert.equal(bare.decision, false);
    assert.deepEqual(Object.keys(bare), ["decision"], "the bare subject is a plain deny");
    assert.equal(item?.decision, false);
    assert.equal(item.context.error?.code, "subject_assertion_forbidden");
    assert.equal(item.context.error.status, 403);
  });

  test("the same refusal through the envelope's default subject fails every item", async () => {
    const reply = await send(lean, "POST", evaluationsPath, {
      headers: apiKey(keys.pepOld),
      body: { ...readCall(assertedReader()), evaluations: [{}, {}] },
    });
    assert.equal(reply.status, 200, JSON.stringify(reply.body));
    const { evaluations } = reply.body as { evaluations: DecisionBody[] };
    assert.equal(evaluations.length, 2);
    for (const item of evaluations) {
      assert.equal(item.decision, false);
      assert.equal(item.context.error?.code, "subject_assertion_forbidden");
    }
  });

  test("a batch item's subject_assertion_forbidden names the item's field, like every other item error", async () => {
    const reply = await send(lean, "POST", evaluationsPath, {
      headers: apiKey(keys.pepOld),
      body: {
        action: { name: "tools/call" },
        resource: { type: "tool", id: "files/read_file" },
        evaluations: [{ subject: bareSubject }, { subject: assertedReader() }],
      },
    });
    const { evaluations } = reply.body as { evaluations: DecisionBody[] };
    assert.equal(evaluations[1]?.context.error?.field, "/evaluations/1/subject/properties");
  });

  test("a non-asserting caller's bare subject (type and id only) → 200, deny token_missing", async () => {
    const body = await decide(lean, readCall(bareSubject), keys.pepNew);
    assert.equal(body.decision, false);
    assert.deepEqual(reasonCodes(body), ["token_missing"]);
    const empty = await decide(lean, readCall({ ...bareSubject, properties: {} }), keys.pepNew);
    assert.equal(empty.decision, false);
    assert.deepEqual(reasonCodes(empty), ["token_missing"]);
  });

  test("the asserting gateway's subject properties are honoured: an allowed read", async () => {
    const body = await decide(lean, readCall(assertedReader()), keys.gateway);
    assert.equal(body.decision, true, JSON.stringify(body.context));
    assert.deepEqual(reasonCodes(body), []);
  });

  test("the gateway's asserted properties still face every requirement", async () => {
    const noScope = await decide(lean, readCall(assertedReader({ scopes: [] })), keys.gateway);
    assert.equal(noScope.decision, false);
    assert.deepEqual(reasonCodes(noScope), ["scope_missing"]);
    const bare = await decide(lean, readCall(bareSubject), keys.gateway);
    assert.equal(bare.decision, false);
    assert.ok(!reasonCodes(bare).includes("token_missing"), "an asserted subject is authenticated");
  });

  test("a gateway cannot smuggle authenticated: false or token_error to change the outcome", async () => {
    const body = await decide(
      lean,
      readCall(
        assertedReader({
          authenticated: false,
          authentication: "token",
          token_error: { code: "token_expired", message: "smuggled" },
        }),
      ),
      keys.gateway,
    );
    assert.equal(body.decision, true, JSON.stringify(body.context));
    assert.deepEqual(reasonCodes(body), []);
  });

  test("a gateway cannot smuggle auth_age_s: the PDP computes it from auth_time", async () => {
    const stale = await decide(
      lean,
      readCall(assertedReader({ auth_time: nowS - 2 * 86400, auth_age_s: 10 })),
      keys.gateway,
    );
    assert.equal(stale.decision, false);
    assert.deepEqual(reasonCodes(stale), ["auth_too_old"]);
    const fresh = await decide(
      lean,
      readCall(assertedReader({ auth_age_s: 10 * 86400 })),
      keys.gateway,
    );
    assert.equal(fresh.decision, true, JSON.stringify(fresh.context));
  });
});

describe("metadata and ops endpoints", () => {
  test("/.well-known/authzen-configuration stays public", async () => {
    for (const pdp of [lean, opsLocked]) {
      const reply = await send(pdp, "GET", "/.well-known/authzen-configuration");
      assert.equal(reply.status, 200, JSON.stringify(reply.body));
      const body = reply.body as Json;
      assert.equal(body.access_evaluation_endpoint, `${publicUrl}${evaluationPath}`);
      assert.equal(body.access_evaluations_endpoint, `${publicUrl}${evaluationsPath}`);
    }
  });

  test("ops endpoints are open by default, even with callers configured", async () => {
    for (const path of ["/health", "/ready"]) {
      const reply = await send(lean, "GET", path);
      assert.equal(reply.status, 200, `${path} ${JSON.stringify(reply.body)}`);
    }
  });

  test("with ops.api_key_sha256, /health and /ready need that key: 401 without, 200 with", async () => {
    for (const path of ["/health", "/ready"]) {
      assertUnauthenticated(await send(opsLocked, "GET", path), path);
      assertUnauthenticated(await send(opsLocked, "GET", path, { headers: apiKey(keys.unknown) }));
      const reply = await send(opsLocked, "GET", path, { headers: apiKey(keys.ops) });
      assert.equal(reply.status, 200, `${path} ${JSON.stringify(reply.body)}`);
    }
  });

  test("a decision caller's key does not open the ops endpoints (403 caller_forbidden)", async () => {
    for (const path of ["/health", "/ready"]) {
      for (const key of [keys.pepOld, keys.gateway, keys.noPermission]) {
        assertError(
          await send(opsLocked, "GET", path, { headers: apiKey(key) }),
          403,
          "caller_forbidden",
          path,
        );
      }
    }
  });

  test("the ops key does not open the decision endpoints", async () => {
    for (const path of decisionPaths) {
      const reply = await send(opsLocked, "POST", path, {
        headers: apiKey(keys.ops),
        body: validBody(path),
      });
      assertUnauthenticated(reply, path);
    }
  });

  test('a caller with the "ops" permission opens the ops endpoints', async () => {
    for (const path of ["/health", "/ready"]) {
      const reply = await send(opsLocked, "GET", path, { headers: apiKey(keys.monitor) });
      assert.equal(reply.status, 200, `${path} ${JSON.stringify(reply.body)}`);
    }
  });

  test('"ops" alone does not open the decision endpoints (403 caller_forbidden)', async () => {
    for (const path of decisionPaths) {
      const reply = await send(opsLocked, "POST", path, {
        headers: apiKey(keys.monitor),
        body: validBody(path),
      });
      assertError(reply, 403, "caller_forbidden", path);
    }
  });

  test("a caller listing no permissions gets the decision API only", () => {
    const file = writeConfig("default-permissions.json", {
      callers: [{ name: "pep", api_key_sha256: [sha256Hex(newKey())] }],
    });
    const config = loadConfig({ PDP_CONFIG: file });
    assert.deepEqual(config.auth.callers?.[0]?.permissions, [
      "authzen",
      "forward_auth",
      "opa_data",
    ]);
  });

  test("an unknown permission is refused, naming its key", () => {
    const file = writeConfig("unknown-permission.json", {
      callers: [{ name: "pep", api_key_sha256: [sha256Hex(newKey())], permissions: ["admin"] }],
    });
    assert.throws(
      () => loadConfig({ PDP_CONFIG: file }),
      (error: unknown) => {
        assert.ok(error instanceof StartupError);
        assert.equal(error.code, "config_invalid");
        assert.equal(error.problems.length, 1);
        assert.match(error.problems[0] ?? "", /callers\[0\]\.permissions\[0\]/);
        return true;
      },
    );
  });
});

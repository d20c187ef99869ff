/**
 * The AuthZEN MCP binding (COAZ-MCP, openid/authzen profiles/authzen-coaz-mcp-binding-1_0)
 * against this PDP: for every MCP method and three users, a request shaped as
 * the binding's default mapping shapes it, sent to POST /access/v1/evaluation
 * (and /evaluations), gets the decision forward-auth gives the same call.
 *
 * The binding's shapes: subject `{type: "identity", id: <sub>}`, context
 * `{agent: <client_id>}`, action `{name: <method>}`; `tools/call` → `{type:
 * "tool", id: <name>}`, `resources/read|subscribe|unsubscribe` → `{type:
 * "resource", id: <uri>}`, `prompts/get` → `{type: "prompt", id: <name>}`,
 * `completion/complete` → the prompt or resource it completes, `tasks/get|
 * result|cancel` (and the 2026-07-28 extension's `tasks/update`) → `{type:
 * "task", id: <taskId>}`, every other method → `{type: "mcp_server", id:
 * <the token audience>}`. Two things this PDP needs beside them, as the
 * binding allows: the user's token in `subject.properties.token` (the PDP
 * verifies it, so the binding's own verified `$token` reaches the policy),
 * and, on the types that name no server, `resource.properties.server` (the
 * binding takes the server from the token's audience, which is only safe
 * where the enforcement point verified the token itself).
 */
import assert from "node:assert/strict";
import { writeFileSync } from "node:fs";
import { join } from "node:path";
import { after, before, describe, test } from "node:test";
import { JwksServer } from "../support/jwks-server.ts";
import { scratchDir } from "../support/opa.ts";
import { postJson, startPdp, type RunningPdp } from "../support/pdp.ts";
import { generateTestKey, mint } from "../support/tokens.ts";

type Json = Record<string, unknown>;

const issuer = "https://idp.example.com";
const filesResource = "https://mcp.example.com/files";
const noonUtcMs = Date.UTC(2026, 2, 10, 12, 0, 0);
const nowS = noonUtcMs / 1000;

const scratch = scratchDir();
const closers: (() => Promise<void>)[] = [];
let pdp: RunningPdp;
const tokens: Record<"reader" | "writer" | "admin", string> = { reader: "", writer: "", admin: "" };
const subs = { reader: "alice", writer: "bob", admin: "root" };

before(async () => {
  const key = await generateTestKey("ES256");
  const jwks = await JwksServer.start([key.publicJwk]);
  closers.push(() => jwks.close());
  const scopes = {
    reader: "mcp:read",
    writer: "mcp:read mcp:write",
    admin: "mcp:read mcp:write mcp:admin",
  };
  for (const user of ["reader", "writer", "admin"] as const) {
    tokens[user] = await mint(key, {
      iss: issuer,
      sub: subs[user],
      aud: filesResource,
      client_id: "agent-1",
      iat: nowS - 60,
      exp: nowS + 3600,
      auth_time: nowS - 300,
      acr: "mfa",
      scope: scopes[user],
    });
  }
  const configFile = join(scratch.dir, "pdp-config.json");
  writeFileSync(
    configFile,
    JSON.stringify({
      issuers: [{ issuer, jwks_uri: jwks.url }],
      servers: { files: { resource: filesResource } },
      forward_auth: {
        trusted_proxies: ["127.0.0.1/32", "::1/128"],
        context_headers: { "x-device-trust": "device.trust" },
      },
    }),
  );
  pdp = await startPdp({ env: { PDP_CONFIG: configFile }, clock: () => noonUtcMs });
  closers.push(() => pdp.close());
});

after(async () => {
  for (const close of closers.reverse()) await close();
  scratch.remove();
});

/** One MCP request: its JSON-RPC params and the binding's resource for it. */
interface MethodRow {
  method: string;
  params: Json;
  resource: Json;
}

const server = { server: "files" };
const onServer = { type: "mcp_server", id: filesResource };
const rows: MethodRow[] = [
  {
    method: "initialize",
    params: {
      protocolVersion: "2025-11-25",
      capabilities: {},
      clientInfo: { name: "c", version: "1" },
    },
    resource: onServer,
  },
  { method: "server/discover", params: {}, resource: onServer },
  { method: "ping", params: {}, resource: onServer },
  { method: "tools/list", params: {}, resource: onServer },
  {
    method: "tools/call",
    params: { name: "read_file", arguments: { path: "/a" } },
    resource: { type: "tool", id: "read_file", properties: server },
  },
  { method: "resources/list", params: {}, resource: onServer },
  { method: "resources/templates/list", params: {}, resource: onServer },
  {
    method: "resources/read",
    params: { uri: "mem://notes/1" },
    resource: { type: "resource", id: "mem://notes/1", properties: server },
  },
  {
    method: "resources/subscribe",
    params: { uri: "mem://notes/1" },
    resource: { type: "resource", id: "mem://notes/1", properties: server },
  },
  { method: "prompts/list", params: {}, resource: onServer },
  {
    method: "prompts/get",
    params: { name: "greet" },
    resource: { type: "prompt", id: "greet", properties: server },
  },
  {
    method: "completion/complete",
    params: { ref: { type: "ref/prompt", name: "greet" }, argument: { name: "a", value: "b" } },
    resource: { type: "prompt", id: "greet", properties: server },
  },
  { method: "logging/setLevel", params: { level: "info" }, resource: onServer },
  { method: "subscriptions/listen", params: {}, resource: onServer },
  { method: "tasks/list", params: {}, resource: onServer },
  ...["tasks/get", "tasks/result", "tasks/update", "tasks/cancel"].map((method) => ({
    method,
    params: { taskId: "task-7" },
    resource: { type: "task", id: "task-7", properties: server },
  })),
  // Unknown to the binding and the default policy: denied on both paths.
  { method: "tools/delete_all", params: {}, resource: onServer },
];

/** Forward-auth as Envoy calls it, with the body: allow, and the reason codes of a deny. */
async function forwardAuth(row: MethodRow, token: string): Promise<[boolean, string[]]> {
  const answer = await postJson(
    `${pdp.url}/forward-auth/files/mcp`,
    { jsonrpc: "2.0", id: 1, method: row.method, params: row.params },
    {
      authorization: `Bearer ${token}`,
      "x-forwarded-for": "10.1.2.3",
      "x-device-trust": "compliant",
    },
  );
  if (answer.status === 200) return [true, []];
  const body = answer.body as { error?: { data?: { reasons?: string[] } } };
  assert.ok(answer.status === 401 || answer.status === 403, JSON.stringify(answer.body));
  return [false, body.error?.data?.reasons ?? []];
}

function bindingRequest(row: MethodRow, user: keyof typeof tokens): Json {
  return {
    subject: { type: "identity", id: subs[user], properties: { token: tokens[user] } },
    action: { name: row.method },
    resource: row.resource,
    context: { agent: "agent-1", ip: "10.1.2.3", device: { trust: "compliant" } },
  };
}

function decisionOf(body: unknown): [boolean, string[]] {
  const answer = body as { decision: boolean; context?: { reasons?: { code: string }[] } };
  return [answer.decision, (answer.context?.reasons ?? []).map((r) => r.code)];
}

describe("COAZ-MCP binding shapes on the AuthZEN API decide as forward-auth does", () => {
  for (const row of rows) {
    test(`${row.method} (resource ${String(row.resource.type)})`, async () => {
      const outcomes = [];
      for (const user of ["reader", "writer", "admin"] as const) {
        const expected = await forwardAuth(row, tokens[user]);
        const answer = await postJson(`${pdp.url}/access/v1/evaluation`, bindingRequest(row, user));
        assert.equal(answer.status, 200, JSON.stringify(answer.body));
        assert.deepEqual(decisionOf(answer.body), expected, `${row.method} for the ${user}`);
        outcomes.push(expected[0]);
      }
      // The table is not vacuous: known methods are allowed for someone, the unknown one for nobody.
      assert.equal(outcomes.includes(true), row.method !== "tools/delete_all", row.method);
    });
  }

  test("the same shapes as one /access/v1/evaluations batch", async () => {
    const expected = await Promise.all(rows.map((row) => forwardAuth(row, tokens.writer)));
    const answer = await postJson(`${pdp.url}/access/v1/evaluations`, {
      subject: { type: "identity", id: subs.writer, properties: { token: tokens.writer } },
      context: { agent: "agent-1", ip: "10.1.2.3", device: { trust: "compliant" } },
      evaluations: rows.map((row) => ({ action: { name: row.method }, resource: row.resource })),
      options: { include_context: true },
    });
    assert.equal(answer.status, 200, JSON.stringify(answer.body));
    const got = (answer.body as { evaluations: unknown[] }).evaluations.map(decisionOf);
    assert.deepEqual(got, expected);
  });

  test("an mcp_server named by another server's resource URI, or by an unregistered one, binds no token", async () => {
    for (const id of ["https://mcp.example.com/other", "https://mcp.example.com/files/"]) {
      const answer = await postJson(`${pdp.url}/access/v1/evaluation`, {
        ...bindingRequest(rows[3] as MethodRow, "admin"),
        resource: { type: "mcp_server", id },
      });
      assert.equal(answer.status, 200);
      assert.deepEqual(decisionOf(answer.body), [false, ["server_unknown"]], id);
    }
  });

  test("a tool naming no server is not bound to the token's audience: server_unknown", async () => {
    const answer = await postJson(`${pdp.url}/access/v1/evaluation`, {
      ...bindingRequest(rows[4] as MethodRow, "admin"),
      resource: { type: "tool", id: "read_file" },
    });
    assert.deepEqual(decisionOf(answer.body), [false, ["server_unknown"]]);
  });
});

/**
 * Attacks on issue 12's surfaces that held on the code they were written
 * against: MCP 2026-07-28 headers relayed without a body (NGINX auth_request)
 * to a server marked speaks_mcp_2026_07_28, the AuthZEN MCP binding's
 * `mcp_server` named by a resource URI, and the obligations profile's
 * opt-in. Each test states what the PDP must not do; none may answer 500.
 */
import assert from "node:assert/strict";
import { writeFileSync } from "node:fs";
import { join } from "node:path";
import { after, before, describe, test } from "node:test";
import { JwksServer } from "../support/jwks-server.ts";
import { subrequestStatus } from "./nginx-subrequest.ts";
import { scratchDir } from "../support/opa.ts";
import { postJson, startPdp, type RunningPdp } from "../support/pdp.ts";
import { generateTestKey, mint } from "../support/tokens.ts";

type Json = Record<string, unknown>;

const issuer = "https://idp.example.com";
const filesResource = "https://mcp.example.com/files";
const otherResource = "https://mcp.example.com/other";
const noonUtcMs = Date.UTC(2026, 2, 10, 12, 0, 0);
const nowS = noonUtcMs / 1000;

const scratch = scratchDir();
const closers: (() => Promise<void>)[] = [];
let pdp: RunningPdp;
const tokens = { filesReader: "", otherAdmin: "" };

before(async () => {
  const key = await generateTestKey("ES256");
  const jwks = await JwksServer.start([key.publicJwk]);
  closers.push(() => jwks.close());
  const claims = (sub: string, aud: string, scope: string): Json => ({
    iss: issuer,
    sub,
    aud,
    iat: nowS - 60,
    exp: nowS + 3600,
    auth_time: nowS - 300,
    acr: "mfa",
    scope,
  });
  tokens.filesReader = await mint(key, claims("alice", filesResource, "mcp:read"));
  tokens.otherAdmin = await mint(
    key,
    claims("root", otherResource, "mcp:read mcp:write mcp:admin"),
  );
  const config = join(scratch.dir, "pdp-config.json");
  writeFileSync(
    config,
    JSON.stringify({
      issuers: [{ issuer, jwks_uri: jwks.url }],
      servers: {
        files: { resource: filesResource, speaks_mcp_2026_07_28: true },
        other: { resource: otherResource },
      },
      forward_auth: {
        trusted_proxies: ["127.0.0.1/32"],
        context_headers: { "x-device-trust": "device.trust" },
      },
    }),
  );
  const data = join(scratch.dir, "operator-data.json");
  // Every tool of files is a read but the deletes: a name the catalog's delete glob misses is a read.
  writeFileSync(
    data,
    JSON.stringify({ tools: { "files/*": "read", "files/delete_*": "destructive" } }),
  );
  pdp = await startPdp({ env: { PDP_CONFIG: config, PDP_DATA: data }, clock: () => noonUtcMs });
  closers.push(() => pdp.close());
});

after(async () => {
  for (const close of closers.reverse()) await close();
  scratch.remove();
});

/** The PDP's status for NGINX's auth_request subrequest of the reader's call with `headers`. */
function nginxStatus(headers: Record<string, string | string[]>): Promise<number> {
  return subrequestStatus(pdp.url, tokens.filesReader, headers);
}

const modern = "2026-07-28";
const callOf = (name: string | string[], version: string | string[] = modern) => ({
  "mcp-protocol-version": version,
  "mcp-method": "tools/call",
  "mcp-name": name,
});
const b64 = (text: string) => Buffer.from(text, "utf8").toString("base64");

describe("held: headers-only MCP 2026-07-28, a reader's delete_repo in every spelling", () => {
  test("control: read_file is allowed, delete_repo refused (403)", async () => {
    assert.equal(await nginxStatus(callOf("read_file")), 200);
    assert.equal(await nginxStatus(callOf("delete_repo")), 403);
  });

  const refused: [string, Record<string, string | string[]>][] = [
    ["the base64 form", callOf(`=?base64?${b64("delete_repo")}?=`)],
    [
      "an upper-case sentinel (RFC 2047 readers decode it)",
      callOf(`=?BASE64?${b64("delete_repo")}?=`),
    ],
    ["a Q-encoded word", callOf("=?utf-8?q?delete_repo?=")],
    [
      // ZGVsZXRlX3JlcG9= decodes to delete_repo (atob drops the stray bits); only 8= is canonical.
      "base64 with stray bits (not canonical)",
      callOf(`=?base64?${b64("delete_repo").replace(/8=$/, "9=")}?=`),
    ],
    ["base64 with extra padding", callOf(`=?base64?${b64("delete_repo")}==?=`)],
    [
      "a trailing BOM (every reader keeps it: the delete glob still matches)",
      callOf(
        `=?base64?${Buffer.concat([Buffer.from("delete_repo"), Buffer.from([0xef, 0xbb, 0xbf])]).toString("base64")}?=`,
      ),
    ],
    ["two Mcp-Name lines, read first", callOf(["read_file", "delete_repo"])],
    ["one Mcp-Name folding read_file and delete_repo", callOf("read_file,delete_repo")],
    ["a base64 name holding a comma", callOf(`=?base64?${b64("read_file, delete_repo")}?=`)],
    [
      "Mcp-Method folded with a read",
      { ...callOf("delete_repo"), "mcp-method": ["tools/list", "tools/call"] },
    ],
    ["no Mcp-Name", { "mcp-protocol-version": modern, "mcp-method": "tools/call" }],
    ["an empty Mcp-Name", callOf("")],
    ["a pseudo-method", { "mcp-protocol-version": modern, "mcp-method": "mcp/response" }],
    [
      "a pseudo-method in upper case",
      { "mcp-protocol-version": modern, "mcp-method": "MCP/response" },
    ],
  ];
  for (const [note, headers] of refused) {
    test(`${note}: not allowed, not a 500`, async () => {
      const status = await nginxStatus(headers);
      assert.ok(status === 400 || status === 403, `status ${status}`);
    });
  }

  // A revision other than exactly 2026-07-28 is not believed without a body: mcp/opaque, which a
  // reader may not do whatever the headers name.
  for (const version of [
    "2026-07-28,2025-11-25",
    "2025-11-25, 2026-07-28",
    ["2026-07-28", "2026-07-28"],
    "2026-07-29",
    "2027-01-01",
    "2026-7-28",
    "2026-07-28x",
    "20260728",
  ]) {
    test(`MCP-Protocol-Version ${JSON.stringify(version)} is not believed: read_file is refused to a reader`, async () => {
      const status = await nginxStatus(callOf("read_file", version));
      assert.ok(status === 400 || status === 403, `status ${status}`);
    });
  }

  test("whitespace around the revision is HTTP's optional whitespace: believed, as the server believes it", async () => {
    assert.equal(await nginxStatus(callOf("read_file", ` ${modern}\t`)), 200);
    assert.equal(await nginxStatus(callOf("delete_repo", ` ${modern}`)), 403);
  });

  test("a task id naming another server's task is decided for the server the proxy routes to", async () => {
    const before = pdp.decisions.length;
    const status = await nginxStatus({
      "mcp-protocol-version": modern,
      "mcp-method": "tasks/get",
      "mcp-name": "other/task-1",
    });
    assert.equal(status, 200);
    const records = pdp.decisions.slice(before) as { resource?: Json }[];
    assert.equal(records.length, 1);
    assert.deepEqual(records[0]?.resource, { type: "task", id: "other/task-1", server: "files" });
  });
});

// ---------------------------------------------------------------- the AuthZEN MCP binding

async function evaluate(body: Json): Promise<{ status: number; body: Json }> {
  const answer = await postJson(`${pdp.url}/access/v1/evaluation`, body);
  return { status: answer.status, body: answer.body as Json };
}

function bindingRequest(token: string, resource: Json, action = "tools/list"): Json {
  return {
    subject: { type: "identity", id: "someone", properties: { token } },
    action: { name: action },
    resource,
    context: { agent: "agent-1", ip: "10.1.2.3", device: { trust: "compliant" } },
  };
}

describe("held: the binding's mcp_server named by a resource URI", () => {
  test("control: files' own URI with files' token is allowed", async () => {
    const answer = await evaluate(
      bindingRequest(tokens.filesReader, { type: "mcp_server", id: filesResource }),
    );
    assert.equal(answer.status, 200);
    assert.equal(answer.body.decision, true);
  });

  for (const id of [
    `${filesResource}/`,
    "https://MCP.example.com/files",
    "HTTPS://mcp.example.com/files",
    "https://mcp.example.com:443/files",
    "https://mcp.example.com/%66iles",
    "https://mcp.example.com/Files",
    "https://mcp.example.com/files#x",
    "https://mcp.example.com/files?x=1",
    "https://mcp.example.com/./files",
    ` ${filesResource}`,
  ]) {
    test(`${JSON.stringify(id)} is no registered server: denied, not a 500`, async () => {
      const answer = await evaluate(bindingRequest(tokens.filesReader, { type: "mcp_server", id }));
      assert.ok(answer.status === 200 || answer.status === 400, `status ${answer.status}`);
      if (answer.status === 200) assert.equal(answer.body.decision, false);
    });
  }

  test("other's admin token is not accepted for files, in any spelling of the request", async () => {
    const resources: Json[] = [
      { type: "mcp_server", id: filesResource },
      { type: "mcp_server", id: "files" },
      { type: "tool", id: "files/delete_repo" },
      { type: "tool", id: "delete_repo", properties: { server: "files" } },
      { type: "task", id: "files/task-1" },
    ];
    for (const resource of resources) {
      const action =
        resource.type === "tool"
          ? "tools/call"
          : resource.type === "task"
            ? "tasks/cancel"
            : "tools/list";
      const answer = await evaluate(bindingRequest(tokens.otherAdmin, resource, action));
      assert.equal(answer.status, 200, JSON.stringify(resource));
      assert.equal(answer.body.decision, false, JSON.stringify(resource));
    }
  });

  test("an mcp_server URI whose properties.server names another server is a 400, not a choice", async () => {
    const answer = await evaluate(
      bindingRequest(tokens.filesReader, {
        type: "mcp_server",
        id: otherResource,
        properties: { server: "files" },
      }),
    );
    assert.equal(answer.status, 400);
  });
});

// ---------------------------------------------------------------- the obligations profile

describe("held: the obligations profile's opt-in", () => {
  const deleteCall = (context: Json): Json => ({
    subject: { type: "identity", id: "alice", properties: { token: tokens.filesReader } },
    action: { name: "tools/call" },
    resource: { type: "tool", id: "files/delete_repo" },
    context: { device: { trust: "compliant" }, ...context },
  });

  test("opting in changes the obligations' shape, never the decision", async () => {
    for (const supported of [["step-up"], ["custom"], ["step-up", "custom", "other"]]) {
      const answer = await evaluate(deleteCall({ supported_obligations: supported }));
      assert.equal(answer.status, 200);
      assert.equal(answer.body.decision, false);
      const obligations = (answer.body.context as Json).obligations as Json[];
      assert.ok(Array.isArray(obligations) && obligations.length > 0);
    }
  });

  for (const [note, value] of [
    ["a string", "step-up"],
    ["numbers", [1, 2]],
    ["an object", { "step-up": true }],
    ["17 types", Array.from({ length: 17 }, (_, i) => `t${i}`)],
    ["a long type", ["x".repeat(5000)]],
    ["null inside", [null]],
  ] as const) {
    test(`supported_obligations as ${note}: a 400 with its pointer`, async () => {
      const answer = await evaluate(deleteCall({ supported_obligations: value }));
      assert.equal(answer.status, 400);
    });
  }

  test("a __proto__ key carrying supported_obligations is refused by the JSON rules (400)", async () => {
    const body = JSON.stringify(deleteCall({})).replace(
      '"context":{',
      '"context":{"__proto__":{"supported_obligations":["custom"]},',
    );
    const answer = await postJson(`${pdp.url}/access/v1/evaluation`, body);
    assert.equal(answer.status, 400);
  });
});

/**
 * createMcpAuthorization against a scripted PDP (an injected fetch): what it
 * asks the PDP, how it reads the answer, and that every failure fails closed
 * (the MCP handler behind it is never reached).
 */
import assert from "node:assert/strict";
import { createServer, type IncomingMessage, type Server } from "node:http";
import type { AddressInfo } from "node:net";
import { after, afterEach, before, describe, test } from "node:test";
import express from "express";
import { createMcpAuthorization, type McpAuthorizationOptions } from "../../src/pep/index.ts";

type Json = Record<string, unknown>;

interface PdpCall {
  url: string;
  headers: Headers;
  body: Json;
}

/** How the scripted PDP answers a call (its body parsed). */
type Script = (body: Json, call: number) => Response | Promise<Response>;

const calls: PdpCall[] = [];
let script: Script = allowAll;
const pepErrors: Error[] = [];
/** Requests that reached the MCP handler. */
let handled = 0;

function items(body: Json): Json[] {
  return body.evaluations as Json[];
}

function answer(decisions: Json[]): Response {
  return Response.json({ evaluations: decisions });
}

function allowAll(body: Json): Response {
  return answer(items(body).map((_, i) => ({ decision: true, context: { id: `d-${i}` } })));
}

/** Allows every item except tools/call of the named tools. */
function denyTools(...names: string[]): Script {
  return (body) =>
    answer(
      items(body).map((item) => {
        const action = (item.action ?? body.action) as Json;
        const resource = item.resource as Json;
        const denied = action.name === "tools/call" && names.includes(resource.id as string);
        return denied
          ? {
              decision: false,
              context: { id: "denied", reasons: [{ code: "scope_missing", user: "No." }] },
            }
          : { decision: true, context: { id: "ok" } };
      }),
    );
}

const fakeFetch: typeof fetch = async (input, init) => {
  const body = JSON.parse(init?.body as string) as Json;
  const url = typeof input === "string" ? input : input instanceof URL ? input.href : input.url;
  calls.push({ url, headers: new Headers(init?.headers), body });
  // Honour the PEP's deadline as a real fetch would.
  const signal = init?.signal;
  const response = script(body, calls.length);
  if (signal === undefined || signal === null) return response;
  return Promise.race([
    response,
    new Promise<never>((_, reject) => {
      if (signal.aborted) reject(signal.reason as Error);
      signal.addEventListener("abort", () => {
        reject(signal.reason as Error);
      });
    }),
  ]);
};

const baseOptions: McpAuthorizationOptions = {
  pdpUrl: "http://pdp.test:8180/base/",
  apiKey: "k3y",
  server: "files",
  resourceMetadataUrl: "https://mcp.test/.well-known/oauth-protected-resource/mcp",
  timeoutMs: 200,
  fetch: fakeFetch,
  onError: (error) => {
    pepErrors.push(error);
  },
  context: (req: IncomingMessage) => ({ device: { trust: req.headers["x-device-trust"] ?? null } }),
  toolAnnotations: (name) => (name === "read_file" ? { readOnlyHint: true } : undefined),
};

/** The tools the fake MCP handler lists. */
const listedTools = [
  { name: "read_file", annotations: { readOnlyHint: true } },
  { name: "write_file" },
];

let server: Server;
let origin = "";

function mcpApp(options: McpAuthorizationOptions, json = true) {
  const app = express();
  app.use("/mcp", express.json());
  app.all("/mcp", createMcpAuthorization(options), (req, res) => {
    handled += 1;
    const body = req.body as Json | undefined;
    if (body?.method === "tools/list") {
      res.json({ jsonrpc: "2.0", id: body.id, result: { tools: listedTools } });
      return;
    }
    if (json) res.json({ jsonrpc: "2.0", id: body?.id ?? null, result: {} });
    else res.status(202).end();
  });
  app.use("/raw", createMcpAuthorization(options), (_req, res) => {
    handled += 1;
    res.status(202).end();
  });
  return app;
}

let app = mcpApp(baseOptions);

before(async () => {
  server = createServer((req, res) => {
    app(req, res);
  });
  await new Promise<void>((resolve) => {
    server.listen(0, "127.0.0.1", resolve);
  });
  origin = `http://127.0.0.1:${(server.address() as AddressInfo).port}`;
});

after(async () => {
  server.closeAllConnections();
  await new Promise<void>((resolve) => {
    server.close(() => {
      resolve();
    });
  });
});

afterEach(() => {
  calls.length = 0;
  pepErrors.length = 0;
  handled = 0;
  script = allowAll;
  app = mcpApp(baseOptions);
});

async function send(
  body: unknown,
  init: { method?: string; headers?: Record<string, string>; path?: string } = {},
): Promise<{ status: number; headers: Headers; body: unknown }> {
  const response = await fetch(`${origin}${init.path ?? "/mcp"}`, {
    method: init.method ?? "POST",
    headers: {
      "content-type": "application/json",
      authorization: "Bearer abc.def.ghi",
      ...init.headers,
    },
    ...(body === undefined ? {} : { body: typeof body === "string" ? body : JSON.stringify(body) }),
  });
  const text = await response.text();
  return {
    status: response.status,
    headers: response.headers,
    body: text === "" ? undefined : (JSON.parse(text) as unknown),
  };
}

const rpc = (id: number | string, method: string, params?: Json) => ({
  jsonrpc: "2.0",
  id,
  method,
  ...(params === undefined ? {} : { params }),
});

describe("what the PEP asks", () => {
  test("one evaluations call: token, API key, include_context, context, one item per message", async () => {
    const reply = await send(
      [
        rpc(1, "tools/call", { name: "read_file", arguments: { path: "/etc" } }),
        rpc(2, "tools/call", { name: "write_file" }),
        rpc(3, "resources/read", { uri: "file:///a" }),
        rpc(4, "prompts/get", { name: "greet" }),
        rpc(5, "initialize"),
        { jsonrpc: "2.0", method: "notifications/initialized" },
      ],
      { headers: { "x-device-trust": "managed", "mcp-session-id": "s-1" } },
    );
    assert.equal(reply.status, 200);
    assert.equal(handled, 1);
    assert.equal(calls.length, 1);
    const [call] = calls;
    assert.equal(call?.url, "http://pdp.test:8180/base/access/v1/evaluations");
    assert.equal(call.headers.get("x-api-key"), "k3y");
    assert.equal(call.headers.get("content-type"), "application/json");
    assert.deepEqual(call.body, {
      subject: { type: "user", properties: { token: "abc.def.ghi" } },
      context: { ip: "127.0.0.1", session: { id: "s-1" }, device: { trust: "managed" } },
      options: { evaluations_semantic: "execute_all", include_context: true },
      evaluations: [
        {
          action: { name: "tools/call" },
          resource: {
            type: "tool",
            id: "read_file",
            properties: {
              server: "files",
              tool: "read_file",
              annotations: { readOnlyHint: true },
              arguments: { path: "/etc" },
            },
          },
        },
        {
          action: { name: "tools/call" },
          resource: {
            type: "tool",
            id: "write_file",
            properties: { server: "files", tool: "write_file" },
          },
        },
        {
          action: { name: "resources/read" },
          resource: {
            type: "resource",
            id: "file:///a",
            properties: { server: "files", uri: "file:///a" },
          },
        },
        {
          action: { name: "prompts/get" },
          resource: {
            type: "prompt",
            id: "greet",
            properties: { server: "files", prompt: "greet" },
          },
        },
        {
          action: { name: "initialize" },
          resource: { type: "mcp_server", id: "files", properties: { server: "files" } },
        },
        {
          action: { name: "notifications/initialized" },
          resource: { type: "mcp_server", id: "files", properties: { server: "files" } },
        },
      ],
    });
  });

  test("without a token the request still goes to the PDP, as an anonymous subject", async () => {
    await send(rpc(1, "ping"), { headers: { authorization: "" } });
    assert.deepEqual(calls[0]?.body.subject, { type: "user", properties: { token: null } });
  });

  test("GET is mcp/stream, DELETE mcp/session_end", async () => {
    await send(undefined, { method: "GET", path: "/raw" });
    await send(undefined, { method: "DELETE", path: "/raw" });
    assert.deepEqual(
      calls.map((c) => (items(c.body)[0]?.action as Json).name),
      ["mcp/stream", "mcp/session_end"],
    );
    assert.equal(handled, 2);
  });

  // The reader forward-auth uses: a method MCP does not define is refused, not handed on
  // unjudged (CORS preflights are answered by a CORS middleware mounted before the PEP).
  for (const method of ["OPTIONS", "HEAD", "PUT"]) {
    test(`${method}: 400 mcp_http_method_unsupported, the PDP is not asked`, async () => {
      const reply = await send(undefined, { method, path: "/raw" });
      assert.equal(reply.status, 400);
      if (method !== "HEAD") {
        const error = (reply.body as { error: { code: number; data: { reasons: string[] } } })
          .error;
        assert.equal(error.code, -32600);
        assert.deepEqual(error.data.reasons, ["mcp_http_method_unsupported"]);
      }
      assert.equal(calls.length, 0);
      assert.equal(handled, 0);
    });
  }

  test("Mcp-Method or Mcp-Name disagreeing with the body: 400 mcp_header_mismatch, as on forward-auth", async () => {
    for (const headers of [{ "mcp-method": "tools/list" }, { "mcp-name": "read_file" }]) {
      const reply = await send(rpc(7, "tools/call", { name: "delete_repo" }), { headers });
      assert.equal(reply.status, 400);
      const body = reply.body as { id: unknown; error: { data: { reasons: string[] } } };
      assert.equal(body.id, 7);
      assert.deepEqual(body.error.data.reasons, ["mcp_header_mismatch"]);
    }
    assert.equal(calls.length, 0);
    assert.equal(handled, 0);
  });

  test("tools/call arguments reach the policy as on forward-auth; larger ones are omitted", async () => {
    app = mcpApp({ ...baseOptions, maxArgumentBytes: 16 });
    await send([
      rpc(1, "tools/call", { name: "read_file", arguments: { path: "/a" } }),
      rpc(2, "tools/call", { name: "read_file", arguments: { path: "/a/very/long/path" } }),
    ]);
    assert.deepEqual(
      items(calls[0]?.body ?? {}).map((item) => (item.resource as Json).properties),
      [
        {
          server: "files",
          tool: "read_file",
          annotations: { readOnlyHint: true },
          arguments: { path: "/a" },
        },
        {
          server: "files",
          tool: "read_file",
          annotations: { readOnlyHint: true },
          arguments_omitted: true,
        },
      ],
    );
  });

  test("more items than maxEvaluationsPerCall are split over several calls", async () => {
    app = mcpApp({ ...baseOptions, maxEvaluationsPerCall: 2 });
    const reply = await send([1, 2, 3, 4, 5].map((id) => rpc(id, "ping")));
    assert.equal(reply.status, 200);
    assert.deepEqual(
      calls.map((c) => items(c.body).length),
      [2, 2, 1],
    );
  });

  test("tools/list: one more call for the listed tools, action tools/call, annotations from the listing", async () => {
    script = denyTools("write_file");
    const reply = await send(rpc(1, "tools/list"));
    assert.deepEqual(reply.body, {
      jsonrpc: "2.0",
      id: 1,
      result: { tools: [listedTools[0]], cacheScope: "private" },
    });
    assert.equal(calls.length, 2);
    const filter = calls[1]?.body;
    assert.ok(filter !== undefined);
    assert.deepEqual(filter.action, { name: "tools/call" });
    assert.deepEqual(
      items(filter).map((item) => item.resource),
      [
        {
          type: "tool",
          id: "read_file",
          properties: { server: "files", tool: "read_file", annotations: { readOnlyHint: true } },
        },
        { type: "tool", id: "write_file", properties: { server: "files", tool: "write_file" } },
      ],
    );
  });

  test("tools/list: a PDP failure while filtering answers a JSON-RPC error, not the list", async () => {
    script = (body, call) => (call === 1 ? allowAll(body) : new Response("down", { status: 502 }));
    const reply = await send(rpc(1, "tools/list"));
    assert.equal(reply.status, 200);
    assert.deepEqual(reply.body, {
      jsonrpc: "2.0",
      id: 1,
      error: {
        code: -32003,
        message: "Authorization is temporarily unavailable; the request was not executed.",
        data: { reasons: ["pdp_unavailable"] },
      },
    });
    assert.equal(pepErrors.length, 1);
  });
});

describe("refusals never reach the handler", () => {
  test("a denied call: 403 JSON-RPC error with the PDP's reasons", async () => {
    script = denyTools("write_file");
    const reply = await send(rpc(9, "tools/call", { name: "write_file" }));
    assert.equal(reply.status, 403);
    assert.equal(reply.headers.get("cache-control"), "no-store");
    assert.deepEqual(reply.body, {
      jsonrpc: "2.0",
      id: 9,
      error: {
        code: -32003,
        message: "No.",
        data: { reasons: ["scope_missing"], decision_id: "denied" },
      },
    });
    assert.equal(handled, 0);
  });

  test("a number express.json() read as Infinity is refused, never shown to the PDP as null", async () => {
    // The tool would run with limit = Infinity while the policy judged {"limit": null}.
    const reply = await send(
      '{"jsonrpc":"2.0","id":3,"method":"tools/call","params":{"name":"read_file","arguments":{"limit":1e400}}}',
    );
    assert.equal(reply.status, 400);
    assert.equal(calls.length, 0);
    assert.equal(handled, 0);
    assert.deepEqual((reply.body as { error: { data: unknown } }).error.data, {
      reasons: ["mcp_invalid", "number_unrepresentable"],
      field: "/params/arguments/limit",
    });
  });

  test("an item the PDP could not evaluate is a deny carrying its error code", async () => {
    script = () =>
      answer([{ decision: false, context: { error: { status: 400, code: "invalid_request" } } }]);
    const reply = await send(rpc(1, "ping"));
    assert.equal(reply.status, 403);
    assert.deepEqual((reply.body as { error: { data: unknown } }).error.data, {
      reasons: ["invalid_request"],
      decision_id: null,
    });
    assert.equal(handled, 0);
  });

  const outages: [string, Script, RegExp][] = [
    ["the PDP is unreachable", () => Promise.reject(new TypeError("fetch failed")), /unreachable/],
    ["the PDP is too slow", () => new Promise<Response>(() => undefined), /within 200 ms/],
    ["the PDP answers 500", () => new Response("{}", { status: 500 }), /HTTP 500/],
    ["the PDP answers 401 (bad API key)", () => new Response("{}", { status: 401 }), /HTTP 401/],
    ["the answer is not JSON", () => new Response("<html>"), /not JSON/],
    ["the answer has too few items", () => answer([]), /does not hold 1/],
    ["a decision is not a boolean", () => answer([{ decision: "true" }]), /no boolean decision/],
    [
      "an allow carries a step_up it cannot read",
      () => answer([{ decision: true, context: { obligations: { step_up: { scopes: "a" } } } }]),
      /invalid step_up\.scopes/,
    ],
  ];
  for (const [name, outage, message] of outages) {
    test(`fail closed when ${name}: 503, nothing runs`, async () => {
      script = outage;
      const started = Date.now();
      const reply = await send(rpc(4, "tools/call", { name: "read_file" }));
      assert.ok(Date.now() - started < 2000);
      assert.equal(reply.status, 503);
      assert.deepEqual((reply.body as { id: unknown; error: { data: unknown } }).error.data, {
        reasons: ["pdp_unavailable"],
      });
      assert.equal((reply.body as { id: unknown }).id, 4);
      assert.equal(handled, 0);
      assert.equal(pepErrors.length, 1);
      assert.match(pepErrors[0]?.message ?? "", message);
    });
  }

  test("a throwing context function fails closed", async () => {
    app = mcpApp({
      ...baseOptions,
      context: () => {
        throw new Error("device service down");
      },
    });
    const reply = await send(rpc(1, "ping"));
    assert.equal(reply.status, 503);
    assert.equal(calls.length, 0);
    assert.equal(handled, 0);
  });

  test("a malformed Authorization header: 401 invalid_token, the PDP is not asked", async () => {
    const reply = await send(rpc(1, "ping"), { headers: { authorization: "Bearer  two  spaces" } });
    assert.equal(reply.status, 401);
    assert.equal(
      reply.headers.get("www-authenticate"),
      `Bearer error="invalid_token", resource_metadata="${baseOptions.resourceMetadataUrl}"`,
    );
    assert.equal(calls.length, 0);
    assert.equal(handled, 0);
  });

  const invalid: [string, unknown][] = [
    ["an empty batch", []],
    ["no jsonrpc member", { id: 1, method: "ping" }],
    ["a null id", { jsonrpc: "2.0", id: null, method: "ping" }],
    ["a tools/call without a name", rpc(1, "tools/call", { arguments: {} })],
    ["a batch with a bad element", [rpc(1, "ping"), 42]],
  ];
  for (const [name, body] of invalid) {
    test(`${name}: 400 -32600, the PDP is not asked`, async () => {
      const reply = await send(body);
      assert.equal(reply.status, 400);
      assert.equal((reply.body as { error: { code: number } }).error.code, -32600);
      assert.equal(calls.length, 0);
      assert.equal(handled, 0);
    });
  }

  test("a body that is not JSON: 415; JSON nobody parsed (no express.json()): 500", async () => {
    const text = await send("hello", { headers: { "content-type": "text/plain" } });
    assert.equal(text.status, 415);
    const bare = express();
    bare.post("/mcp", createMcpAuthorization(baseOptions), (_req, res) => {
      handled += 1;
      res.end();
    });
    app = bare;
    const unparsed = await send(rpc(1, "ping"));
    assert.equal(unparsed.status, 500);
    assert.match(pepErrors[0]?.message ?? "", /express\.json/);
    assert.equal(handled, 0);
    assert.equal(calls.length, 0);
  });
});

describe("options", () => {
  const invalidOptions: [string, Partial<McpAuthorizationOptions>, RegExp][] = [
    ["pdpUrl not a URL", { pdpUrl: "pdp" }, /pdpUrl/],
    ["pdpUrl not http", { pdpUrl: "ftp://pdp.test" }, /http or https/],
    ["empty server", { server: " " }, /server/],
    ["resourceMetadataUrl not a URL", { resourceMetadataUrl: "/x" }, /resourceMetadataUrl/],
    ["timeoutMs 0", { timeoutMs: 0 }, /timeoutMs/],
    ["timeoutMs above 60 s", { timeoutMs: 60_001 }, /timeoutMs/],
    ["timeoutMs fractional", { timeoutMs: 1.5 }, /timeoutMs/],
    ["maxEvaluationsPerCall 0", { maxEvaluationsPerCall: 0 }, /maxEvaluationsPerCall/],
    ["maxArgumentBytes negative", { maxArgumentBytes: -1 }, /maxArgumentBytes/],
    ["an API key with a newline", { apiKey: "a\nb" }, /apiKey/],
  ];
  for (const [name, override, message] of invalidOptions) {
    test(`refused at construction: ${name}`, () => {
      assert.throws(() => createMcpAuthorization({ ...baseOptions, ...override }), {
        name: "TypeError",
        message,
      });
    });
  }
});

/**
 * How a Streamable HTTP request becomes the MCP operations the PDP authorizes:
 * classifyMessage (JSON-RPC 2.0 as MCP uses it), operationOf (what a message
 * targets) and readMcpRequest (HTTP method, body, `Mcp-Method`/`Mcp-Name`,
 * batches, body limits). Pure functions: no server, no policy.
 */
import assert from "node:assert/strict";
import { describe, test } from "node:test";
import type { JsonBodyLimits } from "../../../src/protocol/json-body.ts";
import { classifyMessage, type JsonRpcMessage } from "../../../src/protocol/mcp/jsonrpc.ts";
import {
  hasNamedTarget,
  operationOf,
  type McpOperation,
} from "../../../src/protocol/mcp/operation.ts";
import {
  McpRefusal,
  readMcpRequest,
  type BatchPolicy,
  type HeadersWithoutBody,
  type McpReading,
  type McpRefusalCode,
  type RelayedMcpRequest,
} from "../../../src/protocol/mcp/request-reader.ts";

type Json = Record<string, unknown>;

const limits: JsonBodyLimits = { maxBytes: 4096, maxDepth: 8 };

function request(id: string | number, method: string, params?: unknown): Json {
  return params === undefined
    ? { jsonrpc: "2.0", id, method }
    : { jsonrpc: "2.0", id, method, params };
}

function toolCall(id: string | number, name: string, args: unknown = {}): Json {
  return request(id, "tools/call", { name, arguments: args });
}

interface Original {
  method?: string;
  mcpMethod?: string;
  mcpName?: string;
  /** The MCP-Protocol-Version header. */
  protocolVersion?: string;
  /** A JSON value (serialized), raw text, raw bytes, or undefined for no body. */
  body?: unknown;
}

function bodyOf(body: unknown): Buffer | undefined {
  if (body === undefined) return undefined;
  if (Buffer.isBuffer(body)) return body;
  return Buffer.from(typeof body === "string" ? body : JSON.stringify(body), "utf8");
}

function original(input: Original, bodyLimits: JsonBodyLimits = limits): RelayedMcpRequest {
  const bytes = bodyOf(input.body);
  return {
    method: input.method ?? "POST",
    mcpMethod: input.mcpMethod,
    mcpName: input.mcpName,
    protocolVersion: input.protocolVersion,
    body: bytes === undefined ? undefined : { bytes, limits: bodyLimits },
  };
}

function read(
  input: Original,
  options: {
    batch?: BatchPolicy;
    limits?: JsonBodyLimits;
    maxBatchElements?: number;
    headersWithoutBody?: HeadersWithoutBody;
  } = {},
): McpReading {
  return readMcpRequest(original(input, options.limits), {
    batch: options.batch ?? "reject",
    maxBatchElements: options.maxBatchElements ?? 256,
    headersWithoutBody: options.headersWithoutBody ?? "trust",
  });
}

/** Asserts that reading `input` is refused with `code` (and with this JSON-RPC id, when given). */
function assertRefused(
  input: Original,
  code: McpRefusalCode,
  options: {
    batch?: BatchPolicy;
    limits?: JsonBodyLimits;
    headersWithoutBody?: HeadersWithoutBody;
    id?: string | number | null | undefined;
  } = {},
): void {
  assert.throws(
    () => read(input, options),
    (error: unknown) => {
      assert.ok(error instanceof McpRefusal, `expected an McpRefusal, got ${String(error)}`);
      assert.equal(error.code, code);
      if ("id" in options) assert.equal(error.id, options.id);
      return true;
    },
  );
}

function only(reading: McpReading): McpOperation {
  assert.equal(reading.operations.length, 1);
  const [operation] = reading.operations;
  assert.ok(operation !== undefined);
  return operation;
}

function pseudo(method: string): McpOperation {
  return { method, name: undefined, arguments: undefined, id: undefined };
}

/** Classifies a value that must be valid, and returns its operation. */
function operationOfValue(value: unknown): McpOperation {
  const message = classifyMessage(value);
  assert.notEqual(message.kind, "invalid", JSON.stringify(message));
  return operationOf(message as Exclude<JsonRpcMessage, { kind: "invalid" }>);
}

// ---------------------------------------------------------------- classifyMessage

describe("classifyMessage", () => {
  test("a request: jsonrpc 2.0, a string or number id and a method", () => {
    assert.deepEqual(classifyMessage(request(7, "tools/list")), {
      kind: "request",
      id: 7,
      method: "tools/list",
      params: undefined,
    });
    assert.deepEqual(classifyMessage(request("a-1", "ping", { x: 1 })), {
      kind: "request",
      id: "a-1",
      method: "ping",
      params: { x: 1 },
    });
    assert.deepEqual(classifyMessage(request(0, "ping")), {
      kind: "request",
      id: 0,
      method: "ping",
      params: undefined,
    });
  });

  test("a notification: a method and no id", () => {
    assert.deepEqual(
      classifyMessage({ jsonrpc: "2.0", method: "notifications/initialized", params: {} }),
      { kind: "notification", method: "notifications/initialized", params: {} },
    );
  });

  test("a response: result or error, with its id (null when the id is not valid)", () => {
    assert.deepEqual(classifyMessage({ jsonrpc: "2.0", id: 3, result: {} }), {
      kind: "response",
      id: 3,
    });
    assert.deepEqual(
      classifyMessage({ jsonrpc: "2.0", id: "s-9", error: { code: -1, message: "no" } }),
      { kind: "response", id: "s-9" },
    );
    assert.deepEqual(
      classifyMessage({ jsonrpc: "2.0", id: null, error: { code: -32700, message: "parse" } }),
      { kind: "response", id: null },
    );
    assert.deepEqual(classifyMessage({ jsonrpc: "2.0", id: { x: 1 }, result: 1 }), {
      kind: "response",
      id: null,
    });
  });

  test("jsonrpc must be exactly the string 2.0", () => {
    for (const jsonrpc of [undefined, "1.0", 2, 2.0, "2", " 2.0"]) {
      const value: Json = { id: 1, method: "ping" };
      if (jsonrpc !== undefined) value.jsonrpc = jsonrpc;
      assert.equal(classifyMessage(value).kind, "invalid", `jsonrpc ${JSON.stringify(jsonrpc)}`);
    }
  });

  test("a request id must be a string or a finite number (MCP: never null)", () => {
    const ids: unknown[] = [null, true, false, {}, [], [1], Infinity, NaN];
    for (const [index, id] of ids.entries()) {
      const message = classifyMessage({ jsonrpc: "2.0", id, method: "tools/call" });
      assert.equal(message.kind, "invalid", `ids[${index}]`);
    }
  });

  test("method must be a non-empty string", () => {
    for (const method of ["", 42, null, {}, ["tools/call"], true]) {
      const message = classifyMessage({ jsonrpc: "2.0", id: 1, method });
      assert.equal(message.kind, "invalid", `method ${JSON.stringify(method)}`);
    }
    // Even with a result beside it: an invalid method is not a response.
    assert.equal(
      classifyMessage({ jsonrpc: "2.0", id: 1, method: "", result: {} }).kind,
      "invalid",
    );
  });

  test("anything that is not one JSON object is invalid", () => {
    for (const value of [null, undefined, 1, "tools/call", true, [], [request(1, "ping")]]) {
      assert.equal(classifyMessage(value).kind, "invalid", JSON.stringify(value));
    }
  });

  test("an object with neither method nor result nor error is invalid", () => {
    assert.equal(classifyMessage({ jsonrpc: "2.0", id: 1 }).kind, "invalid");
    assert.equal(classifyMessage({ jsonrpc: "2.0" }).kind, "invalid");
  });
});

// ---------------------------------------------------------------- operationOf

describe("operationOf", () => {
  test("tools/call: the tool name, its arguments and the request id", () => {
    const args = { path: "/tmp/x", options: { recursive: true } };
    assert.deepEqual(operationOfValue(toolCall(12, "read_file", args)), {
      method: "tools/call",
      name: "read_file",
      arguments: args,
      id: 12,
    });
  });

  test("tools/call without a string name: the tool is not visible", () => {
    for (const params of [{}, { name: 7 }, { name: null }, [], "read_file", null]) {
      const operation = operationOfValue(request(1, "tools/call", params));
      assert.equal(operation.name, undefined, JSON.stringify(params));
      assert.equal(operation.method, "tools/call");
    }
  });

  test("resources/read, subscribe and unsubscribe: the resource URI", () => {
    for (const method of ["resources/read", "resources/subscribe", "resources/unsubscribe"]) {
      const operation = operationOfValue(request("r", method, { uri: "file:///etc/hosts" }));
      assert.deepEqual(operation, {
        method,
        name: "file:///etc/hosts",
        arguments: undefined,
        id: "r",
      });
    }
  });

  test("prompts/get: the prompt name; its arguments are not tool arguments", () => {
    const operation = operationOfValue(
      request(2, "prompts/get", { name: "summarize", arguments: { text: "x" } }),
    );
    assert.deepEqual(operation, {
      method: "prompts/get",
      name: "summarize",
      arguments: undefined,
      id: 2,
    });
  });

  test("methods without a target carry no name, even if params has one", () => {
    assert.deepEqual(operationOfValue(request(3, "tools/list", { name: "x", cursor: "c" })), {
      method: "tools/list",
      name: undefined,
      arguments: undefined,
      id: 3,
    });
  });

  test("a notification has no id", () => {
    assert.deepEqual(
      operationOfValue({ jsonrpc: "2.0", method: "notifications/cancelled", params: {} }),
      { method: "notifications/cancelled", name: undefined, arguments: undefined, id: undefined },
    );
  });

  test("a response is mcp/response, addressed by its id", () => {
    assert.deepEqual(operationOfValue({ jsonrpc: "2.0", id: "srv-1", result: { ok: 1 } }), {
      method: "mcp/response",
      name: undefined,
      arguments: undefined,
      id: "srv-1",
    });
  });

  test("hasNamedTarget names exactly the methods whose target Mcp-Name carries", () => {
    for (const method of [
      "tools/call",
      "prompts/get",
      "resources/read",
      "resources/subscribe",
      "resources/unsubscribe",
    ]) {
      assert.equal(hasNamedTarget(method), true, method);
    }
    for (const method of ["tools/list", "initialize", "ping", "mcp/opaque", ""]) {
      assert.equal(hasNamedTarget(method), false, method);
    }
  });

  test("method names that are Object.prototype keys have no named target", () => {
    // The lookup table must not answer for inherited keys: "constructor" would
    // otherwise read params["function Object() { [native code] }"].
    const params = {
      "[object Object]": "read_file",
      "function Object() { [native code] }": "read_file",
    };
    for (const method of ["__proto__", "constructor", "toString", "hasOwnProperty", "valueOf"]) {
      assert.equal(hasNamedTarget(method), false, method);
      assert.equal(operationOfValue(request(1, method, params)).name, undefined, method);
      // ...so Mcp-Name is not compared for them either.
      assert.equal(
        only(read({ mcpMethod: method, mcpName: "read_file", body: request(1, method) })).method,
        method,
      );
    }
  });
});

// ---------------------------------------------------------------- readMcpRequest

describe("readMcpRequest: HTTP methods", () => {
  test("GET opens the SSE stream: mcp/stream", () => {
    assert.deepEqual(read({ method: "GET" }), {
      operations: [pseudo("mcp/stream")],
      jsonRpc: false,
      batch: false,
    });
  });

  test("DELETE ends the session: mcp/session_end", () => {
    assert.deepEqual(read({ method: "DELETE" }), {
      operations: [pseudo("mcp/session_end")],
      jsonRpc: false,
      batch: false,
    });
  });

  test("methods are matched case-insensitively", () => {
    assert.equal(only(read({ method: "get" })).method, "mcp/stream");
    assert.equal(only(read({ method: "Delete" })).method, "mcp/session_end");
    assert.equal(only(read({ method: "post", body: toolCall(1, "read_file") })).name, "read_file");
  });

  test("every other method is refused: MCP does not use it", () => {
    for (const method of ["PUT", "PATCH", "HEAD", "OPTIONS", "CONNECT", "TRACE", "PROPFIND", ""]) {
      assertRefused({ method, body: toolCall(1, "read_file") }, "mcp_http_method_unsupported", {
        id: undefined,
      });
    }
  });
});

describe("readMcpRequest: one JSON-RPC message in the body", () => {
  test("a tools/call request", () => {
    const reading = read({ body: toolCall(5, "delete_x", { path: "/" }) });
    assert.deepEqual(reading, {
      operations: [{ method: "tools/call", name: "delete_x", arguments: { path: "/" }, id: 5 }],
      jsonRpc: true,
      batch: false,
    });
  });

  test("a resources/read request: the URI is the target", () => {
    assert.deepEqual(only(read({ body: request("q", "resources/read", { uri: "mem://a" }) })), {
      method: "resources/read",
      name: "mem://a",
      arguments: undefined,
      id: "q",
    });
  });

  test("a prompts/get request", () => {
    assert.deepEqual(only(read({ body: request(9, "prompts/get", { name: "greet" }) })), {
      method: "prompts/get",
      name: "greet",
      arguments: undefined,
      id: 9,
    });
  });

  test("a notification", () => {
    const reading = read({ body: { jsonrpc: "2.0", method: "notifications/initialized" } });
    assert.equal(reading.jsonRpc, true);
    assert.deepEqual(only(reading), pseudo("notifications/initialized"));
  });

  test("a JSON-RPC response from the client: mcp/response", () => {
    const reading = read({ body: { jsonrpc: "2.0", id: 4, result: { content: [] } } });
    assert.equal(reading.jsonRpc, true);
    assert.deepEqual(only(reading), {
      method: "mcp/response",
      name: undefined,
      arguments: undefined,
      id: 4,
    });
  });

  test("an invalid message is mcp_invalid, addressed to id null", () => {
    assertRefused({ body: { id: 1, method: "tools/call" } }, "mcp_invalid", { id: null });
    assertRefused({ body: { jsonrpc: "2.0", id: true, method: "tools/call" } }, "mcp_invalid", {
      id: null,
    });
    assertRefused({ body: { jsonrpc: "2.0", id: null, method: "tools/call" } }, "mcp_invalid", {
      id: null,
    });
    assertRefused({ body: { jsonrpc: "2.0", id: 1, method: "" } }, "mcp_invalid", { id: null });
    assertRefused({ body: { jsonrpc: "2.0", id: 1 } }, "mcp_invalid", { id: null });
    assertRefused({ body: "null" }, "mcp_invalid", { id: null });
    assertRefused({ body: '"tools/call"' }, "mcp_invalid", { id: null });
    assertRefused({ body: "42" }, "mcp_invalid", { id: null });
  });

  test("a body that is not JSON is mcp_invalid", () => {
    assertRefused({ body: '{"jsonrpc":"2.0",' }, "mcp_invalid", { id: null });
    assertRefused({ body: "jsonrpc=2.0&method=tools/call" }, "mcp_invalid", { id: null });
    assertRefused({ body: "   \n" }, "mcp_invalid", { id: null });
  });
});

describe("readMcpRequest: batches", () => {
  const calls = [
    toolCall(1, "read_file"),
    { jsonrpc: "2.0", method: "notifications/progress", params: {} },
    { jsonrpc: "2.0", id: "s", result: {} },
  ];

  test('under "reject" any batch is refused, even of one message', () => {
    assertRefused({ body: calls }, "mcp_batch_rejected", { id: null });
    assertRefused({ body: [toolCall(1, "read_file")] }, "mcp_batch_rejected", { id: null });
    assertRefused({ body: [] }, "mcp_batch_rejected", { id: null });
  });

  test('under "authorize_each" every element becomes an operation, in order', () => {
    const reading = read({ body: calls }, { batch: "authorize_each" });
    assert.equal(reading.jsonRpc, true);
    assert.equal(reading.batch, true);
    assert.deepEqual(reading.operations, [
      { method: "tools/call", name: "read_file", arguments: {}, id: 1 },
      pseudo("notifications/progress"),
      { method: "mcp/response", name: undefined, arguments: undefined, id: "s" },
    ]);
  });

  test('an empty batch is mcp_invalid under "authorize_each"', () => {
    assertRefused({ body: [] }, "mcp_invalid", { batch: "authorize_each", id: null });
  });

  test("one invalid element refuses the whole batch", () => {
    assertRefused(
      { body: [toolCall(1, "read_file"), { jsonrpc: "1.0", id: 2, method: "ping" }] },
      "mcp_invalid",
      { batch: "authorize_each", id: null },
    );
    assertRefused({ body: [toolCall(1, "read_file"), 7] }, "mcp_invalid", {
      batch: "authorize_each",
    });
  });

  test("a nested batch is not a message", () => {
    assertRefused({ body: [[toolCall(1, "read_file")]] }, "mcp_invalid", {
      batch: "authorize_each",
    });
  });
});

describe("readMcpRequest: Mcp-Method and Mcp-Name against the body", () => {
  test("headers that agree with the body are accepted", () => {
    const operation = only(
      read({ mcpMethod: "tools/call", mcpName: "read_file", body: toolCall(1, "read_file") }),
    );
    assert.equal(operation.name, "read_file");
    assert.equal(
      only(
        read({
          mcpMethod: "resources/read",
          mcpName: "mem://a",
          body: request(2, "resources/read", { uri: "mem://a" }),
        }),
      ).name,
      "mem://a",
    );
    assert.equal(
      only(read({ mcpMethod: "tools/list", body: request(3, "tools/list") })).method,
      "tools/list",
    );
  });

  test("Mcp-Method disagreeing with the body: mcp_header_mismatch, addressed to the request", () => {
    assertRefused(
      { mcpMethod: "tools/list", body: toolCall(11, "delete_x") },
      "mcp_header_mismatch",
      { id: 11 },
    );
    assertRefused(
      { mcpMethod: "tools/call", body: request("x", "resources/read", { uri: "mem://a" }) },
      "mcp_header_mismatch",
      { id: "x" },
    );
    // Exact match: method names are case-sensitive.
    assertRefused(
      { mcpMethod: "Tools/Call", body: toolCall(12, "read_file") },
      "mcp_header_mismatch",
      { id: 12 },
    );
  });

  test("Mcp-Name disagreeing with the body's target: mcp_header_mismatch", () => {
    assertRefused(
      { mcpMethod: "tools/call", mcpName: "read_file", body: toolCall(13, "delete_x") },
      "mcp_header_mismatch",
      { id: 13 },
    );
    // Mcp-Name alone (no Mcp-Method) is checked too.
    assertRefused({ mcpName: "read_file", body: toolCall(14, "delete_x") }, "mcp_header_mismatch", {
      id: 14,
    });
    assertRefused(
      { mcpName: "mem://a", body: request(15, "resources/read", { uri: "mem://b" }) },
      "mcp_header_mismatch",
      { id: 15 },
    );
    // A call whose body names nothing is refused whatever the headers say (see "targets").
    assertRefused(
      { mcpName: "read_file", body: request(16, "tools/call", { arguments: {} }) },
      "mcp_invalid",
      { id: 16 },
    );
  });

  test("a notification with a disagreeing Mcp-Method is refused, with no id", () => {
    assertRefused(
      { mcpMethod: "tools/call", body: { jsonrpc: "2.0", method: "notifications/initialized" } },
      "mcp_header_mismatch",
      { id: undefined },
    );
  });

  test("Mcp-Name is not compared for methods without a named target", () => {
    assert.equal(
      only(read({ mcpName: "whatever", body: request(1, "tools/list") })).method,
      "tools/list",
    );
  });
});

describe("readMcpRequest: a POST without a visible body", () => {
  test("by default Mcp-Method/Mcp-Name without a body are the client's word: ignored, opaque", () => {
    for (const headersWithoutBody of ["ignore", undefined] as const) {
      const reading = readMcpRequest(original({ mcpMethod: "tools/call", mcpName: "read_file" }), {
        batch: "reject",
        maxBatchElements: 256,
        ...(headersWithoutBody === undefined ? {} : { headersWithoutBody }),
      });
      assert.deepEqual(reading, {
        operations: [pseudo("mcp/opaque")],
        jsonRpc: false,
        batch: false,
      });
    }
  });

  test("Mcp-Method and Mcp-Name are used when the body is not visible", () => {
    const reading = read({ mcpMethod: "tools/call", mcpName: "read_file" });
    assert.deepEqual(reading, {
      operations: [
        { method: "tools/call", name: "read_file", arguments: undefined, id: undefined },
      ],
      jsonRpc: false,
      batch: false,
    });
    // An empty body is no body.
    assert.deepEqual(read({ mcpMethod: "tools/list", body: Buffer.alloc(0) }), {
      operations: [pseudo("tools/list")],
      jsonRpc: false,
      batch: false,
    });
  });

  test("Mcp-Method tools/call without Mcp-Name: the tool is not visible", () => {
    assert.deepEqual(only(read({ mcpMethod: "tools/call" })), pseudo("tools/call"));
    // An empty Mcp-Name names nothing either: not a tool called "".
    assert.deepEqual(only(read({ mcpMethod: "tools/call", mcpName: "" })), pseudo("tools/call"));
  });

  test("no body and no Mcp-Method: mcp/opaque (Mcp-Name alone says nothing)", () => {
    assert.deepEqual(read({}), {
      operations: [pseudo("mcp/opaque")],
      jsonRpc: false,
      batch: false,
    });
    assert.deepEqual(read({ body: Buffer.alloc(0) }), {
      operations: [pseudo("mcp/opaque")],
      jsonRpc: false,
      batch: false,
    });
    assert.deepEqual(only(read({ mcpName: "read_file" })), pseudo("mcp/opaque"));
  });
});

describe("readMcpRequest: body limits", () => {
  test("a body larger than maxBytes is mcp_invalid", () => {
    const small: JsonBodyLimits = { maxBytes: 64, maxDepth: 8 };
    const body = toolCall(1, "read_file", { text: "x".repeat(100) });
    assertRefused({ body }, "mcp_invalid", { limits: small, id: null });
    // The limit is in bytes, inclusive.
    const exact = Buffer.from(JSON.stringify(toolCall(1, "r")), "utf8");
    assert.equal(
      only(read({ body: exact }, { limits: { maxBytes: exact.length, maxDepth: 8 } })).name,
      "r",
    );
    assertRefused({ body: exact }, "mcp_invalid", {
      limits: { maxBytes: exact.length - 1, maxDepth: 8 },
    });
  });

  test("a body nested deeper than maxDepth is mcp_invalid (arguments included)", () => {
    // message(1) > params(2) > arguments(3) > a(4) > b(5)
    const deep = toolCall(1, "read_file", { a: { b: {} } });
    assert.equal(only(read({ body: deep }, { limits: { maxBytes: 4096, maxDepth: 5 } })).id, 1);
    assertRefused({ body: deep }, "mcp_invalid", {
      limits: { maxBytes: 4096, maxDepth: 4 },
      id: null,
    });
    // A batch adds a level.
    assertRefused({ body: [deep] }, "mcp_invalid", {
      batch: "authorize_each",
      limits: { maxBytes: 4096, maxDepth: 5 },
    });
  });

  test("invalid UTF-8 and hostile keys are mcp_invalid", () => {
    const text = JSON.stringify(toolCall(1, "read_file", { p: "AB" }));
    const bytes = Buffer.from(text, "utf8");
    const at = bytes.indexOf("AB");
    bytes[at] = 0xc3;
    bytes[at + 1] = 0x28;
    assertRefused({ body: bytes }, "mcp_invalid", { id: null });
    assertRefused(
      { body: '{"jsonrpc":"2.0","id":1,"method":"tools/call","params":{"__proto__":{"x":1}}}' },
      "mcp_invalid",
      { id: null },
    );
  });
});

describe("readMcpRequest: a visible call must name its target", () => {
  // One semantic for forward-auth and the PEP library: a body that shows the call but not its
  // target is invalid MCP (400), never a guess. Only a call the PDP cannot see is a hidden tool.
  const nameless: [string, Json][] = [
    ["a tools/call without a name", request(1, "tools/call", { arguments: {} })],
    ["a tools/call with an empty name", toolCall(2, "")],
    ["a tools/call whose name is not a string", request(3, "tools/call", { name: 7 })],
    ["a tools/call without params", request(4, "tools/call")],
    ["a prompts/get without a name", request(5, "prompts/get", {})],
    ["a resources/read without a uri", request(6, "resources/read", {})],
    ["a resources/subscribe with an empty uri", request(7, "resources/subscribe", { uri: "" })],
  ];
  for (const [name, body] of nameless) {
    test(`${name}: mcp_invalid, addressed to the request`, () => {
      assertRefused({ body }, "mcp_invalid", { id: body.id as number });
    });
  }

  test("a nameless notification is refused too (id null), and so is a batch holding one", () => {
    assertRefused({ body: { jsonrpc: "2.0", method: "tools/call", params: {} } }, "mcp_invalid", {
      id: null,
    });
    assertRefused(
      { body: [toolCall(1, "read_file"), request(2, "tools/call", {})] },
      "mcp_invalid",
      { batch: "authorize_each", id: null },
    );
  });
});

describe("readMcpRequest: a document the MCP server's framework already parsed (the PEP library)", () => {
  const readDocument = (method: string, document: unknown, headers: Partial<Original> = {}) =>
    readMcpRequest(
      {
        method,
        mcpMethod: headers.mcpMethod,
        mcpName: headers.mcpName,
        protocolVersion: headers.protocolVersion,
        body: document === undefined ? undefined : { document },
      },
      { batch: "authorize_each" },
    );

  test("read like bytes: one message, a batch, the same operations", () => {
    assert.deepEqual(readDocument("POST", toolCall(1, "read_file", { p: 1 })), {
      operations: [{ method: "tools/call", name: "read_file", arguments: { p: 1 }, id: 1 }],
      jsonRpc: true,
      batch: false,
    });
    const batch = readDocument("POST", [toolCall(1, "a"), request(2, "tools/list")]);
    assert.equal(batch.batch, true);
    assert.deepEqual(
      batch.operations.map((o) => o.method),
      ["tools/call", "tools/list"],
    );
  });

  test("the same refusals: pseudo-methods, disagreeing headers, nameless calls, HEAD", () => {
    const refusedWith = (code: McpRefusalCode, run: () => unknown) => {
      assert.throws(run, (error: unknown) => error instanceof McpRefusal && error.code === code);
    };
    refusedWith("mcp_invalid", () => readDocument("POST", request(1, "mcp/stream")));
    refusedWith("mcp_header_mismatch", () =>
      readDocument("POST", toolCall(1, "read_file"), { mcpName: "delete_repo" }),
    );
    refusedWith("mcp_invalid", () => readDocument("POST", request(1, "tools/call", {})));
    refusedWith("mcp_invalid", () => readDocument("POST", []));
    refusedWith("mcp_invalid", () => readDocument("GET", {}));
    refusedWith("mcp_http_method_unsupported", () => readDocument("HEAD", undefined));
    refusedWith("mcp_http_method_unsupported", () => readDocument("OPTIONS", undefined));
  });

  test("without maxBatchElements a batch is bounded only by the body the server accepted", () => {
    const many = Array.from({ length: 300 }, (_, index) => request(index, "ping"));
    assert.equal(readDocument("POST", many).operations.length, 300);
  });
});

// ---------------------------------------------------------------- MCP 2026-07-28

const modern = "2026-07-28";
const envelope = (version: string, extra: Json = {}): Json => ({
  ...extra,
  _meta: {
    "io.modelcontextprotocol/protocolVersion": version,
    "io.modelcontextprotocol/clientCapabilities": {},
  },
});
const modernCall = (id: number, name: string): Json =>
  request(id, "tools/call", envelope(modern, { name, arguments: {} }));
const base64Form = (text: string) => `=?base64?${Buffer.from(text, "utf8").toString("base64")}?=`;

describe("readMcpRequest: a request that declares MCP 2026-07-28, body visible", () => {
  test("complete headers that agree with the body: read, and the revision reported", () => {
    const reading = read({
      protocolVersion: modern,
      mcpMethod: "tools/call",
      mcpName: "read_file",
      body: modernCall(1, "read_file"),
    });
    assert.equal(reading.protocolVersion, modern);
    assert.equal(only(reading).name, "read_file");
    for (const [method, params, name] of [
      ["server/discover", {}, undefined],
      ["subscriptions/listen", {}, undefined],
      ["resources/read", { uri: "mem://a" }, "mem://a"],
      ["prompts/get", { name: "greet" }, "greet"],
      ["tasks/get", { taskId: "t-1" }, "t-1"],
      ["tasks/update", { taskId: "t-1" }, "t-1"],
      ["tasks/cancel", { taskId: "t-1" }, "t-1"],
    ] as const) {
      const operation = only(
        read({
          protocolVersion: modern,
          mcpMethod: method,
          ...(name === undefined ? {} : { mcpName: name }),
          body: request(2, method, envelope(modern, params)),
        }),
      );
      assert.deepEqual([operation.method, operation.name], [method, name], method);
    }
  });

  test("a non-ASCII name in the =?base64?…?= form is decoded and compared", () => {
    const reading = read({
      protocolVersion: modern,
      mcpMethod: "tools/call",
      mcpName: base64Form("überprüfen"),
      body: modernCall(3, "überprüfen"),
    });
    assert.equal(only(reading).name, "überprüfen");
  });

  // Each row: what is wrong, the headers and body, the refusal and the JSON-RPC id it answers.
  const refusals: {
    note: string;
    input: Original;
    code: McpRefusalCode;
    id: string | number | null | undefined;
  }[] = [
    {
      note: "header 2026-07-28, _meta another revision",
      input: {
        protocolVersion: modern,
        mcpMethod: "tools/call",
        mcpName: "read_file",
        body: request(10, "tools/call", envelope("2025-11-25", { name: "read_file" })),
      },
      code: "mcp_header_mismatch",
      id: 10,
    },
    {
      note: "_meta 2026-07-28, header another revision",
      input: {
        protocolVersion: "2025-11-25",
        mcpMethod: "tools/call",
        mcpName: "read_file",
        body: modernCall(11, "read_file"),
      },
      code: "mcp_header_mismatch",
      id: 11,
    },
    {
      note: "header 2026-07-28, body without _meta revision (a legacy body under a modern header)",
      input: {
        protocolVersion: modern,
        mcpMethod: "tools/call",
        mcpName: "read_file",
        body: toolCall(13, "read_file"),
      },
      code: "mcp_header_mismatch",
      id: 13,
    },
    {
      note: "no Mcp-Method",
      input: { protocolVersion: modern, mcpName: "read_file", body: modernCall(14, "read_file") },
      code: "mcp_header_mismatch",
      id: 14,
    },
    {
      note: "no Mcp-Method on a method without a target",
      input: { protocolVersion: modern, body: request(15, "tools/list", envelope(modern)) },
      code: "mcp_header_mismatch",
      id: 15,
    },
    {
      note: "no Mcp-Name on tools/call",
      input: {
        protocolVersion: modern,
        mcpMethod: "tools/call",
        body: modernCall(16, "read_file"),
      },
      code: "mcp_header_mismatch",
      id: 16,
    },
    {
      note: "no Mcp-Name on resources/read",
      input: {
        protocolVersion: modern,
        mcpMethod: "resources/read",
        body: request(17, "resources/read", envelope(modern, { uri: "mem://a" })),
      },
      code: "mcp_header_mismatch",
      id: 17,
    },
    {
      note: "no Mcp-Name on prompts/get",
      input: {
        protocolVersion: modern,
        mcpMethod: "prompts/get",
        body: request(18, "prompts/get", envelope(modern, { name: "greet" })),
      },
      code: "mcp_header_mismatch",
      id: 18,
    },
    {
      note: "no Mcp-Name on tasks/cancel",
      input: {
        protocolVersion: modern,
        mcpMethod: "tasks/cancel",
        body: request(19, "tasks/cancel", envelope(modern, { taskId: "t-1" })),
      },
      code: "mcp_header_mismatch",
      id: 19,
    },
    {
      note: "an empty Mcp-Name against a named body",
      input: {
        protocolVersion: modern,
        mcpMethod: "tools/call",
        mcpName: "",
        body: modernCall(20, "read_file"),
      },
      code: "mcp_header_mismatch",
      id: 20,
    },
    {
      note: "a base64 name that decodes to another tool",
      input: {
        protocolVersion: modern,
        mcpMethod: "tools/call",
        mcpName: base64Form("read_file"),
        body: modernCall(21, "delete_repo"),
      },
      code: "mcp_header_mismatch",
      id: 21,
    },
    {
      note: "a base64 payload that is not canonical (stray bits)",
      input: {
        protocolVersion: modern,
        mcpMethod: "tools/call",
        mcpName: "=?base64?QR==?=",
        body: modernCall(22, "A"),
      },
      code: "mcp_header_mismatch",
      id: 22,
    },
    {
      note: "a base64 payload without padding",
      input: {
        protocolVersion: modern,
        mcpMethod: "tools/call",
        mcpName: "=?base64?QQ?=",
        body: modernCall(23, "A"),
      },
      code: "mcp_header_mismatch",
      id: 23,
    },
    {
      note: "a base64 payload outside the alphabet (base64url)",
      input: {
        protocolVersion: modern,
        mcpMethod: "tools/call",
        mcpName: "=?base64?-_8=?=",
        body: modernCall(24, "x"),
      },
      code: "mcp_header_mismatch",
      id: 24,
    },
    {
      note: "a base64 payload that is not UTF-8",
      input: {
        protocolVersion: modern,
        mcpMethod: "tools/call",
        mcpName: `=?base64?${Buffer.from([0xff, 0xfe]).toString("base64")}?=`,
        body: modernCall(25, "x"),
      },
      code: "mcp_header_mismatch",
      id: 25,
    },
    {
      note: "an encoded word in another spelling (=?BASE64?, RFC 2047 =?utf-8?B?)",
      input: {
        protocolVersion: modern,
        mcpMethod: "tools/call",
        mcpName: "=?utf-8?B?ZGVsZXRlX3JlcG8=?=",
        body: modernCall(26, "=?utf-8?B?ZGVsZXRlX3JlcG8=?="),
      },
      code: "mcp_header_mismatch",
      id: 26,
    },
    {
      note: "a 2026-07-28 batch (the revision has none; servers route batches by body alone)",
      input: {
        protocolVersion: modern,
        body: [modernCall(27, "read_file"), request(28, "tools/list", envelope(modern))],
      },
      code: "mcp_invalid",
      id: null,
    },
    {
      note: "a batch whose element claims 2026-07-28 in _meta, no header",
      input: { body: [toolCall(29, "read_file"), modernCall(30, "read_file")] },
      code: "mcp_invalid",
      id: null,
    },
    {
      note: "a _meta revision that is not a string",
      input: {
        protocolVersion: modern,
        mcpMethod: "tools/call",
        mcpName: "read_file",
        body: request(31, "tools/call", {
          name: "read_file",
          _meta: { "io.modelcontextprotocol/protocolVersion": 20260728 },
        }),
      },
      code: "mcp_invalid",
      id: 31,
    },
    {
      note: "a _Meta key shadowing _meta for case-insensitive servers",
      input: {
        protocolVersion: modern,
        mcpMethod: "tools/call",
        mcpName: "read_file",
        body: request(32, "tools/call", { ...envelope(modern, { name: "read_file" }), _Meta: {} }),
      },
      code: "mcp_invalid",
      id: null,
    },
    {
      note: "a TaskID key shadowing taskId for case-insensitive servers",
      input: {
        protocolVersion: modern,
        mcpMethod: "tasks/cancel",
        mcpName: "t-1",
        body: request(33, "tasks/cancel", envelope(modern, { taskId: "t-1", TaskID: "t-2" })),
      },
      code: "mcp_invalid",
      id: null,
    },
    {
      note: "a pseudo-method in Mcp-Method",
      input: {
        protocolVersion: modern,
        mcpMethod: "mcp/response",
        body: request(34, "tools/list", envelope(modern)),
      },
      code: "mcp_invalid",
      id: undefined,
    },
    {
      note: "a tasks/get naming no task",
      input: {
        protocolVersion: modern,
        mcpMethod: "tasks/get",
        mcpName: "t-1",
        body: request(35, "tasks/get", envelope(modern)),
      },
      code: "mcp_invalid",
      id: 35,
    },
  ];
  for (const row of refusals) {
    test(`refused: ${row.note}`, () => {
      assertRefused(row.input, row.code, { id: row.id, batch: "authorize_each" });
    });
  }

  test("_meta 2026-07-28 without an MCP-Protocol-Version header: read from the body, the rest still checked", () => {
    // A proxy may pass the PDP fewer headers than the server (Envoy's allowed_headers); the
    // server checks the header's presence itself.
    const reading = read({
      mcpMethod: "tools/call",
      mcpName: "read_file",
      body: modernCall(12, "read_file"),
    });
    assert.equal(reading.protocolVersion, modern);
    assert.equal(only(reading).name, "read_file");
    assertRefused(
      { mcpName: "read_file", body: modernCall(12, "read_file") },
      "mcp_header_mismatch",
      {
        id: 12,
      },
    );
    assertRefused(
      { mcpMethod: "tools/call", mcpName: "read_file", body: modernCall(12, "delete_x") },
      "mcp_header_mismatch",
      {
        id: 12,
      },
    );
  });

  test("a later revision is held to the same headers (servers compare revisions as dates)", () => {
    assertRefused(
      {
        protocolVersion: "2027-01-01",
        body: request(40, "tools/call", envelope("2027-01-01", { name: "read_file" })),
      },
      "mcp_header_mismatch",
      { id: 40 },
    );
  });

  test("notifications need no Mcp-Method, but must not contradict the body", () => {
    const notification = {
      jsonrpc: "2.0",
      method: "notifications/cancelled",
      params: envelope(modern, { requestId: 1 }),
    };
    assert.equal(
      only(read({ protocolVersion: modern, body: notification })).method,
      "notifications/cancelled",
    );
    assertRefused({ protocolVersion: "2025-11-25", body: notification }, "mcp_header_mismatch", {
      id: undefined,
    });
  });

  test("older revisions are read as before: no header is mandatory", () => {
    const reading = read({ protocolVersion: "2025-11-25", body: toolCall(41, "read_file") });
    assert.equal(reading.protocolVersion, "2025-11-25");
    assert.equal(only(reading).name, "read_file");
    assert.equal(read({ body: toolCall(42, "read_file") }).protocolVersion, undefined);
  });
});

describe("readMcpRequest: a request that declares MCP 2026-07-28, no body (headers-only proxy)", () => {
  const headersOnly = (input: Original, trust: HeadersWithoutBody) =>
    read(input, { headersWithoutBody: trust });

  test("to a server that speaks 2026-07-28: decided from Mcp-Method and the decoded Mcp-Name", () => {
    const reading = headersOnly(
      { protocolVersion: modern, mcpMethod: "tools/call", mcpName: base64Form("überprüfen") },
      "trust_2026_07_28",
    );
    assert.deepEqual(reading, {
      operations: [
        { method: "tools/call", name: "überprüfen", arguments: undefined, id: undefined },
      ],
      jsonRpc: false,
      batch: false,
      protocolVersion: modern,
    });
    assert.equal(
      only(headersOnly({ protocolVersion: modern, mcpMethod: "tools/list" }, "trust_2026_07_28"))
        .method,
      "tools/list",
    );
    assert.equal(
      only(
        headersOnly(
          { protocolVersion: modern, mcpMethod: "tasks/get", mcpName: "t-1" },
          "trust_2026_07_28",
        ),
      ).name,
      "t-1",
    );
  });

  test("not believed: an older or later revision, none, or a server not marked", () => {
    for (const [protocolVersion, trust] of [
      ["2025-11-25", "trust_2026_07_28"],
      ["2027-01-01", "trust_2026_07_28"],
      [undefined, "trust_2026_07_28"],
      [modern, "ignore"],
    ] as const) {
      const reading = headersOnly(
        {
          ...(protocolVersion === undefined ? {} : { protocolVersion }),
          mcpMethod: "tools/call",
          mcpName: "read_file",
        },
        trust,
      );
      assert.deepEqual(
        reading.operations,
        [pseudo("mcp/opaque")],
        `${protocolVersion ?? "none"} ${trust}`,
      );
    }
  });

  const refusedRows: { note: string; input: Original; code: McpRefusalCode }[] = [
    {
      note: "no Mcp-Method",
      input: { protocolVersion: modern, mcpName: "read_file" },
      code: "mcp_header_mismatch",
    },
    {
      note: "no Mcp-Name on tools/call",
      input: { protocolVersion: modern, mcpMethod: "tools/call" },
      code: "mcp_header_mismatch",
    },
    {
      note: "an empty Mcp-Name on tools/call",
      input: { protocolVersion: modern, mcpMethod: "tools/call", mcpName: "" },
      code: "mcp_header_mismatch",
    },
    {
      note: "no Mcp-Name on resources/read",
      input: { protocolVersion: modern, mcpMethod: "resources/read" },
      code: "mcp_header_mismatch",
    },
    {
      note: "no Mcp-Name on tasks/update",
      input: { protocolVersion: modern, mcpMethod: "tasks/update" },
      code: "mcp_header_mismatch",
    },
    {
      note: "an empty base64 name",
      input: { protocolVersion: modern, mcpMethod: "prompts/get", mcpName: "=?base64??=" },
      code: "mcp_header_mismatch",
    },
    {
      note: "a malformed base64 name",
      input: { protocolVersion: modern, mcpMethod: "tools/call", mcpName: "=?base64?%%%%?=" },
      code: "mcp_header_mismatch",
    },
    {
      note: "an unterminated base64 name",
      input: { protocolVersion: modern, mcpMethod: "tools/call", mcpName: "=?base64?cmVhZF9maWxl" },
      code: "mcp_header_mismatch",
    },
    {
      note: "two Mcp-Name headers folded into one",
      input: {
        protocolVersion: modern,
        mcpMethod: "tools/call",
        mcpName: "read_file, delete_repo",
      },
      code: "mcp_invalid",
    },
    {
      note: "two Mcp-Method headers folded into one",
      input: { protocolVersion: modern, mcpMethod: "tools/list, tools/call", mcpName: "read_file" },
      code: "mcp_invalid",
    },
    {
      note: "a pseudo-method",
      input: { protocolVersion: modern, mcpMethod: "mcp/stream" },
      code: "mcp_invalid",
    },
  ];
  for (const row of refusedRows) {
    test(`refused: ${row.note}`, () => {
      assertRefused(row.input, row.code, { headersWithoutBody: "trust_2026_07_28", id: undefined });
    });
  }

  test("the mandatory headers hold under enforces_mcp_headers' trust too", () => {
    assertRefused({ protocolVersion: modern, mcpMethod: "tools/call" }, "mcp_header_mismatch", {
      headersWithoutBody: "trust",
    });
    assertRefused({ protocolVersion: modern }, "mcp_header_mismatch", {
      headersWithoutBody: "trust",
    });
    assert.deepEqual(read({}, { headersWithoutBody: "trust" }).operations, [pseudo("mcp/opaque")]);
  });
});

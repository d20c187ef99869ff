/** JSON-RPC error code of an authorization refusal or outage (forward-auth and the PEP library). */
export const jsonRpcAccessDenied = -32003;
/** JSON-RPC "Invalid Request". */
export const jsonRpcInvalidRequest = -32600;
/** JSON-RPC "Internal error". */
export const jsonRpcInternalError = -32603;

/** A JSON-RPC request id. */
export type JsonRpcId = string | number;

/** One JSON-RPC 2.0 message as MCP sends it over Streamable HTTP. */
export type JsonRpcMessage =
  | { kind: "request"; id: string | number; method: string; params: unknown }
  | { kind: "notification"; method: string; params: unknown }
  | { kind: "response"; id: string | number | null }
  | { kind: "invalid"; reason: string };

/**
 * Whether a method name is in the PDP's own pseudo-method space (`mcp/stream`,
 * `mcp/response` …, see operation.ts). The PDP derives those from what it
 * sees; a client that names one, in a body or an `Mcp-Method` header, is
 * trying to be judged as something it is not.
 */
export function isPseudoMethod(method: string): boolean {
  return /^mcp\//i.test(method);
}

/** The members of a JSON-RPC message, and of its params, that the PDP reads. */
const messageMembers = ["jsonrpc", "id", "method", "params", "result", "error"] as const;
const paramsMembers = ["name", "uri", "taskId", "arguments", "_meta"] as const;

/**
 * A key that is not one the PDP reads but matches one case-insensitively.
 * JavaScript reads JSON keys exactly; Go's encoding/json (mcp-go) and .NET's
 * web defaults (the C# SDK) match struct fields case-insensitively, with
 * Unicode simple folding (`ſ` is `s`, `K` is `k`) and the last match
 * winning. `{"name": "read_file", "Name": "delete_repo"}` would then be judged
 * as one tool and run as another: such a body is refused.
 */
function caseShadow(object: object, members: readonly string[]): string | undefined {
  for (const key of Object.keys(object)) {
    if (members.includes(key)) continue;
    const folded = foldCase(key);
    if (members.some((member) => foldCase(member) === folded)) return key;
  }
  return undefined;
}

/** A key as case-insensitive matchers compare it: upper then lower folds ſ (→ S → s) and K (→ k) too. */
function foldCase(key: string): string {
  return key.toUpperCase().toLowerCase();
}

/**
 * The first key of an object inside `value` (tool arguments) that folds, as
 * caseShadow folds, to the same name as another key of the same object:
 * `{"path": "/tmp/ok", "Path": "/etc/shadow"}` is one argument to a Go or
 * .NET tool (last match wins) and two to a policy reading `arguments.path`.
 * The body's depth is bounded before it gets here.
 */
function foldedTwin(value: unknown): string | undefined {
  if (typeof value !== "object" || value === null) return undefined;
  if (Array.isArray(value)) {
    for (const item of value) {
      const twin = foldedTwin(item);
      if (twin !== undefined) return twin;
    }
    return undefined;
  }
  const seen = new Set<string>();
  for (const [key, item] of Object.entries(value)) {
    const folded = foldCase(key);
    if (seen.has(folded)) return key;
    seen.add(folded);
    const twin = foldedTwin(item);
    if (twin !== undefined) return twin;
  }
  return undefined;
}

/** Classifies a parsed JSON value as a JSON-RPC request, notification or response. */
export function classifyMessage(value: unknown): JsonRpcMessage {
  if (typeof value !== "object" || value === null || Array.isArray(value)) {
    return { kind: "invalid", reason: "a JSON-RPC message must be an object" };
  }
  const message = value as Record<string, unknown>;
  const params = message.params;
  const paramsObject =
    typeof params === "object" && params !== null && !Array.isArray(params)
      ? (params as Record<string, unknown>)
      : undefined;
  const shadow =
    caseShadow(message, messageMembers) ??
    (paramsObject === undefined
      ? undefined
      : (caseShadow(paramsObject, paramsMembers) ?? foldedTwin(paramsObject.arguments)));
  if (shadow !== undefined) {
    return {
      kind: "invalid",
      reason: `key ${JSON.stringify(shadow.slice(0, 64))} matches another key case-insensitively: servers that match keys that way would read it instead`,
    };
  }
  if (message.jsonrpc !== "2.0") return { kind: "invalid", reason: 'jsonrpc must be "2.0"' };
  const { id, method } = message;
  const validId = typeof id === "string" || (typeof id === "number" && Number.isFinite(id));
  if (typeof method === "string" && method !== "") {
    if (isPseudoMethod(method)) {
      return { kind: "invalid", reason: `${method.slice(0, 64)} is reserved for the PDP` };
    }
    if (id === undefined) return { kind: "notification", method, params: message.params };
    if (!validId) return { kind: "invalid", reason: "a request id must be a string or a number" };
    return { kind: "request", id: id, method, params: message.params };
  }
  if (method !== undefined) return { kind: "invalid", reason: "method must be a non-empty string" };
  if ("result" in message || "error" in message) {
    return { kind: "response", id: validId ? id : null };
  }
  return { kind: "invalid", reason: "neither a request, a notification nor a response" };
}

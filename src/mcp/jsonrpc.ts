/** JSON-RPC error code of an authorization refusal or outage (forward-auth and the PEP library). */
export const jsonRpcAccessDenied = -32003;
/** JSON-RPC "Invalid Request". */
export const jsonRpcInvalidRequest = -32600;

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

/** Classifies a parsed JSON value as a JSON-RPC request, notification or response. */
export function classifyMessage(value: unknown): JsonRpcMessage {
  if (typeof value !== "object" || value === null || Array.isArray(value)) {
    return { kind: "invalid", reason: "a JSON-RPC message must be an object" };
  }
  const message = value as Record<string, unknown>;
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

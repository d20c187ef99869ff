import type { JsonRpcMessage } from "./jsonrpc.ts";

/**
 * What one MCP message asks for, as far as authorization is concerned. Besides
 * the MCP methods, four pseudo-methods name what is not a JSON-RPC request:
 *
 * - `mcp/stream`: GET, opening the server-to-client SSE stream;
 * - `mcp/session_end`: DELETE, ending the session;
 * - `mcp/response`: the client answering a server request (sampling, elicitation);
 * - `mcp/opaque`: a POST whose body and `Mcp-Method` the PDP cannot see. The
 *   default policy treats it as a call of an unseen tool: the highest risk.
 */
export interface McpOperation {
  method: string;
  /** The tool or prompt name, the resource URI, or the task id; undefined when not visible. */
  name: string | undefined;
  /** `tools/call` arguments, when visible. */
  arguments: unknown;
  /** The JSON-RPC id, to address an error to the request it answers. */
  id: string | number | null | undefined;
}

/** Where a method keeps the name of its target (a Map: no inherited keys like "constructor"). */
const nameParameter: ReadonlyMap<string, string> = new Map(
  Object.entries({
    "tools/call": "name",
    "prompts/get": "name",
    "resources/read": "uri",
    "resources/subscribe": "uri",
    "resources/unsubscribe": "uri",
    // The task a tasks/* request is about (2025-11-25 tasks, and the 2026-07-28 tasks
    // extension, whose Streamable HTTP binding makes Mcp-Name carry it).
    "tasks/get": "taskId",
    "tasks/result": "taskId",
    "tasks/update": "taskId",
    "tasks/cancel": "taskId",
  }),
);

export function operationOf(message: Exclude<JsonRpcMessage, { kind: "invalid" }>): McpOperation {
  if (message.kind === "response") {
    return { method: "mcp/response", name: undefined, arguments: undefined, id: message.id };
  }
  const params =
    typeof message.params === "object" && message.params !== null
      ? (message.params as Record<string, unknown>)
      : {};
  const key = nameParameter.get(message.method);
  const name = key === undefined ? undefined : params[key];
  return {
    method: message.method,
    name: typeof name === "string" ? name : undefined,
    arguments: message.method === "tools/call" ? params.arguments : undefined,
    id: message.kind === "request" ? message.id : undefined,
  };
}

/** The methods whose target `Mcp-Name` carries (SEP-2243; the tasks extension for tasks/*). */
export function hasNamedTarget(method: string): boolean {
  return nameParameter.has(method);
}

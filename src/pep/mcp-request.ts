import { classifyMessage } from "../protocol/mcp/jsonrpc.js";
import { hasNamedTarget, operationOf } from "../protocol/mcp/operation.js";
import type { ToolAnnotations } from "./options.js";
import type { AuthzenEntity, EvaluationItem } from "./pdp-client.js";
import type { JsonRpcId } from "./responses.js";

/** One thing the HTTP request asks the MCP server to do, to be authorized. */
export interface McpElement {
  /** The AuthZEN action name: the MCP method, or `mcp/stream`, `mcp/session_end`, `mcp/response`. */
  method: string;
  /** The tool or prompt name, or the resource URI. */
  name: string | undefined;
  /** The id to answer, for JSON-RPC requests only. */
  id: JsonRpcId | undefined;
}

export type McpReading =
  /** Not an MCP exchange the PEP judges (e.g. OPTIONS): handed on untouched. */
  | { kind: "pass" }
  /** A POST whose body nobody parsed (no express.json() before the PEP, or not JSON). */
  | { kind: "unparsed" }
  | { kind: "invalid"; message: string; id: JsonRpcId | null }
  | { kind: "authorize"; elements: McpElement[]; batch: boolean };

/**
 * What a Streamable HTTP request asks for: GET (and HEAD) opens the
 * server-to-client stream, DELETE ends the session, a POST carries one
 * JSON-RPC message or a batch, each element of which is authorized. Anything
 * the PEP cannot read is refused rather than handed to the SDK unjudged.
 */
export function readMcpRequest(httpMethod: string, body: unknown): McpReading {
  const method = httpMethod.toUpperCase();
  if (method === "GET" || method === "HEAD") return only("mcp/stream");
  if (method === "DELETE") return only("mcp/session_end");
  if (method !== "POST") return { kind: "pass" };
  if (body === undefined || body === null || typeof body !== "object") return { kind: "unparsed" };

  const batch = Array.isArray(body);
  const documents: unknown[] = batch ? (body as unknown[]) : [body];
  if (documents.length === 0)
    return { kind: "invalid", message: "an empty JSON-RPC batch", id: null };
  const elements: McpElement[] = [];
  for (const document of documents) {
    const message = classifyMessage(document);
    if (message.kind === "invalid") {
      return { kind: "invalid", message: `invalid JSON-RPC message: ${message.reason}`, id: null };
    }
    const operation = operationOf(message);
    const id = message.kind === "request" ? message.id : undefined;
    if (message.kind === "request" && hasNamedTarget(operation.method)) {
      if (operation.name === undefined || operation.name === "") {
        return { kind: "invalid", message: `${operation.method} names no target`, id: id ?? null };
      }
    }
    elements.push({ method: operation.method, name: operation.name, id });
  }
  return { kind: "authorize", elements, batch };
}

function only(method: string): McpReading {
  return {
    kind: "authorize",
    elements: [{ method, name: undefined, id: undefined }],
    batch: false,
  };
}

/** The AuthZEN resource of a tool of `server`, with its annotations when known. */
export function toolResource(
  server: string,
  name: string,
  annotations: ToolAnnotations | undefined,
): AuthzenEntity {
  const properties: Record<string, unknown> = { server, tool: name };
  if (annotations !== undefined) properties.annotations = annotations;
  return { type: "tool", id: name, properties };
}

/** The evaluation item of one element: action = the MCP method, resource = what it targets. */
export function evaluationItem(
  element: McpElement,
  server: string,
  toolAnnotations: ((name: string) => ToolAnnotations | undefined) | undefined,
): EvaluationItem {
  const action = { name: element.method };
  const name = element.name ?? "";
  switch (element.method) {
    case "tools/call": {
      const annotations = toolAnnotations?.(name);
      return {
        action,
        resource: toolResource(server, name, isPlainObject(annotations) ? annotations : undefined),
      };
    }
    case "resources/read":
    case "resources/subscribe":
    case "resources/unsubscribe":
      return {
        action,
        resource: { type: "resource", id: name, properties: { server, uri: name } },
      };
    case "prompts/get":
      return {
        action,
        resource: { type: "prompt", id: name, properties: { server, prompt: name } },
      };
    default:
      return { action, resource: { type: "mcp_server", id: server, properties: { server } } };
  }
}

export function isPlainObject(value: unknown): value is Record<string, unknown> {
  return typeof value === "object" && value !== null && !Array.isArray(value);
}

import { parseJsonDocument, type JsonBodyLimits } from "../api/json-body.js";
import { ApiError, PdpError, type McpRefusalCode } from "../errors.js";
import { classifyMessage, isPseudoMethod } from "./jsonrpc.js";
import { hasNamedTarget, operationOf, type McpOperation } from "./operation.js";

/** The request an MCP client sent, as a forward-auth call lets the PDP see it. */
export interface OriginalRequest {
  /** The client's HTTP method (GET, POST, DELETE). */
  method: string;
  /** `Mcp-Method` / `Mcp-Name` (SEP-2243), when the proxy forwarded them. */
  mcpMethod: string | undefined;
  mcpName: string | undefined;
  /** The JSON-RPC body, or undefined when the proxy did not forward it (or only part of it). */
  body: Buffer | undefined;
}

/** What to do with a JSON-RPC batch (removed from MCP in 2025-06-18, still executed by SDK servers). */
export type BatchPolicy = "reject" | "authorize_each";

/** Why a request could not be read as MCP (codes and status in the registry, errors.ts). */
export type { McpRefusalCode } from "../errors.js";

export class McpRefusal extends PdpError<McpRefusalCode> {
  /** The JSON-RPC id to answer, when there is exactly one request. */
  readonly id: string | number | null | undefined;
  /** Why the body could not be read, when the JSON rules refused it (`invalid_unicode` …). */
  readonly refusedBy: { code: string; field: string | undefined } | undefined;

  constructor(
    code: McpRefusalCode,
    message: string,
    id?: string | number | null,
    refusedBy?: { code: string; field: string | undefined },
  ) {
    super(code, message);
    this.id = id;
    this.refusedBy = refusedBy;
  }
}

export interface McpReading {
  operations: McpOperation[];
  /** The body was a JSON-RPC message (so a deny should answer with a JSON-RPC error). */
  jsonRpc: boolean;
}

/**
 * Turns a Streamable HTTP request into the MCP operations to authorize.
 * GET opens the SSE stream (`mcp/stream`), DELETE ends the session
 * (`mcp/session_end`). A POST is read from its body when visible; the
 * `Mcp-Method`/`Mcp-Name` headers must then agree with it. Without a body the
 * headers are used only if `headersWithoutBody` is "trust" (default: ignored);
 * otherwise the request is `mcp/opaque`, which the policy treats as the
 * highest risk. A batch is refused or split into its elements, per `batch`,
 * and refused beyond `maxBatchElements`. A client never names a pseudo-method
 * (`mcp/…`) itself, in `Mcp-Method` or in the body.
 */
export function readMcpRequest(
  original: OriginalRequest,
  options: {
    batch: BatchPolicy;
    limits: JsonBodyLimits;
    maxBatchElements: number;
    headersWithoutBody?: "ignore" | "trust";
  },
): McpReading {
  if (original.mcpMethod !== undefined && isPseudoMethod(original.mcpMethod)) {
    throw new McpRefusal("mcp_invalid", "Mcp-Method names a method reserved for the PDP");
  }
  const method = original.method.toUpperCase();
  if (method === "GET" || method === "DELETE") {
    // MCP's GET (the SSE stream) and DELETE (session end) carry no JSON-RPC: a request claiming
    // one of them while carrying a call is relabelled, not confused.
    if (
      (original.body !== undefined && original.body.length > 0) ||
      original.mcpMethod !== undefined
    ) {
      throw new McpRefusal(
        "mcp_invalid",
        `an HTTP ${method} carries no JSON-RPC body or Mcp-Method in MCP`,
      );
    }
    return single(method === "GET" ? "mcp/stream" : "mcp/session_end");
  }
  if (method !== "POST") {
    throw new McpRefusal("mcp_http_method_unsupported", `MCP does not use HTTP ${method}`);
  }

  if (original.body === undefined || original.body.length === 0) {
    // Without a body the headers are the client's word: believed only when the operator says
    // the MCP server refuses requests whose headers and body disagree (SEP-2243).
    if (original.mcpMethod === undefined || options.headersWithoutBody !== "trust") {
      return single("mcp/opaque");
    }
    return {
      operations: [
        { method: original.mcpMethod, name: original.mcpName, arguments: undefined, id: undefined },
      ],
      jsonRpc: false,
    };
  }

  let document: unknown;
  try {
    // The MCP server parses this body too: nothing it could read differently is let through.
    document = parseJsonDocument(original.body, options.limits, { refuseDuplicateKeys: true });
  } catch (error) {
    if (error instanceof ApiError) {
      throw new McpRefusal("mcp_invalid", error.message, null, {
        code: error.code,
        field: error.field,
      });
    }
    throw error;
  }
  const elements: unknown[] = Array.isArray(document) ? (document as unknown[]) : [document];
  const batch = Array.isArray(document);
  if (batch && options.batch === "reject") {
    throw new McpRefusal("mcp_batch_rejected", "JSON-RPC batches are not accepted", null);
  }
  if (elements.length === 0) throw new McpRefusal("mcp_invalid", "an empty JSON-RPC batch", null);
  if (elements.length > options.maxBatchElements) {
    throw new McpRefusal(
      "mcp_batch_too_large",
      `at most ${options.maxBatchElements} JSON-RPC messages per batch (PDP_MAX_EVALUATIONS), got ${elements.length}`,
      null,
    );
  }
  const operations = elements.map((element) => {
    const message = classifyMessage(element);
    if (message.kind === "invalid") throw new McpRefusal("mcp_invalid", message.reason, null);
    return operationOf(message);
  });
  const [only] = operations;
  if (!batch && only !== undefined) checkHeaders(original, only);
  return { operations, jsonRpc: true };
}

function single(method: string): McpReading {
  return {
    operations: [{ method, name: undefined, arguments: undefined, id: undefined }],
    jsonRpc: false,
  };
}

/** Headers that disagree with the body are an attempt to route one thing and run another. */
function checkHeaders(original: OriginalRequest, operation: McpOperation): void {
  if (original.mcpMethod !== undefined && original.mcpMethod !== operation.method) {
    throw new McpRefusal(
      "mcp_header_mismatch",
      `Mcp-Method ${original.mcpMethod} does not match the body's ${operation.method}`,
      operation.id,
    );
  }
  if (
    original.mcpName !== undefined &&
    hasNamedTarget(operation.method) &&
    original.mcpName !== operation.name
  ) {
    throw new McpRefusal("mcp_header_mismatch", "Mcp-Name does not match the body", operation.id);
  }
}

import { parseJsonDocument, type JsonBodyLimits } from "../json-body.js";
import { nonFiniteNumberPointer } from "../json-numbers.js";
import { ApiError, PdpError, type McpRefusalCode } from "../../errors.js";
import { classifyMessage, isPseudoMethod } from "./jsonrpc.js";
import { hasNamedTarget, operationOf, type McpOperation } from "./operation.js";

/**
 * The request an MCP client sent, as the enforcement point sees it: relayed by
 * a proxy to forward-auth, or arriving at the MCP server the PEP library guards.
 */
export interface RelayedMcpRequest {
  /** The client's HTTP method (GET, POST, DELETE). */
  method: string;
  /** `Mcp-Method` / `Mcp-Name` (SEP-2243), when the client sent (and the proxy forwarded) them. */
  mcpMethod: string | undefined;
  mcpName: string | undefined;
  /** The JSON-RPC body; undefined when there is none or it is not visible (headers-only proxy, cut body). */
  body: RelayedBody | undefined;
}

export type RelayedBody =
  /**
   * The bytes the client sent (forward-auth). The MCP server parses them
   * again, so they are read under the JSON body rules, duplicate keys refused:
   * nothing the server could read differently is let through.
   */
  | { bytes: Buffer; limits: JsonBodyLimits }
  /**
   * The document the MCP server will execute, already parsed by its own
   * framework (the PEP library after `express.json()`): the PEP judges the very
   * value the SDK runs, so there is no second reading to disagree with.
   */
  | { document: unknown };

/** What to do with a JSON-RPC batch (removed from MCP in 2025-06-18, still executed by SDK servers). */
export type BatchPolicy = "reject" | "authorize_each";

/** Why a request could not be read as MCP (codes and status in the registry, errors.ts). */
export type { McpRefusalCode } from "../../errors.js";

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
  /** The body was JSON-RPC (so a deny answers with a JSON-RPC error). */
  jsonRpc: boolean;
  /** The body was a JSON-RPC batch (so a deny answers each of its requests). */
  batch: boolean;
}

/** How the enforcement point reads relayed requests. */
export interface McpReadingOptions {
  batch: BatchPolicy;
  /** Most messages one batch may carry; undefined: bounded only by the body's size. */
  maxBatchElements?: number | undefined;
  /**
   * Whether `Mcp-Method`/`Mcp-Name` count when there is no visible body:
   * "trust" only when the MCP server refuses requests whose headers and body
   * disagree (SEP-2243); "ignore" (the default) makes such a POST `mcp/opaque`.
   */
  headersWithoutBody?: "ignore" | "trust" | undefined;
}

/**
 * Turns a Streamable HTTP request into the MCP operations to authorize, for
 * forward-auth and the PEP library alike. GET opens the SSE stream
 * (`mcp/stream`), DELETE ends the session (`mcp/session_end`); every other
 * method but POST is refused (HEAD and OPTIONS included: MCP defines neither,
 * and what a server does with them is not for the PDP to guess). A POST is
 * read from its body when visible; the `Mcp-Method`/`Mcp-Name` headers must
 * then agree with it, and a `tools/call`, `prompts/get` or `resources/*`
 * message must name its target (a visible body naming none is invalid MCP,
 * not a hidden tool). Without a body the headers are used only under
 * `headersWithoutBody: "trust"`; otherwise the request is `mcp/opaque`, which
 * the policy treats as the highest risk. A batch is refused or split into its
 * elements, per `batch`, and refused beyond `maxBatchElements`. A client never
 * names a pseudo-method (`mcp/…`) itself, in `Mcp-Method` or in the body.
 */
export function readMcpRequest(relayed: RelayedMcpRequest, options: McpReadingOptions): McpReading {
  if (relayed.mcpMethod !== undefined && isPseudoMethod(relayed.mcpMethod)) {
    throw new McpRefusal("mcp_invalid", "Mcp-Method names a method reserved for the PDP");
  }
  const method = relayed.method.toUpperCase();
  const body = relayed.body;
  const hasBody = body !== undefined && ("bytes" in body ? body.bytes.length > 0 : true);
  if (method === "GET" || method === "DELETE") {
    // MCP's GET (the SSE stream) and DELETE (session end) carry no JSON-RPC: a request claiming
    // one of them while carrying a call is relabelled, not confused.
    if (hasBody || relayed.mcpMethod !== undefined) {
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

  if (!hasBody) {
    // Without a body the headers are the client's word: believed only when the operator says
    // the MCP server refuses requests whose headers and body disagree (SEP-2243).
    if (relayed.mcpMethod === undefined || options.headersWithoutBody !== "trust") {
      return single("mcp/opaque");
    }
    // An empty Mcp-Name names nothing: the target stays unseen.
    const name = relayed.mcpName === "" ? undefined : relayed.mcpName;
    return {
      operations: [{ method: relayed.mcpMethod, name, arguments: undefined, id: undefined }],
      jsonRpc: false,
      batch: false,
    };
  }

  const document = "bytes" in body ? parseBody(body.bytes, body.limits) : parsedBody(body.document);
  const batch = Array.isArray(document);
  const elements: unknown[] = batch ? (document as unknown[]) : [document];
  if (batch && options.batch === "reject") {
    throw new McpRefusal("mcp_batch_rejected", "JSON-RPC batches are not accepted", null);
  }
  if (elements.length === 0) throw new McpRefusal("mcp_invalid", "an empty JSON-RPC batch", null);
  const max = options.maxBatchElements;
  if (max !== undefined && elements.length > max) {
    throw new McpRefusal(
      "mcp_batch_too_large",
      `at most ${max} JSON-RPC messages per batch (PDP_MAX_EVALUATIONS), got ${elements.length}`,
      null,
    );
  }
  const operations = elements.map((element) => {
    const message = classifyMessage(element);
    if (message.kind === "invalid") throw new McpRefusal("mcp_invalid", message.reason, null);
    const operation = operationOf(message);
    if (hasNamedTarget(operation.method) && (operation.name ?? "") === "") {
      // The server would run (or reject) it as it likes; the PDP does not judge a guess.
      throw new McpRefusal(
        "mcp_invalid",
        `${operation.method} names no target`,
        batch ? null : (operation.id ?? null),
      );
    }
    return operation;
  });
  const [only] = operations;
  if (!batch && only !== undefined) checkHeaders(relayed, only);
  return { operations, jsonRpc: true, batch };
}

/** The body under the JSON rules; a rule's refusal becomes an McpRefusal that names it. */
function parseBody(bytes: Buffer, limits: JsonBodyLimits): unknown {
  try {
    return parseJsonDocument(bytes, limits, { refuseDuplicateKeys: true });
  } catch (error) {
    if (error instanceof ApiError) {
      throw new McpRefusal("mcp_invalid", error.message, null, {
        code: error.code,
        field: error.field,
      });
    }
    throw error;
  }
}

/**
 * A document the MCP server parsed itself: its JSON rules already ran, but a
 * number beyond a double is Infinity there and `null` on its way to the PDP,
 * refused as the byte reader refuses its literal.
 */
function parsedBody(document: unknown): unknown {
  const field = nonFiniteNumberPointer(document);
  if (field !== undefined) {
    throw new McpRefusal("mcp_invalid", `the number at ${field} is not finite`, null, {
      code: "number_unrepresentable",
      field,
    });
  }
  return document;
}

function single(method: string): McpReading {
  return {
    operations: [{ method, name: undefined, arguments: undefined, id: undefined }],
    jsonRpc: false,
    batch: false,
  };
}

/** Headers that disagree with the body are an attempt to route one thing and run another. */
function checkHeaders(relayed: RelayedMcpRequest, operation: McpOperation): void {
  if (relayed.mcpMethod !== undefined && relayed.mcpMethod !== operation.method) {
    throw new McpRefusal(
      "mcp_header_mismatch",
      `Mcp-Method ${relayed.mcpMethod} does not match the body's ${operation.method}`,
      operation.id,
    );
  }
  if (
    relayed.mcpName !== undefined &&
    hasNamedTarget(operation.method) &&
    relayed.mcpName !== operation.name
  ) {
    throw new McpRefusal("mcp_header_mismatch", "Mcp-Name does not match the body", operation.id);
  }
}

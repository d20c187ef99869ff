import { parseJsonDocument, type JsonBodyLimits } from "../json-body.ts";
import { nonFiniteNumberPointer } from "../json-numbers.ts";
import { ApiError, PdpError, type McpRefusalCode } from "../../errors.ts";
import { classifyMessage, isPseudoMethod, type JsonRpcMessage } from "./jsonrpc.ts";
import { hasNamedTarget, operationOf, type McpOperation } from "./operation.ts";

/**
 * The request an MCP client sent, as the enforcement point sees it: relayed by
 * a proxy to forward-auth, or arriving at the MCP server the PEP library guards.
 */
export interface RelayedMcpRequest {
  /** The client's HTTP method (GET, POST, DELETE). */
  method: string;
  /** `Mcp-Method` / `Mcp-Name` (SEP-2243), when the client sent (and the proxy forwarded) them. */
  mcpMethod: string | undefined;
  /** As sent: plain text or the `=?base64?…?=` form, decoded by the reader. */
  mcpName: string | undefined;
  /** The `MCP-Protocol-Version` header, when sent. */
  protocolVersion: string | undefined;
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
export type { McpRefusalCode } from "../../errors.ts";

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
  /**
   * The MCP revision the request declares (`MCP-Protocol-Version`, or the
   * body's `_meta`; the reader refuses them disagreeing); undefined when it
   * declares none (then absent).
   */
  protocolVersion?: string;
}

/** How the enforcement point reads relayed requests. */
export interface McpReadingOptions {
  batch: BatchPolicy;
  /** Most messages one batch may carry; undefined: bounded only by the body's size. */
  maxBatchElements?: number | undefined;
  /**
   * Whether `Mcp-Method`/`Mcp-Name` count when there is no visible body:
   * "trust" only when the MCP server refuses requests whose headers and body
   * disagree (SEP-2243); "trust_2026_07_28" only for a request whose
   * `MCP-Protocol-Version` is exactly 2026-07-28, to a server that speaks
   * that revision (which binds it to refuse such disagreement); "ignore" (the
   * default) makes such a POST `mcp/opaque`.
   */
  headersWithoutBody?: HeadersWithoutBody | undefined;
}

export type HeadersWithoutBody = "ignore" | "trust" | "trust_2026_07_28";

/**
 * Turns a Streamable HTTP request into the MCP operations to authorize, for
 * forward-auth and the PEP library alike. GET opens the SSE stream
 * (`mcp/stream`), DELETE ends the session (`mcp/session_end`); every other
 * method but POST is refused (HEAD and OPTIONS included: MCP defines neither,
 * and what a server does with them is not for the PDP to guess). A POST is
 * read from its body when visible; the `Mcp-Method`/`Mcp-Name` headers must
 * then agree with it, and a `tools/call`, `prompts/get`, `resources/*` or
 * `tasks/*` message must name its target (a visible body naming none is
 * invalid MCP, not a hidden tool). A request that declares 2026-07-28 (or a
 * later revision) must also carry what that revision makes mandatory:
 * `MCP-Protocol-Version` equal to the body's `_meta` revision, `Mcp-Method`
 * on every request, `Mcp-Name` on the methods that name a target; it cannot
 * be a batch. Without a body the headers are used only as
 * `headersWithoutBody` allows; otherwise the request is `mcp/opaque`, which
 * the policy treats as the highest risk. A batch is refused or split into its
 * elements, per `batch`, and refused beyond `maxBatchElements`. A client never
 * names a pseudo-method (`mcp/…`) itself, in `Mcp-Method` or in the body.
 */
export function readMcpRequest(relayed: RelayedMcpRequest, options: McpReadingOptions): McpReading {
  if (relayed.mcpMethod !== undefined && isPseudoMethod(relayed.mcpMethod)) {
    throw new McpRefusal("mcp_invalid", "Mcp-Method names a method reserved for the PDP");
  }
  const headers = standardHeadersOf(relayed);
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
    return single(method === "GET" ? "mcp/stream" : "mcp/session_end", headers.version);
  }
  if (method !== "POST") {
    throw new McpRefusal("mcp_http_method_unsupported", `MCP does not use HTTP ${method}`);
  }

  if (!hasBody) return readHeadersOnly(headers, options.headersWithoutBody ?? "ignore");

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
  const messages = elements.map((element) => {
    const message = classifyMessage(element);
    if (message.kind === "invalid") throw new McpRefusal("mcp_invalid", message.reason, null);
    return message;
  });
  const operations = messages.map((message) => {
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
  if (batch) {
    refuseMalformedName(headers, null);
    // 2026-07-28 has no batches: a batch declaring it is not a request its servers would run
    // the way the PDP reads it (the SDK routes a batch by its body alone, headers unread).
    if (
      declaresBindingHeaders(headers.version) ||
      messages.some((message) => bodyRevisionOf(message) !== undefined)
    ) {
      throw new McpRefusal(
        "mcp_invalid",
        `a JSON-RPC batch cannot declare MCP ${headersBindingRevision}`,
        null,
      );
    }
    return { operations, jsonRpc: true, batch, ...declared(headers.version) };
  }
  const [message] = messages;
  const [only] = operations;
  if (message === undefined || only === undefined) {
    throw new Error("a non-batch body is one message");
  }
  const protocolVersion = checkHeaders(headers, message, only);
  return { operations, jsonRpc: true, batch, ...declared(protocolVersion) };
}

/** The standard headers of a request, `Mcp-Name` decoded. */
interface StandardHeaders {
  method: string | undefined;
  name: string | undefined;
  /** `Mcp-Name` was sent but cannot be decoded one way only. */
  nameMalformed: boolean;
  version: string | undefined;
}

function standardHeadersOf(relayed: RelayedMcpRequest): StandardHeaders {
  const name = relayed.mcpName === undefined ? undefined : decodeHeaderValue(relayed.mcpName);
  return {
    method: relayed.mcpMethod,
    name,
    nameMalformed: relayed.mcpName !== undefined && name === undefined,
    version: relayed.protocolVersion,
  };
}

/** A malformed `Mcp-Name` is refused, as a server bound by the transport spec refuses it. */
function refuseMalformedName(
  headers: StandardHeaders,
  id: string | number | null | undefined,
): void {
  if (headers.nameMalformed) {
    throw new McpRefusal(
      "mcp_header_mismatch",
      "Mcp-Name is neither plain text nor a canonical =?base64?…?= UTF-8 value",
      id,
    );
  }
}

/**
 * A POST without a visible body. Its headers are the client's word: believed
 * only when the operator says the MCP server refuses requests whose headers
 * and body disagree ("trust"), or for a request declaring exactly 2026-07-28
 * to a server that speaks it ("trust_2026_07_28"). A value holding a comma
 * could be two headers folded into one, which servers read differently (the
 * first, or the whole): it is refused rather than guessed at.
 */
function readHeadersOnly(headers: StandardHeaders, trust: HeadersWithoutBody): McpReading {
  refuseMalformedName(headers, undefined);
  const binding = headers.version === headersBindingRevision;
  const believed = trust === "trust" || (trust === "trust_2026_07_28" && binding);
  if (headers.method === undefined || !believed) {
    if (believed && binding) {
      throw new McpRefusal(
        "mcp_header_mismatch",
        `MCP ${headersBindingRevision} requires Mcp-Method on every request`,
      );
    }
    return single("mcp/opaque", headers.version);
  }
  if (headers.method.includes(",") || (headers.name ?? "").includes(",")) {
    throw new McpRefusal(
      "mcp_invalid",
      "Mcp-Method or Mcp-Name holds a comma: repeated headers cannot be told from one value without the body",
    );
  }
  // An empty Mcp-Name names nothing: the target stays unseen.
  const name = headers.name === "" ? undefined : headers.name;
  if (binding && name === undefined && hasNamedTarget(headers.method)) {
    throw new McpRefusal(
      "mcp_header_mismatch",
      `MCP ${headersBindingRevision} requires Mcp-Name on ${headers.method}`,
    );
  }
  return {
    operations: [{ method: headers.method, name, arguments: undefined, id: undefined }],
    jsonRpc: false,
    batch: false,
    ...declared(headers.version),
  };
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

function single(method: string, protocolVersion: string | undefined): McpReading {
  return {
    operations: [{ method, name: undefined, arguments: undefined, id: undefined }],
    jsonRpc: false,
    batch: false,
    ...declared(protocolVersion),
  };
}

/** The reading's protocolVersion member: present only when the request declares one. */
function declared(version: string | undefined): { protocolVersion?: string } {
  return version === undefined ? {} : { protocolVersion: version };
}

/**
 * The revision a message's `_meta` names, undefined when it names none. A
 * claim that is not a non-empty string is no revision anyone can read alike.
 */
function bodyRevisionOf(message: JsonRpcMessage): string | undefined {
  if (message.kind !== "request" && message.kind !== "notification") return undefined;
  const params = message.params;
  if (typeof params !== "object" || params === null || Array.isArray(params)) return undefined;
  const meta = (params as Record<string, unknown>)._meta;
  if (typeof meta !== "object" || meta === null || Array.isArray(meta)) return undefined;
  if (!Object.hasOwn(meta, protocolVersionMetaKey)) return undefined;
  const claim = (meta as Record<string, unknown>)[protocolVersionMetaKey];
  if (typeof claim !== "string" || claim === "") {
    throw new McpRefusal(
      "mcp_invalid",
      `_meta["${protocolVersionMetaKey}"] must be a revision string`,
      message.kind === "request" ? message.id : null,
    );
  }
  return claim;
}

/**
 * Headers that disagree with the body are an attempt to route one thing and
 * run another; under 2026-07-28 a missing mandatory header is one too, since
 * a headers-only intermediary would have judged the request without it.
 * Returns the revision the request declares.
 */
function checkHeaders(
  headers: StandardHeaders,
  message: JsonRpcMessage,
  operation: McpOperation,
): string | undefined {
  const id = operation.id;
  refuseMalformedName(headers, id);
  const mismatch = (text: string) => new McpRefusal("mcp_header_mismatch", text, id);
  const claimed = bodyRevisionOf(message);
  if (headers.version !== undefined && claimed !== undefined && headers.version !== claimed) {
    throw mismatch(
      `MCP-Protocol-Version ${headers.version} does not match the body's _meta revision ${claimed}`,
    );
  }
  if (headers.method !== undefined && headers.method !== operation.method) {
    throw mismatch(`Mcp-Method ${headers.method} does not match the body's ${operation.method}`);
  }
  if (
    headers.name !== undefined &&
    hasNamedTarget(operation.method) &&
    headers.name !== operation.name
  ) {
    throw mismatch("Mcp-Name does not match the body");
  }
  const version = headers.version ?? claimed;
  if (
    message.kind === "request" &&
    (declaresBindingHeaders(claimed) || declaresBindingHeaders(headers.version))
  ) {
    // No MCP-Protocol-Version beside a body that names its revision is not refused: the PDP
    // reads the body itself, and a proxy may pass the auth service fewer headers than it passes
    // the server (Envoy's allowed_headers), which checks the header's presence on its own.
    if (claimed === undefined) {
      throw mismatch(
        `MCP-Protocol-Version ${headers.version} is declared, but the body's _meta names no revision`,
      );
    }
    if (headers.method === undefined) throw mismatch(`MCP ${claimed} requires Mcp-Method`);
    if (hasNamedTarget(operation.method) && headers.name === undefined) {
      throw mismatch(`MCP ${claimed} requires Mcp-Name on ${operation.method}`);
    }
  }
  return version;
}

// ---------------------------------------------------------------- the standard headers
// As MCP 2026-07-28 defines them (MCP-Protocol-Version, Mcp-Method, Mcp-Name): which revisions
// bind them, where a body names its revision, and how a header value is decoded.

/** The revision that made `Mcp-Method` (every request) and `Mcp-Name` mandatory and binding. */
const headersBindingRevision = "2026-07-28";

/** The `_meta` key under which a 2026-07-28 message names its protocol revision. */
const protocolVersionMetaKey = "io.modelcontextprotocol/protocolVersion";

/**
 * Whether a declared revision is 2026-07-28 or later, compared as the SDKs
 * compare revisions (date strings, in order). A server applies the
 * 2026-07-28 header rules to such a request, so the PDP must too: for a body
 * it can see, a stricter reading never lets more through.
 */
function declaresBindingHeaders(version: string | undefined): boolean {
  return version !== undefined && version >= headersBindingRevision;
}

const sentinelPrefix = "=?base64?";
const sentinelSuffix = "?=";
const base64Alphabet = /^[A-Za-z0-9+/]*={0,2}$/;

/**
 * A header value as the transport spec has it: plain text, or, for text that
 * is not plain ASCII, `=?base64?<UTF-8 bytes in Base64>?=`. Returns undefined
 * for a value that cannot be read one way only: a sentinel whose payload is
 * not canonical Base64 (padding, alphabet, no stray bits) or not valid UTF-8,
 * and a value shaped like an encoded word in another spelling (`=?BASE64?…`,
 * which RFC 2047 readers decode and this transport does not).
 */
function decodeHeaderValue(value: string): string | undefined {
  const sentinel = value.startsWith(sentinelPrefix) && value.endsWith(sentinelSuffix);
  if (!sentinel) {
    // One reader would take it as text, another decode it: the PDP does not guess which.
    if (/^=\?[^?]*\?/.test(value)) return undefined;
    return value;
  }
  const payload = value.slice(sentinelPrefix.length, value.length - sentinelSuffix.length);
  if (payload.length % 4 !== 0 || !base64Alphabet.test(payload)) return undefined;
  const bytes = Buffer.from(payload, "base64");
  // Canonical only: the same bytes re-encode to the same payload (no stray bits, no extra padding).
  if (bytes.toString("base64") !== payload) return undefined;
  let text: string;
  try {
    text = new TextDecoder("utf-8", { fatal: true, ignoreBOM: true }).decode(bytes);
  } catch {
    return undefined;
  }
  // A leading byte order mark has no one reading: the v2 SDK's decoder strips it (so
  // "\uFEFFdelete_repo" is delete_repo there), others keep it. Refused, never guessed.
  return text.startsWith("\uFEFF") ? undefined : text;
}

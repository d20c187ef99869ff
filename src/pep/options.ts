import type { IncomingMessage } from "node:http";
import type { ToolAnnotations } from "../protocol/mcp/authzen-items.ts";

export type { ToolAnnotations } from "../protocol/mcp/authzen-items.ts";

/** Options of {@link createMcpAuthorization}. */
export interface McpAuthorizationOptions<Req extends IncomingMessage = IncomingMessage> {
  /** Base URL of the PDP, e.g. `http://127.0.0.1:8180` (http or https). */
  pdpUrl: string;
  /** This PEP's PDP API key, sent as `X-Api-Key`. Its caller must not have `assert_subject`. */
  apiKey?: string | undefined;
  /** The MCP server's name as the PDP's tool catalog uses it (`<server>/<tool>`). */
  server: string;
  /** RFC 9728 protected resource metadata URL, announced in `WWW-Authenticate` on 401 and 403. */
  resourceMetadataUrl: string;
  /** Deadline of one PDP call (connection, answer and body), 1–60000 ms; default 2000. */
  timeoutMs?: number | undefined;
  /** Most evaluations per PDP call (match the PDP's `PDP_MAX_EVALUATIONS`); default 256. */
  maxEvaluationsPerCall?: number | undefined;
  /**
   * Larger `tools/call` arguments (as JSON text) are not sent to the policy
   * (`arguments_omitted: true` instead), as forward-auth's
   * `forward_auth.max_argument_bytes`; 0 sends none. Default 4096.
   */
  maxArgumentBytes?: number | undefined;
  /**
   * Extra AuthZEN `context` for this request (device trust, location …), merged
   * over the defaults (`ip`, `session.id`). Only believe headers that a trusted
   * proxy sets or strips. A throw fails closed (503).
   */
  context?: ((req: Req) => Record<string, unknown> | Promise<Record<string, unknown>>) | undefined;
  /**
   * The annotations of a tool this server exposes, sent with each `tools/call`
   * so that calls are judged like the `tools/list` entries (which carry their
   * own annotations). Return undefined for an unknown tool.
   */
  toolAnnotations?: ((name: string) => ToolAnnotations | undefined) | undefined;
  /** Told why the PEP failed closed (PDP unreachable, timeout, bad answer, a throwing `context`). */
  onError?: ((error: Error) => void) | undefined;
  /** The fetch implementation (tests inject one); default `globalThis.fetch`. */
  fetch?: typeof globalThis.fetch | undefined;
}

/** Options after validation, with defaults applied. */
export interface PepSettings<Req extends IncomingMessage = IncomingMessage> {
  evaluationsUrl: string;
  apiKey: string | undefined;
  server: string;
  resourceMetadataUrl: string;
  timeoutMs: number;
  maxEvaluationsPerCall: number;
  maxArgumentBytes: number;
  context: ((req: Req) => Record<string, unknown> | Promise<Record<string, unknown>>) | undefined;
  toolAnnotations: ((name: string) => ToolAnnotations | undefined) | undefined;
  onError: (error: Error) => void;
  fetch: typeof globalThis.fetch;
}

export const defaultTimeoutMs = 2000;
export const maxTimeoutMs = 60_000;
export const defaultMaxEvaluationsPerCall = 256;
/** The default of forward-auth's `max_argument_bytes`: both paths show the policy the same arguments. */
export const defaultMaxArgumentBytes = 4096;

/** Validates the options once, at construction: a misconfigured PEP must not start. */
export function resolveOptions<Req extends IncomingMessage>(
  options: McpAuthorizationOptions<Req>,
): PepSettings<Req> {
  const problems: string[] = [];
  let base: URL | undefined;
  try {
    base = new URL(options.pdpUrl);
    if (base.protocol !== "http:" && base.protocol !== "https:") {
      problems.push(`pdpUrl must be http or https, got ${base.protocol}`);
    }
  } catch {
    problems.push("pdpUrl is not a valid URL");
  }
  if (typeof options.server !== "string" || options.server.trim() === "") {
    problems.push("server must be a non-empty string");
  }
  try {
    new URL(options.resourceMetadataUrl);
  } catch {
    problems.push("resourceMetadataUrl is not a valid URL");
  }
  const timeoutMs = options.timeoutMs ?? defaultTimeoutMs;
  if (!Number.isInteger(timeoutMs) || timeoutMs < 1 || timeoutMs > maxTimeoutMs) {
    problems.push(`timeoutMs must be an integer from 1 to ${maxTimeoutMs}`);
  }
  const perCall = options.maxEvaluationsPerCall ?? defaultMaxEvaluationsPerCall;
  if (!Number.isInteger(perCall) || perCall < 1) {
    problems.push("maxEvaluationsPerCall must be a positive integer");
  }
  const maxArgumentBytes = options.maxArgumentBytes ?? defaultMaxArgumentBytes;
  if (!Number.isInteger(maxArgumentBytes) || maxArgumentBytes < 0) {
    problems.push("maxArgumentBytes must be a non-negative integer");
  }
  if (options.apiKey !== undefined && (options.apiKey === "" || /[\r\n]/.test(options.apiKey))) {
    problems.push("apiKey must be a non-empty single-line string");
  }
  if (problems.length > 0 || base === undefined) {
    throw new TypeError(`createMcpAuthorization: ${problems.join("; ")}`);
  }
  const path = base.pathname.replace(/\/+$/, "");
  return {
    evaluationsUrl: `${base.origin}${path}/access/v1/evaluations`,
    apiKey: options.apiKey,
    server: options.server,
    resourceMetadataUrl: options.resourceMetadataUrl,
    timeoutMs,
    maxEvaluationsPerCall: perCall,
    maxArgumentBytes,
    context: options.context,
    toolAnnotations: options.toolAnnotations,
    onError: options.onError ?? (() => undefined),
    fetch: options.fetch ?? globalThis.fetch.bind(globalThis),
  };
}

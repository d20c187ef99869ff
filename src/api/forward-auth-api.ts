import type { ForwardAuthSettings, ServerSettings } from "../config/index.ts";
import { bearerOrError } from "../protocol/bearer.ts";
import type { ServerRegistry } from "../auth/servers.ts";
import { isServerName } from "../protocol/resource-uri.ts";
import type { SubjectResolver } from "../auth/subject-resolver.ts";
import type { AccessRequest, Decision } from "../decision/decision.ts";
import type { Clock, DecisionEngine } from "../decision/decision-engine.ts";
import { ApiError } from "../errors.ts";
import { InputJsonCache } from "../policy/input-json.ts";
import type { DecisionObserver } from "../observability/decision-observer.ts";
import { traceIdOf } from "../observability/trace-context.ts";
import { obligationUnsupportedCode, unperformableObligations } from "../protocol/challenge.ts";
import { denialAnswer, refusalAnswer } from "../protocol/mcp/answers.ts";
import { authzenItemOf } from "../protocol/mcp/authzen-items.ts";
import type { McpOperation } from "../protocol/mcp/operation.ts";
import {
  McpRefusal,
  readMcpRequest,
  type HeadersWithoutBody,
} from "../protocol/mcp/request-reader.ts";
import { TrustedProxies } from "../net/client-address.ts";
import { callerOf, headerValue, type ApiRequest, type ApiResponse } from "./api-types.ts";
import type { JsonBodyLimits } from "../protocol/json-body.ts";

export const forwardAuthPrefix = "/forward-auth/";

export interface ForwardAuthApiOptions {
  engine: DecisionEngine;
  subjects: SubjectResolver;
  clock: Clock;
  limits: JsonBodyLimits;
  settings: ForwardAuthSettings;
  /** The protected servers: `/forward-auth/<name>` must name one. */
  servers: ServerRegistry;
  /** Most JSON-RPC messages one batch may carry under `batch: authorize_each`. */
  maxBatchElements: number;
  /** Told about every decision (metrics, decision log). */
  observer: DecisionObserver;
}

/**
 * The forward-auth endpoint for proxies: `/forward-auth/<server>[/<original
 * path>]`, any method. It serves the contracts of Envoy ext_authz (HTTP
 * service: original method and path appended, body with
 * `with_request_body`), NGINX auth_request (headers only, `X-Original-URI`,
 * `X-Original-Method`), Traefik ForwardAuth and Caddy forward_auth
 * (`X-Forwarded-Method/-Uri/-Host/-For`, body with Traefik's `forwardBody`).
 *
 * Every MCP operation in the request must be allowed. Answers: 200 with
 * upstream headers; 401 with `WWW-Authenticate: Bearer resource_metadata=…`
 * (RFC 9728) when the token is missing or invalid; 403 with
 * `error="insufficient_scope"` when a step-up would help; 403 otherwise; 400
 * when the request is not valid MCP. A JSON-RPC request gets a JSON-RPC error.
 */
export function createForwardAuthApi(
  options: ForwardAuthApiOptions,
): (request: ApiRequest) => Promise<ApiResponse> {
  const { engine, subjects, clock, limits, settings, servers, observer } = options;
  const { maxBatchElements } = options;
  const proxies = new TrustedProxies(settings.trustedProxies);

  return async (request) => {
    const caller = callerOf(request);
    const traceId = traceIdOf(headerValue(request, "traceparent"));
    const { name, rest } = routeOf(request.path);
    const server = servers.get(name);
    const header = (headerName: string) => headerValue(request, headerName);
    const trusted = proxies.trusts(request.remoteAddress);
    const claimedMethod = originalMethodOf(request);
    if (typeof claimedMethod !== "string") return refusal(claimedMethod);
    const original = {
      method: claimedMethod,
      uri: header("x-forwarded-uri") ?? header("x-original-uri") ?? (rest || "/"),
      // Only a trusted proxy's word says which host the client asked for.
      host: (trusted ? header("x-forwarded-host") : undefined) ?? header("host") ?? "",
    };

    // Envoy marks a body it cut short; only Envoy itself may say so, never a client through another proxy.
    const partial =
      server?.proxy === "envoy" && trusted && header("x-envoy-auth-partial-body") === "true";
    let reading;
    try {
      reading = readMcpRequest(
        {
          method: original.method,
          mcpMethod: header("mcp-method"),
          mcpName: header("mcp-name"),
          protocolVersion: header("mcp-protocol-version"),
          body: partial || request.body.length === 0 ? undefined : { bytes: request.body, limits },
        },
        {
          batch: settings.batch,
          maxBatchElements,
          headersWithoutBody: headersWithoutBodyFor(server),
        },
      );
    } catch (error) {
      if (!(error instanceof McpRefusal)) throw error;
      return refusal(error);
    }

    const nowMs = clock();
    const token = bearerOrError(header("authorization"));
    // An unregistered server has no audience to bind a token to: server_unknown, token or not.
    const subject = await subjects.subjectForToken(token, "user", nowMs, server);
    const context = contextOf(request, original, trusted, proxies, settings);

    const decisions: { operation: McpOperation; decision: Decision }[] = [];
    // A batch's elements share the subject and context: serialized for the policy once.
    const cache = new InputJsonCache();
    // The subject was verified across an await; the batch's elements share one policy.
    const pinned = engine.pinned();
    for (const operation of reading.operations) {
      const item = authzenItemOf(operation, {
        server: name,
        maxArgumentBytes: settings.maxArgumentBytes,
      });
      const access: AccessRequest = { subject, ...item, context };
      const decision = enforceable(pinned.decide(access, nowMs, cache));
      observer.decided({
        decision,
        request: access,
        endpoint: "forward_auth",
        caller: caller.name,
        requestId: request.requestId,
        traceId,
      });
      decisions.push({ operation, decision });
    }

    const ids = decisionIdsHeader(decisions.map((d) => d.decision.id));
    const denial = denialAnswer(decisions, reading, {
      resourceMetadataUrl: server?.resourceMetadata,
      tokenPresented: typeof token === "string",
    });
    if (denial !== undefined) {
      return { ...denial, headers: { ...denial.headers, "x-pdp-decision-id": ids } };
    }
    return {
      status: 200,
      headers: {
        "x-pdp-decision-id": ids,
        "x-pdp-subject": headerSafe(subject.id),
        "x-pdp-risk": headerSafe(riskClasses(decisions.map((d) => d.decision))),
      },
      body: { decision: true, decision_id: ids },
    };
  };
}

/**
 * When a POST without a visible body may be decided from its `Mcp-Method` /
 * `Mcp-Name`: the server refuses headers that disagree with the body in any
 * revision (`enforces_mcp_headers`), or it speaks 2026-07-28, which binds it
 * to for requests declaring that revision (`speaks_mcp_2026_07_28`).
 */
function headersWithoutBodyFor(server: ServerSettings | undefined): HeadersWithoutBody {
  if (server?.enforcesMcpHeaders === true) return "trust";
  if (server?.speaksMcp20260728 === true) return "trust_2026_07_28";
  return "ignore";
}

/**
 * A header value any HTTP stack accepts: visible ASCII stays, everything else
 * (and `%` itself, so the encoding is reversible) is written as UTF-8
 * percent-escapes. A token's `sub` may hold any Unicode text, CR LF or a lone
 * surrogate (which becomes U+FFFD's bytes).
 */
export function headerSafe(value: string): string {
  if (/^[\x21-\x24\x26-\x7e]*$/.test(value)) return value;
  let safe = "";
  for (const char of value) {
    if (/^[\x21-\x24\x26-\x7e]$/.test(char)) {
      safe += char;
      continue;
    }
    for (const byte of Buffer.from(char, "utf8")) {
      safe += `%${byte.toString(16).toUpperCase().padStart(2, "0")}`;
    }
  }
  return safe;
}

/**
 * The decision ids of one forward-auth answer. An authorize_each batch holds
 * hundreds: beyond 1 KiB the header keeps the first ids and says how many
 * are left out, since proxies refuse large auth response headers; the
 * decision records hold every id.
 */
function decisionIdsHeader(ids: string[]): string {
  let header = "";
  for (const [index, id] of ids.entries()) {
    const next = header === "" ? id : `${header},${id}`;
    if (next.length > 1024) return `${header},+${ids.length - index}`;
    header = next;
  }
  return header;
}

/**
 * The client's HTTP method, as the proxy reports it. Envoy calls with the
 * original method itself; NGINX, Caddy and Traefik call with GET and report it
 * in X-Original-Method or X-Forwarded-Method, which the proxy must set itself
 * (overwriting anything the client sent). Disagreeing reports are refused,
 * and so is NGINX's X-Original-URI without X-Original-Method: without it the
 * PDP would take the subrequest's GET for the client's method.
 */
function originalMethodOf(request: ApiRequest): string | McpRefusal {
  const reported = [
    headerValue(request, "x-forwarded-method"),
    headerValue(request, "x-original-method"),
  ]
    .filter((value): value is string => value !== undefined)
    .map((value) => value.trim().toUpperCase());
  if (new Set(reported).size > 1) {
    return new McpRefusal("mcp_invalid", "X-Forwarded-Method and X-Original-Method disagree");
  }
  if (
    headerValue(request, "x-original-uri") !== undefined &&
    headerValue(request, "x-original-method") === undefined
  ) {
    return new McpRefusal(
      "mcp_invalid",
      "X-Original-URI without X-Original-Method: configure the proxy to send the client's method",
    );
  }
  const method = request.method.toUpperCase();
  const [claimed] = reported;
  if (claimed === undefined) return method;
  // A proxy that calls with a method other than GET (Envoy, Traefik's preserveRequestMethod) calls with the client's own.
  if (method !== "GET" && claimed !== method) {
    return new McpRefusal(
      "mcp_invalid",
      `the reported method ${claimed} is not the request's ${method}`,
    );
  }
  return claimed;
}

/**
 * The server name and the original path of `/forward-auth/<server>[/<path>]`.
 * Names are matched as written: no percent-decoding, so `%66iles` is not
 * `files` and a malformed escape is a 404 like any other unknown path.
 */
function routeOf(path: string): { name: string; rest: string } {
  const tail = path.slice(forwardAuthPrefix.length);
  const slash = tail.indexOf("/");
  const name = slash === -1 ? tail : tail.slice(0, slash);
  if (!isServerName(name)) {
    throw new ApiError("not_found", "forward-auth paths are /forward-auth/<server>[/<path>]");
  }
  return { name, rest: slash === -1 ? "" : tail.slice(slash) };
}

function pathOnly(uri: string): string {
  const query = uri.indexOf("?");
  return query === -1 ? uri : uri.slice(0, query);
}

function contextOf(
  request: ApiRequest,
  original: { method: string; uri: string; host: string },
  trusted: boolean,
  proxies: TrustedProxies,
  settings: ForwardAuthSettings,
): Record<string, unknown> {
  const context: Record<string, unknown> = {
    http: { method: original.method, path: pathOnly(original.uri), host: original.host },
  };
  const ip = proxies.clientAddress(request.remoteAddress, headerValue(request, "x-forwarded-for"));
  if (ip !== undefined) context.ip = ip;
  const session = headerValue(request, "mcp-session-id");
  if (session !== undefined) context.session = { id: session };
  // Only a trusted proxy's headers are believed: it sets or strips them for the client.
  if (trusted) {
    for (const [name, path] of Object.entries(settings.contextHeaders)) {
      const value = headerValue(request, name);
      if (value !== undefined) setPath(context, path.split("."), value);
    }
  }
  return context;
}

function setPath(target: Record<string, unknown>, path: string[], value: string): void {
  const [head, ...rest] = path;
  if (head === undefined) return;
  if (rest.length === 0) {
    target[head] = value;
    return;
  }
  const next = target[head];
  const child: Record<string, unknown> =
    typeof next === "object" && next !== null ? (next as Record<string, unknown>) : {};
  target[head] = child;
  setPath(child, rest, value);
}

/**
 * The decision forward-auth can enforce: an allow carrying an obligation it does not perform
 * (anything but `step_up`) is a deny, recorded as such, so the MCP server never runs a call
 * without what the policy made it conditional on.
 */
function enforceable(decision: Decision): Decision {
  const unperformable = decision.allow ? unperformableObligations(decision.obligations) : [];
  if (unperformable.length === 0) return decision;
  return {
    ...decision,
    allow: false,
    reasons: [
      ...decision.reasons,
      {
        code: obligationUnsupportedCode,
        admin: `the policy allowed on condition of ${unperformable.join(", ")}, which forward-auth cannot perform`,
        user: "Access denied.",
      },
    ],
  };
}

/**
 * The risk classes of the allowed operations, each once, in the order first
 * seen (`destructive`, or `read,destructive` for a mixed batch): bounded by
 * the number of classes, so a batch cannot grow the header past what proxies
 * accept. The PDP does not rank classes itself; the policy does.
 */
function riskClasses(decisions: Decision[]): string {
  const classes = new Set(
    decisions.map((d) => d.risk?.class).filter((c): c is string => c !== undefined),
  );
  return classes.size === 0 ? "none" : [...classes].join(",");
}

/** A 400: the request is not MCP the PDP can authorize. */
function refusal(error: McpRefusal): ApiResponse {
  return refusalAnswer(error, error.id !== undefined);
}

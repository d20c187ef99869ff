import type { Caller } from "../auth/caller.ts";
import type { SubjectResolver } from "../auth/subject-resolver.ts";
import type { AccessRequest, Decision, Entity } from "../decision/decision.ts";
import type { Clock, DecisionEngine } from "../decision/decision-engine.ts";
import { ApiError } from "../errors.ts";
import { InputJsonCache } from "../policy/input-json.ts";
import { joinUserMessages } from "../protocol/mcp/answers.ts";
import type {
  DecisionEndpoint,
  DecisionEvent,
  DecisionObserver,
} from "../observability/decision-observer.ts";
import { traceIdOf } from "../observability/trace-context.ts";
import { callerOf, headerValue, type ApiRequest, type ApiResponse } from "./api-types.ts";
import {
  parseAccessRequest,
  parseEvaluationsRequest,
  type EvaluationsRequest,
  type EvaluationsSemantic,
  type SearchKind,
} from "./authzen-schemas.ts";
import { searchPaths } from "./authzen-search-api.ts";
import {
  profileObligationsOf,
  supportedObligations,
  wantsObligationsProfile,
} from "./authzen-obligations.ts";
import {
  parseJsonObject,
  requireJsonContentType,
  type JsonBodyLimits,
} from "../protocol/json-body.ts";

export interface AuthzenApiOptions {
  engine: DecisionEngine;
  subjects: SubjectResolver;
  /** Read once per request: token checks and the policy's time agree. */
  clock: Clock;
  limits: JsonBodyLimits;
  /** Most items one batch request may carry. */
  maxEvaluations: number;
  /** Most policy input one batch may hand the evaluator, inherited parts counted per item. */
  maxBatchInputBytes: number;
  /** Base URL the PDP is reached at, for metadata discovery. */
  publicUrl: string;
  /** Told about every decision (metrics, decision log). */
  observer: DecisionObserver;
  /** The search APIs the policy can serve, advertised in the metadata. */
  search?: readonly SearchKind[];
}

/** The AuthZEN Authorization API 1.0 endpoints, independent of any HTTP framework. */
export interface AuthzenApi {
  /** POST /access/v1/evaluation */
  evaluation: (request: ApiRequest) => Promise<ApiResponse>;
  /** POST /access/v1/evaluations */
  evaluations: (request: ApiRequest) => Promise<ApiResponse>;
  /** GET /.well-known/authzen-configuration */
  configuration: () => ApiResponse;
}

export const authzenPaths = {
  evaluation: "/access/v1/evaluation",
  evaluations: "/access/v1/evaluations",
  configuration: "/.well-known/authzen-configuration",
} as const;

/**
 * The `context` of a decision response: id, reasons, risk and obligations, the
 * latter as the policy answered them or, for a request that opted in, as the
 * AuthZEN obligations profile's list (authzen-obligations.ts).
 */
function decisionContext(decision: Decision, profile: boolean): Record<string, unknown> {
  const context: Record<string, unknown> = {
    id: decision.id,
    reasons: decision.reasons,
    risk: decision.risk,
    obligations: profile ? profileObligationsOf(decision) : decision.obligations,
  };
  if (!decision.allow) {
    context.reason_admin = { en: decision.reasons.map((r) => `${r.code}: ${r.admin}`).join("; ") };
    context.reason_user = { en: joinUserMessages(decision.reasons) };
  }
  return context;
}

function decisionBody(decision: Decision, request: AccessRequest): Record<string, unknown> {
  const profile = wantsObligationsProfile(request.context);
  return { decision: decision.allow, context: decisionContext(decision, profile) };
}

/**
 * A batch item without `include_context`: only what was asked for (AuthZEN
 * §7.2), which for a request that opted in to the obligations profile includes
 * its obligations; a PEP must not be granted anything without learning what it
 * must do.
 */
function batchItemBody(decision: Decision, request: AccessRequest): Record<string, unknown> {
  if (!wantsObligationsProfile(request.context)) return { decision: decision.allow };
  const obligations = profileObligationsOf(decision);
  if (obligations.length === 0) return { decision: decision.allow };
  return { decision: decision.allow, context: { obligations } };
}

/** The request's body as a JSON object (its bytes were read, bounded, by http/body-reader.ts). */
function jsonObjectOf(request: ApiRequest, limits: JsonBodyLimits): Record<string, unknown> {
  requireJsonContentType(headerValue(request, "content-type"));
  return parseJsonObject(request.body, limits);
}

const entityKeys = ["subject", "action", "resource", "context"] as const;

/** An item inherits each of subject, action, resource and context it lacks from the request (AuthZEN §7.1). */
function withDefaults(
  envelope: EvaluationsRequest,
  item: Record<string, unknown>,
): Record<string, unknown> {
  const merged: Record<string, unknown> = {};
  for (const key of entityKeys) {
    const value = item[key] ?? envelope[key];
    if (value !== undefined) merged[key] = value;
  }
  return merged;
}

/**
 * What a batch hands the evaluator in all: the body once, plus every part an
 * item inherits, once per item that inherits it.
 */
function batchInputBytes(
  envelope: EvaluationsRequest,
  items: readonly Record<string, unknown>[],
  bodyBytes: number,
): number {
  const sizes = new Map<string, number>();
  let total = bodyBytes;
  for (const item of items) {
    for (const key of entityKeys) {
      if (item[key] !== undefined || envelope[key] === undefined) continue;
      let size = sizes.get(key);
      if (size === undefined) {
        size = Buffer.byteLength(JSON.stringify(envelope[key]));
        sizes.set(key, size);
      }
      total += size;
    }
  }
  return total;
}

/** How long a batch evaluates before it lets the event loop serve others. */
const batchSliceMs = 5;

/** Whether a batch stops after this decision, per the requested semantic. */
function stopsAfter(semantic: EvaluationsSemantic, allowed: boolean): boolean {
  return (
    (semantic === "deny_on_first_deny" && !allowed) ||
    (semantic === "permit_on_first_permit" && allowed)
  );
}

export function createAuthzenApi(options: AuthzenApiOptions): AuthzenApi {
  const { engine, subjects, clock, limits, maxEvaluations, publicUrl, observer } = options;
  const { maxBatchInputBytes } = options;
  // A search endpoint is advertised only when the policy can enumerate its candidates: its
  // absence tells a PEP the PDP cannot answer that search (AuthZEN metadata).
  const searchEndpoints = Object.fromEntries(
    (options.search ?? []).map((kind) => [
      `search_${kind}_endpoint`,
      `${publicUrl}${searchPaths[kind]}`,
    ]),
  );

  /** Who asked and how to correlate it: read once per HTTP request, shared by its decisions. */
  type Origin = Omit<DecisionEvent, "decision" | "request">;

  function originOf(caller: Caller, http: ApiRequest, endpoint: DecisionEndpoint): Origin {
    return {
      endpoint,
      caller: caller.name,
      requestId: http.requestId,
      traceId: traceIdOf(headerValue(http, "traceparent")),
    };
  }

  /** Decides and tells the observer. */
  function decideObserved(
    request: AccessRequest,
    nowMs: number,
    origin: Origin,
    on: DecisionEngine = engine,
    cache?: InputJsonCache,
  ): Decision {
    const decision = on.decide(request, nowMs, cache);
    observer.decided({ ...origin, decision, request });
    return decision;
  }

  async function decide(
    request: AccessRequest,
    caller: Caller,
    origin: Origin,
  ): Promise<ApiResponse> {
    const nowMs = clock();
    const resolved = await subjects.resolve(request, caller, nowMs);
    const decision = decideObserved(resolved, nowMs, origin);
    return {
      status: 200,
      headers: { "x-decision-id": decision.id },
      body: decisionBody(decision, request),
    };
  }

  return {
    async evaluation(request) {
      const caller = callerOf(request);
      const body = jsonObjectOf(request, limits);
      return decide(parseAccessRequest(body), caller, originOf(caller, request, "evaluation"));
    },

    async evaluations(request) {
      const caller = callerOf(request);
      const origin = originOf(caller, request, "evaluations");
      const envelope = parseEvaluationsRequest(jsonObjectOf(request, limits));
      const items = envelope.evaluations ?? [];
      // Without items the request is a single evaluation and answers like one (AuthZEN §7.1).
      if (items.length === 0) {
        return decide(parseAccessRequest(envelope), caller, origin);
      }
      if (items.length > maxEvaluations) {
        throw new ApiError(
          "too_many_evaluations",
          `at most ${maxEvaluations} evaluations per request, got ${items.length}`,
          "/evaluations",
        );
      }
      // The evaluator parses each item's whole input, inherited parts included: 256 items
      // inheriting a 1 MiB context are 256 MiB to parse, however the JSON is produced.
      const inputBytes = batchInputBytes(envelope, items, request.body.length);
      if (inputBytes > maxBatchInputBytes) {
        throw new ApiError(
          "batch_too_large",
          `the items inherit ${inputBytes} bytes of policy input in all; at most ${maxBatchInputBytes} (PDP_MAX_BATCH_INPUT_BYTES): send large shared parts with fewer items`,
          "/evaluations",
        );
      }
      const semantic = envelope.options?.evaluations_semantic ?? "execute_all";
      const full = envelope.options?.include_context === true;
      const nowMs = clock();
      // Items sharing a token (usually all of them, via the default subject) verify it once,
      // and the parts they inherit are serialized for the policy once.
      const verified = new Map<string, Promise<Entity>>();
      const cache = new InputJsonCache();
      // The batch yields between items; every item is decided on the policy active now.
      const pinned = engine.pinned();
      const results: unknown[] = [];
      let sliceStartedMs = performance.now();
      for (const [index, item] of items.entries()) {
        // A large batch yields now and then, so other requests are not held up behind it.
        if (performance.now() - sliceStartedMs > batchSliceMs) {
          await new Promise((resolve) => setImmediate(resolve));
          sliceStartedMs = performance.now();
        }
        let access: AccessRequest;
        const pointer = `/evaluations/${index}`;
        try {
          access = parseAccessRequest(withDefaults(envelope, item), pointer);
          access = await subjects.resolve(access, caller, nowMs, verified);
        } catch (error) {
          if (!(error instanceof ApiError)) throw error;
          // A bad item fails alone: decision false with the error, the batch goes on (AuthZEN §7.2).
          const body = error.toBody();
          if (body.field !== undefined && !body.field.startsWith(pointer)) {
            body.field = `${pointer}${body.field}`;
          }
          results.push({ decision: false, context: { error: { status: error.status, ...body } } });
          if (stopsAfter(semantic, false)) break;
          continue;
        }
        const decision = decideObserved(access, nowMs, origin, pinned, cache);
        // Only what was asked for (AuthZEN §7.2): interop runners compare items whole. The ids
        // stay reachable: include_context, and every decision record (with the X-Request-ID).
        results.push(full ? decisionBody(decision, access) : batchItemBody(decision, access));
        if (stopsAfter(semantic, decision.allow)) break;
      }
      return { status: 200, body: { evaluations: results } };
    },

    configuration() {
      return {
        status: 200,
        body: {
          policy_decision_point: publicUrl,
          access_evaluation_endpoint: `${publicUrl}${authzenPaths.evaluation}`,
          access_evaluations_endpoint: `${publicUrl}${authzenPaths.evaluations}`,
          ...searchEndpoints,
          supported_obligations: supportedObligations,
        },
      };
    },
  };
}

import type { SubjectResolver } from "../auth/subject-resolver.ts";
import type { AccessRequest, Entity } from "../decision/decision.ts";
import type { Clock, DecisionEngine } from "../decision/decision-engine.ts";
import { resourceIdentity } from "../decision/resource-identity.ts";
import { ApiError } from "../errors.ts";
import type { DecisionObserver } from "../observability/decision-observer.ts";
import { traceIdOf } from "../observability/trace-context.ts";
import { InputJsonCache } from "../policy/input-json.ts";
import { callerOf, headerValue, type ApiRequest, type ApiResponse } from "./api-types.ts";
import {
  parseAccessRequest,
  parseSearchRequest,
  type SearchKind,
  type SearchRequest,
} from "./authzen-schemas.ts";
import { profileObligationsOf, wantsObligationsProfile } from "./authzen-obligations.ts";
import type { Candidate, SearchCandidates } from "./authzen-search-candidates.ts";
import { canonicalJson, PageTokens } from "./authzen-search-page.ts";
import {
  parseJsonObject,
  requireJsonContentType,
  type JsonBodyLimits,
} from "../protocol/json-body.ts";

export const searchPaths = {
  resource: "/access/v1/search/resource",
  action: "/access/v1/search/action",
  subject: "/access/v1/search/subject",
} as const satisfies Record<SearchKind, string>;

/** Results per page without `page.limit`. */
export const defaultPageLimit = 50;

export interface AuthzenSearchApiOptions {
  engine: DecisionEngine;
  subjects: SubjectResolver;
  clock: Clock;
  limits: JsonBodyLimits;
  observer: DecisionObserver;
  candidates: SearchCandidates;
  /** Page tokens; a fresh random key per process unless a test passes one. */
  tokens?: PageTokens;
  /**
   * Most decisions one search request makes (PDP_MAX_EVALUATIONS), and so
   * also the largest `page.limit`: a page stops early, with a next_token,
   * when its candidates run out of this budget.
   */
  maxEvaluations: number;
  /**
   * Most policy input one search request may hand the evaluator
   * (PDP_MAX_BATCH_INPUT_BYTES): every candidate's input carries the
   * request's subject and context, so a large body gets fewer decisions per
   * page (and more pages), never more work.
   */
  maxBatchInputBytes: number;
}

/** POST /access/v1/search/{resource,action,subject} (AuthZEN 1.0 §8). */
export type AuthzenSearchApi = Record<SearchKind, (request: ApiRequest) => Promise<ApiResponse>>;

/** How long a search evaluates before it lets the event loop serve others (as batches do). */
const sliceMs = 5;

/**
 * The search APIs: the policy's candidate entrypoint enumerates what could be
 * found (authzen-search-candidates.ts), and each candidate is decided by the
 * decision engine exactly as `/access/v1/evaluation` would decide it — same
 * caller, same token verification per server, same input — so every result
 * re-evaluates to `true`, and only allowed candidates are returned. There is
 * no second policy path: the search only enumerates and paginates.
 *
 * Paging: candidates are walked in a fixed order from the offset the page
 * token names; a page ends at `page.limit` results or after
 * `maxEvaluations` decisions, and `page.next_token` continues it ("" when
 * every candidate was decided).
 */
export function createAuthzenSearchApi(options: AuthzenSearchApiOptions): AuthzenSearchApi {
  const { maxBatchInputBytes } = options;
  const { subjects, clock, limits, observer, candidates, maxEvaluations } = options;
  const tokens = options.tokens ?? new PageTokens();

  async function search(kind: SearchKind, http: ApiRequest): Promise<ApiResponse> {
    // Candidates, page binding and every decision on one policy, whatever a reload does meanwhile.
    const engine = options.engine.pinned();
    const caller = callerOf(http);
    requireJsonContentType(headerValue(http, "content-type"));
    const body = parseJsonObject(http.body, limits);
    const request = parseSearchRequest(kind, body);
    const limit = request.page?.limit ?? Math.min(defaultPageLimit, maxEvaluations);
    if (limit > maxEvaluations) {
      throw new ApiError(
        "invalid_request",
        `/page/limit must be at most ${maxEvaluations} (PDP_MAX_EVALUATIONS)`,
        "/page/limit",
      );
    }
    // The token continues this request only: same kind, caller, policy and body but the page.
    const { page: _page, ...unpaged } = body;
    const binding = canonicalJson({
      kind,
      caller: caller.name,
      revision: engine.revision,
      unpaged,
    });
    const offset = tokens.offsetOf(request.page?.token, binding);

    const nowMs = clock();
    const verified = new Map<string, Promise<Entity>>();
    // The searching subject is resolved as an evaluation would resolve it: a caller that may
    // not assert subjects is refused here (403), not silently left with no results.
    const searcher = await subjects.resolve(
      asAccessRequest(kind, request),
      caller,
      nowMs,
      verified,
    );
    const found = candidates.list(
      kind,
      candidateInput(request, searcher.subject),
      kind === "action" ? "" : kind === "subject" ? request.subject.type : request.resource.type,
      engine.policy,
    );
    if (offset > found.length) throw new ApiError("page_token_invalid", "page.token is stale");

    const origin = {
      endpoint: "search" as const,
      caller: caller.name,
      requestId: http.requestId,
      traceId: traceIdOf(headerValue(http, "traceparent")),
    };
    const cache = new InputJsonCache();
    const results: Candidate[] = [];
    let index = offset;
    let decided = 0;
    const decisionBudget = Math.max(
      1,
      Math.min(maxEvaluations, Math.floor(maxBatchInputBytes / Math.max(1, http.body.length))),
    );
    let sliceStartedMs = performance.now();
    while (index < found.length && results.length < limit && decided < decisionBudget) {
      if (performance.now() - sliceStartedMs > sliceMs) {
        await new Promise((resolve) => setImmediate(resolve));
        sliceStartedMs = performance.now();
      }
      const candidate = found[index] as Candidate;
      index++;
      let access: AccessRequest;
      try {
        access = parseAccessRequest(withCandidate(kind, request, candidate));
        access = await subjects.resolve(access, caller, nowMs, verified);
      } catch (error) {
        // A candidate the evaluation API would refuse (a resource_mismatch, a subject this
        // caller may not assert) is not found; the search goes on.
        if (error instanceof ApiError) continue;
        throw error;
      }
      decided++;
      const decision = engine.decide(access, nowMs, cache);
      observer.decided({ ...origin, decision, request: access });
      if (!decision.allow) continue;
      // For a PEP that opted in to the obligations profile, a result carries what the policy
      // attached to it: the PEP then leaves out only the results it cannot honour.
      const obligations = wantsObligationsProfile(access.context)
        ? profileObligationsOf(decision)
        : [];
      results.push(obligations.length > 0 ? { ...candidate, obligations } : candidate);
    }
    const nextToken = index < found.length ? tokens.issue(binding, index) : "";
    return {
      status: 200,
      body: { results, page: { next_token: nextToken, count: results.length } },
    };
  }

  return {
    resource: (request) => search("resource", request),
    action: (request) => search("action", request),
    subject: (request) => search("subject", request),
  };
}

/**
 * The search as one access request, for resolving its subject: a resource
 * search's resource has no id (its server is `properties.server`); the other
 * searches name a whole resource, read as an evaluation reads it.
 */
function asAccessRequest(kind: SearchKind, request: SearchRequest): AccessRequest {
  const resource =
    kind === "resource"
      ? { ...request.resource, id: request.resource.id ?? "" }
      : resourceIdentity(request.resource as Entity);
  return {
    subject: { ...request.subject, id: request.subject.id ?? "" },
    action: request.action ?? { name: "" },
    resource,
    ...(request.context === undefined ? {} : { context: request.context }),
  };
}

/** What the candidate entrypoint sees: the search without its page, the subject verified. */
function candidateInput(request: SearchRequest, subject: Entity): Record<string, unknown> {
  const { page: _page, ...rest } = request;
  return { ...rest, subject };
}

/** The access request that asks about one candidate: the search with the candidate in place. */
function withCandidate(
  kind: SearchKind,
  request: SearchRequest,
  candidate: Candidate,
): Record<string, unknown> {
  const { page: _page, ...rest } = request;
  return { ...rest, [kind]: candidate };
}

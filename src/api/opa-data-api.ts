import type { DecisionEngine } from "../decision/decision-engine.js";
import { ApiError } from "../errors.js";
import type { DecisionObserver } from "../observability/decision-observer.js";
import { traceIdOf } from "../observability/trace-context.js";
import { noInput, type EvaluationOutcome } from "../policy/wasm-policy.js";
import { callerOf, headerValue, type ApiRequest, type ApiResponse } from "./api-types.js";
import {
  parseJsonDocument,
  parseJsonObject,
  type JsonBodyLimits,
  type JsonReadOptions,
} from "../protocol/json-body.js";

/** Where OPA's Data API lives: `/v1/data/{path}`. */
export const opaDataPath = "/v1/data";

/** The methods the Data API serves (HEAD as GET); the route table answers 405 for the rest. */
export const opaDataMethods = ["GET", "POST"] as const;

export interface OpaDataApiOptions {
  /** Evaluates the entrypoints: one id source and one failure path with every other decision. */
  engine: Pick<DecisionEngine, "hasEntrypoint" | "query">;
  limits: JsonBodyLimits;
  /** Told about every query (metrics, decision log). */
  observer: Pick<DecisionObserver, "queried">;
}

/** `GET|POST /v1/data/{path}`, given the request and its raw query string. */
export type OpaDataApi = (request: ApiRequest, query?: string) => ApiResponse;

/** The input of one evaluation: a JSON value, or none at all (OPA's "no input"). */
type Input = { present: true; value: unknown } | { present: false };

/**
 * OPA reads a lone surrogate escape (`"\ud800"`) as U+FFFD (Go's
 * encoding/json); so does this API, where the PDP's own APIs refuse it.
 */
const asOpaReads: JsonReadOptions = { loneSurrogates: "replace" };

/** What OPA adds to an answer to a POST without an `input` key. */
const missingInputWarning = {
  code: "api_usage_warning",
  message: "'input' key missing from the request",
} as const;

/**
 * OPA's Data API (v1), so PEPs and SDKs written for OPA can ask this PDP
 * unchanged: `POST /v1/data/{path}` with `{"input": …}` (or no body) and
 * `GET /v1/data/{path}` (no input, or OPA's `?input=<JSON>`). `{path}` must
 * name a compiled entrypoint of the bundle, or a key inside its result (e.g.
 * `mcp/authz/decision/allow`); anything else (a package, a rule that is not
 * an entrypoint) is undefined.
 *
 * Answers as OPA does: `{"result", "decision_id"}`, or `{"decision_id"}` alone
 * when the document is undefined (status 200 either way); errors as
 * `{"code", "message"}` with OPA's codes: `invalid_parameter` (400) for a
 * body or input the PDP refuses (its size, depth, UTF-8 and hostile-key
 * limits apply, and numbers a double cannot hold exactly, which OPA would
 * compare exactly and the compiled policy would not; the PDP's own code is in
 * `errors[0].code`), `internal_error`
 * (500) when evaluation fails. Other query parameters (`pretty`, `metrics`,
 * `provenance`, `explain`, …) are accepted and ignored.
 *
 * The input reaches the policy exactly as sent: no AuthZEN processing, no
 * token verification, no PDP clock. The caller vouches for every fact in it,
 * so only callers that may assert subjects (and hold `opa_data`) may use it;
 * the PDP's `caller_unauthenticated` (401) and `caller_forbidden` (403) keep
 * their codes.
 */
export function createOpaDataApi(options: OpaDataApiOptions): OpaDataApi {
  const { engine, limits, observer } = options;

  function answer(request: ApiRequest, query: string | undefined): ApiResponse {
    const method = request.method === "HEAD" ? "GET" : request.method;
    const caller = callerOf(request);
    if (!caller.assertSubject) {
      throw new ApiError(
        "caller_forbidden",
        `caller ${caller.name} may not use the OPA Data API: its input reaches the policy unverified, so the caller needs assert_subject`,
      );
    }

    let input: Input;
    try {
      input = method === "POST" ? postedInput(request.body, limits) : queriedInput(query, limits);
    } catch (error) {
      if (!(error instanceof ApiError)) throw error;
      return invalidParameter(error, method === "POST" ? "body" : "parameter");
    }

    const target = targetOf(request.path, engine);
    const evaluated = engine.query(target.entrypoint, input.present ? input.value : noInput);
    const selected =
      evaluated.outcome?.defined === true
        ? select(evaluated.outcome.value, target.within)
        : undefined;
    observer.queried({
      answer: evaluated,
      path: target.path,
      ...(input.present ? { input: input.value } : {}),
      ...(selected?.defined === true ? { result: selected.value } : {}),
      caller: caller.name,
      requestId: request.requestId,
      traceId: traceIdOf(headerValue(request, "traceparent")),
    });
    if (evaluated.failure !== undefined) {
      return {
        status: 500,
        headers: { "x-decision-id": evaluated.id },
        body: {
          code: "internal_error",
          message: "error(s) occurred while evaluating query; see the PDP log",
          decision_id: evaluated.id,
        },
      };
    }
    return respond(
      evaluated.id,
      selected?.defined === true ? { result: selected.value } : {},
      method,
      input,
    );
  }

  return (request, query) => {
    try {
      return answer(request, query);
    } catch (error) {
      if (error instanceof ApiError) return opaError(error);
      throw error;
    }
  };
}

/** OPA's 200: the result (when defined), the decision id, and the warning of a POST without input. */
function respond(
  decisionId: string,
  body: Record<string, unknown>,
  method: string,
  input: Input,
): ApiResponse {
  body.decision_id = decisionId;
  if (method === "POST" && !input.present) body.warning = missingInputWarning;
  return { status: 200, headers: { "x-decision-id": decisionId }, body };
}

/**
 * Renders a PDP error in OPA's shape, `{code, message}`: body problems become
 * OPA's `invalid_parameter` (400); caller authentication keeps the PDP's codes
 * and statuses (and its WWW-Authenticate challenge).
 */
export function opaError(error: ApiError): ApiResponse {
  if (error.status === 400 || error.status === 413 || error.status === 415) {
    return invalidParameter(error, "body");
  }
  return {
    status: error.status,
    headers: { ...error.headers },
    body: { code: error.code, message: error.message },
  };
}

function invalidParameter(error: ApiError, source: "body" | "parameter"): ApiResponse {
  const detail =
    error.field === undefined || error.field === ""
      ? error.message
      : `${error.message} at ${error.field}`;
  return {
    status: 400,
    body: {
      code: "invalid_parameter",
      message: `${source} contains malformed input document: ${detail}`,
      errors: [{ code: error.code, message: detail }],
    },
  };
}

/** The input of a POST: the body's `input`; none for an empty body or a missing (or null) `input`, as OPA. */
function postedInput(body: Buffer, limits: JsonBodyLimits): Input {
  if (isBlank(body)) return { present: false };
  const document = parseJsonObject(body, limits, asOpaReads);
  const value = Object.hasOwn(document, "input") ? document.input : undefined;
  return value === undefined || value === null ? { present: false } : { present: true, value };
}

/** The input of a GET: OPA's `?input=<JSON>` (the last one), else none. */
function queriedInput(query: string | undefined, limits: JsonBodyLimits): Input {
  if (query === undefined || query === "") return { present: false };
  const value = lastQueryValue(query, "input");
  if (value === undefined) return { present: false };
  return {
    present: true,
    value: parseJsonDocument(Buffer.from(value, "utf8"), limits, asOpaReads),
  };
}

/**
 * The last value of a query parameter, percent-decoded strictly.
 * URLSearchParams makes one U+FFFD of a truncated UTF-8 sequence where Go (so
 * OPA) makes one per byte: the compiled policy and OPA would see different
 * strings, so percent-escapes that are not UTF-8 (or not escapes) are a 400.
 */
function lastQueryValue(query: string, name: string): string | undefined {
  const decode = (text: string): string => {
    try {
      return decodeURIComponent(text.replaceAll("+", " "));
    } catch {
      throw new ApiError("invalid_utf8", "the query is not percent-encoded UTF-8", `?${name}`);
    }
  };
  let last: string | undefined;
  for (const pair of query.split("&")) {
    const equals = pair.indexOf("=");
    // Keys are decoded too: `%69nput` is `input` to OPA.
    const key = decode(equals === -1 ? pair : pair.slice(0, equals));
    if (key === name) last = equals === -1 ? "" : pair.slice(equals + 1);
  }
  return last === undefined ? undefined : decode(last);
}

/** Whether a body holds nothing but JSON whitespace (OPA reads it as no input). */
function isBlank(body: Buffer): boolean {
  return body.every((byte) => byte === 0x20 || byte === 0x09 || byte === 0x0a || byte === 0x0d);
}

/**
 * What a request path names: the data path (OPA's `path`), the longest
 * compiled entrypoint its segments start with, and the keys to follow inside
 * that entrypoint's result (so `mcp/authz/decision/allow` is the `allow` of
 * `mcp/authz/decision`, as in OPA). Segments come after `/v1/data` (the route
 * table sends nothing else here), percent-decoded, empty ones skipped (as OPA
 * does). No entrypoint when none matches: an undefined document.
 */
function targetOf(
  path: string,
  policy: Pick<DecisionEngine, "hasEntrypoint">,
): { path: string; entrypoint: string | undefined; within: string[] } {
  const segments: string[] = [];
  for (const raw of path.slice(opaDataPath.length).split("/")) {
    if (raw === "") continue;
    let segment = raw;
    try {
      segment = decodeURIComponent(raw);
    } catch {
      // OPA keeps a segment it cannot unescape as it is.
    }
    segments.push(segment);
  }
  // An entrypoint's name joins keys with "/", so a key holding a "/" can only follow one.
  const named = segments.findIndex((segment) => segment.includes("/"));
  for (let length = named === -1 ? segments.length : named; length > 0; length--) {
    const entrypoint = segments.slice(0, length).join("/");
    if (policy.hasEntrypoint(entrypoint)) {
      return { path: segments.join("/"), entrypoint, within: segments.slice(length) };
    }
  }
  return { path: segments.join("/"), entrypoint: undefined, within: [] };
}

/** The value at `keys` inside a result: object keys (own ones only), array indices. */
function select(value: unknown, keys: readonly string[]): EvaluationOutcome {
  let current = value;
  for (const key of keys) {
    if (Array.isArray(current)) {
      if (!/^(0|[1-9][0-9]*)$/.test(key) || Number(key) >= current.length) {
        return { defined: false };
      }
      current = current[Number(key)] as unknown;
    } else if (typeof current === "object" && current !== null && Object.hasOwn(current, key)) {
      current = (current as Record<string, unknown>)[key];
    } else {
      return { defined: false };
    }
  }
  return { defined: true, value: current };
}

import type { DecisionEngine } from "../decision/decision-engine.ts";
import type { CurrentPolicy } from "../policy/policy-holder.ts";
import type { ActivePolicy } from "../policy/policy-loader.ts";
import { ApiError } from "../errors.ts";
import type { DecisionObserver } from "../observability/decision-observer.ts";
import { traceIdOf } from "../observability/trace-context.ts";
import { noInput, type EvaluationOutcome } from "../policy/wasm-policy.ts";
import { callerOf, headerValue, type ApiRequest, type ApiResponse } from "./api-types.ts";
import { documentAt, pathText, readOpaDataPath, type PathSegment } from "./opa-data-path.ts";
import {
  parseJsonDocument,
  parseJsonObject,
  type JsonBodyLimits,
  type JsonReadOptions,
} from "../protocol/json-body.ts";

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
  /**
   * The active policy: its merged data document (bundle data and operator
   * data) answers base-document paths, its entrypoints tell which paths are
   * rules. Read in the same turn as the evaluation, so both are one revision.
   */
  baseDocuments: CurrentPolicy;
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
 * `GET /v1/data/{path}` (no input, or OPA's `?input=<JSON>`). `{path}` names
 * a compiled entrypoint of the bundle or a key inside its result (e.g.
 * `mcp/authz/decision/allow`), or a base document of the merged data (e.g.
 * `risk_classes/read`), segments read as OPA reads them (opa-data-path.ts:
 * its redirects, its index spellings). Anything else is undefined, what
 * only OPA's evaluator could answer included (the root, a package, a rule
 * that is not an entrypoint): never a made-up value.
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
  const { engine, limits, observer, baseDocuments } = options;

  function answer(request: ApiRequest, query: string | undefined): ApiResponse {
    const method = request.method === "HEAD" ? "GET" : request.method;
    const caller = callerOf(request);
    if (!caller.assertSubject) {
      throw new ApiError(
        "caller_forbidden",
        `caller ${caller.name} may not use the OPA Data API: its input reaches the policy unverified, so the caller needs assert_subject`,
      );
    }

    const read = readOpaDataPath(request.path, query, opaDataPath);
    if (read.kind === "redirect") {
      return { status: read.status, headers: { location: read.location }, body: undefined };
    }

    let input: Input;
    try {
      input = method === "POST" ? postedInput(request.body, limits) : queriedInput(query, limits);
    } catch (error) {
      if (!(error instanceof ApiError)) throw error;
      return invalidParameter(error, method === "POST" ? "body" : "parameter");
    }

    const target = resolve(read.segments, baseDocuments.current());
    if (target.kind === "invalid") return target.response;
    const evaluated = engine.query(
      target.kind === "entrypoint" ? target.entrypoint : undefined,
      input.present ? input.value : noInput,
    );
    if (evaluated.revision !== target.revision) {
      // The base documents and the evaluation must be one policy's; a reload between them is a bug.
      throw new Error(`the Data API read ${target.revision} and evaluated ${evaluated.revision}`);
    }
    const selected =
      target.kind === "base"
        ? target.document
        : target.kind === "entrypoint" && evaluated.outcome?.defined === true
          ? documentAt(evaluated.outcome.value, target.within, "virtual")
          : undefined;
    observer.queried({
      answer: evaluated,
      path: pathText(read.segments),
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

/** What a path names in the active policy. */
type Named =
  /** A compiled entrypoint, and the keys to follow inside its result. */
  | { kind: "entrypoint"; entrypoint: string; within: PathSegment[] }
  /** A base document (defined): bundle data or operator data. */
  | { kind: "base"; document: EvaluationOutcome }
  /** Nothing the PDP can answer: no entrypoint, no base document. */
  | { kind: "undefined" }
  /** A path OPA refuses: its response. */
  | { kind: "invalid"; response: ApiResponse };

/** What a path names, and the revision of the policy it was read from. */
type Target = Named & { revision: string };

/**
 * What a path names, in this order: the longest compiled entrypoint its
 * segments start with (so `mcp/authz/decision/allow` is the `allow` of
 * `mcp/authz/decision`, as in OPA); nothing for a path above an entrypoint
 * (the root, a package); a base document of the merged data; else nothing.
 * Where OPA would evaluate what the PDP has not compiled (the root, a
 * package, a rule that is not an entrypoint) the answer is undefined, never
 * a made-up value (README, "OPA Data API").
 */
function resolve(segments: readonly PathSegment[], active: ActivePolicy): Target {
  const { revision } = active;
  const quoted = segments.find((segment) => segment.text.includes('"'));
  if (quoted !== undefined) {
    // OPA cannot write such a segment into its query: its 500, word for word.
    return {
      revision,
      kind: "invalid",
      response: {
        status: 500,
        body: {
          code: "internal_error",
          message: `invalid_parameter: invalid path: invalid ref term '${quoted.text}'`,
        },
      },
    };
  }
  const texts = segments.map((segment) => segment.text);
  // An entrypoint's name joins keys with "/", so a key holding a "/" can only follow one.
  const named = texts.findIndex((text) => text.includes("/"));
  for (let length = named === -1 ? texts.length : named; length > 0; length--) {
    const entrypoint = texts.slice(0, length).join("/");
    if (active.policy.hasEntrypoint(entrypoint)) {
      return { revision, kind: "entrypoint", entrypoint, within: segments.slice(length) };
    }
  }
  const path = texts.join("/");
  // Above an entrypoint (the root, a package) OPA merges base documents with
  // every rule's value; the PDP has only its compiled entrypoints' values, so
  // it answers nothing rather than a part. Checked before the data: a key of
  // the operator data under a package (data.mcp.extra) must not answer data.mcp.
  const above =
    named === -1 && active.policy.entrypoints.some((name) => name.startsWith(`${path}/`));
  if (path === "" || above) {
    return { revision, kind: "undefined" };
  }
  const document = documentAt(active.data, segments, "base");
  if (document.defined) return { revision, kind: "base", document };
  return { revision, kind: "undefined" };
}

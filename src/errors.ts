/**
 * The error registry: every error the PDP reports to a client, answers an
 * enforcement point with, or refuses to start with carries a stable code from
 * one string-literal union, and every code a client can see has one HTTP
 * status in one map (`errorStatus`, checked against the README's error table
 * by test/errors.test.ts). Every error class derives from `PdpError`, so a
 * caller narrows by `code` (tests assert codes, never messages). A deny is not
 * an error: it is a normal decision.
 */

/** Codes of errors answered to API clients, with their HTTP status. */
export const apiErrorStatus = {
  invalid_json: 400,
  empty_body: 400,
  invalid_utf8: 400,
  body_too_deep: 400,
  forbidden_key: 400,
  invalid_request: 400,
  too_many_evaluations: 400,
  batch_too_large: 400,
  resource_mismatch: 400,
  duplicate_key: 400,
  invalid_unicode: 400,
  number_unrepresentable: 400,
  page_token_invalid: 400,
  caller_unauthenticated: 401,
  caller_forbidden: 403,
  subject_assertion_forbidden: 403,
  body_too_large: 413,
  unsupported_media_type: 415,
  method_not_allowed: 405,
  not_found: 404,
  not_ready: 503,
  request_timeout: 408,
  headers_too_large: 431,
  internal_error: 500,
} as const;

/**
 * Why a bearer token was not accepted. Each code reaches the policy
 * (subject.properties.token_error) and the PEP (the decision's reasons); on
 * AuthZEN it is a deny, and forward-auth and the PEP library answer it with
 * this status (401 with `WWW-Authenticate`, protocol/challenge.ts).
 */
export const tokenErrorStatus = {
  token_missing: 401,
  token_malformed: 401,
  token_too_large: 401,
  token_encrypted: 401,
  token_alg_not_allowed: 401,
  token_unknown_key: 401,
  token_bad_signature: 401,
  token_crit_unsupported: 401,
  token_wrong_type: 401,
  token_wrong_issuer: 401,
  token_wrong_audience: 401,
  token_expired: 401,
  token_not_yet_valid: 401,
  token_issued_in_future: 401,
  token_claim_missing: 401,
  token_claim_invalid: 401,
  jwks_unavailable: 401,
  // The request is for no registered server, so no audience could bind the token (servers.ts);
  // no token would help, so forward-auth answers 403, not 401.
  server_unknown: 403,
} as const;

/** Why a relayed request could not be read as MCP (protocol/mcp/request-reader.ts): always a 400. */
export const mcpRefusalStatus = {
  mcp_invalid: 400,
  mcp_batch_rejected: 400,
  mcp_batch_too_large: 400,
  mcp_header_mismatch: 400,
  mcp_http_method_unsupported: 400,
} as const;

/**
 * The JSON-RPC error code each refusal is answered with where the answer is
 * JSON-RPC: -32020 (MCP 2026-07-28's HeaderMismatch) for standard headers
 * that are missing, malformed or disagree with the body, in every revision
 * (the fault is the same, and the code sits in JSON-RPC's server-error range,
 * so an older client reads it as any error); -32600 (Invalid Request) for the
 * rest.
 */
export const mcpRefusalJsonRpcCode: Readonly<Record<McpRefusalCode, number>> = {
  mcp_invalid: -32600,
  mcp_batch_rejected: -32600,
  mcp_batch_too_large: -32600,
  mcp_header_mismatch: -32020,
  mcp_http_method_unsupported: -32600,
};

/**
 * Why the PEP library could not get a usable answer from the PDP
 * (pep/pdp-client.ts). It fails closed: the MCP client gets a 503 whose
 * reason is `pdp_unavailable`; the specific code goes to the PEP's log.
 */
export const pdpUnavailableStatus = {
  pdp_unreachable: 503,
  pdp_timeout: 503,
  pdp_error: 503,
  pdp_answer_invalid: 503,
} as const;

/** Every code a client or an enforcement point can see, with its HTTP status: the one map. */
export const errorStatus = {
  ...apiErrorStatus,
  ...tokenErrorStatus,
  ...mcpRefusalStatus,
  ...pdpUnavailableStatus,
} as const;

export type ApiErrorCode = keyof typeof apiErrorStatus;
export type TokenErrorCode = keyof typeof tokenErrorStatus;
export type McpRefusalCode = keyof typeof mcpRefusalStatus;
export type PdpUnavailableCode = keyof typeof pdpUnavailableStatus;

/** Token codes in the registry's order (the `reason` label values they may take, for one). */
export const tokenErrorCodes = Object.keys(tokenErrorStatus) as readonly TokenErrorCode[];

/**
 * Why a bundle was refused before it could become the policy: the archive is
 * unsafe or malformed (policy/bundle-archive.ts) or its signature does not
 * hold (policy/bundle-signatures.ts). Each is a `BundleRefusal`, so a reload
 * can count refusals by this code.
 */
export const bundleRefusalCodes = [
  "bundle_not_gzip",
  "bundle_truncated",
  "bundle_archive_invalid",
  "bundle_too_large",
  "bundle_too_many_files",
  "bundle_file_too_large",
  "bundle_path_traversal",
  "bundle_absolute_path",
  "bundle_path_invalid",
  "bundle_link_entry",
  "bundle_special_entry",
  "bundle_duplicate_entry",
  "bundle_unsigned",
  "bundle_signature_invalid",
  "bundle_signature_algorithm",
  "bundle_signature_key_unknown",
  "bundle_signature_scope",
  "bundle_file_missing",
  "bundle_file_unexpected",
  "bundle_file_hash_mismatch",
] as const;

export type BundleRefusalCode = (typeof bundleRefusalCodes)[number];

/** Codes of problems that stop the PDP from starting or from loading a policy. */
export const startupErrorCodes = [
  ...bundleRefusalCodes,
  "config_invalid",
  "bundle_unreadable",
  "bundle_invalid",
  "data_invalid",
  "entrypoint_missing",
  "builtin_unsupported",
  "policy_config_invalid",
  "policy_unavailable", // policy.service gave no bundle at startup and no persisted one could be used
  "log_unwritable",
  "worker_failed", // a worker thread could not start (or ended) while the PDP started
] as const;

export type StartupErrorCode = (typeof startupErrorCodes)[number];

/** Codes of evaluation failures; each becomes a fail-closed deny with that reason. */
export const evaluationErrorCodes = [
  "policy_undefined",
  "policy_result_invalid",
  "evaluation_error",
  "input_invalid",
] as const;

export type EvaluationErrorCode = (typeof evaluationErrorCodes)[number];

/**
 * Why a poll of an HTTP bundle service (policy/bundle-service.ts) brought no
 * new policy. Each is also the `reason` label of that attempt, so the set is
 * bounded. The current policy stays active whatever the reason.
 */
export const bundleServiceFailureCodes = [
  "http_3xx", // redirects are refused: the credentials are for the configured service only
  "http_4xx",
  "http_5xx",
  "http_other", // a status no bundle server sends (1xx, 2xx other than 200)
  "timeout",
  "too_large",
  "truncated",
  "network",
  "tls",
  "content_type",
  "empty",
  "credentials",
  "refused", // downloaded, but activation refused the bundle
] as const;

export type BundleServiceFailureCode = (typeof bundleServiceFailureCodes)[number];

/** Why a persisted last-activated bundle could not be used (policy/bundle-persistence.ts). */
export const persistedBundleErrorCodes = [
  "persisted_missing",
  "persisted_corrupt",
  "persisted_too_old",
] as const;

export type PersistedBundleErrorCode = (typeof persistedBundleErrorCodes)[number];

/** Every code of every error the PDP or its PEP library raises. */
export type PdpErrorCode =
  | keyof typeof errorStatus
  | StartupErrorCode
  | EvaluationErrorCode
  | BundleServiceFailureCode
  | PersistedBundleErrorCode;

/**
 * The base of every error class: a stable `code` from the registry. `name`
 * is the subclass's, so logs and stack traces say which kind it is.
 */
export abstract class PdpError<Code extends PdpErrorCode = PdpErrorCode> extends Error {
  readonly code: Code;

  constructor(code: Code, message: string, options?: ErrorOptions) {
    super(message, options);
    this.name = new.target.name;
    this.code = code;
  }
}

/** The JSON body of every error response. */
export interface ApiErrorBody {
  code: ApiErrorCode;
  message: string;
  /** JSON pointer of the offending field, when one is to blame. */
  field?: string;
}

/** An error a client caused or must see; rendered by the one error handler. */
export class ApiError extends PdpError<ApiErrorCode> {
  readonly status: number;
  readonly field: string | undefined;
  /** Response headers the error requires, e.g. WWW-Authenticate on a 401. */
  readonly headers: Readonly<Record<string, string>>;

  constructor(
    code: ApiErrorCode,
    message: string,
    field?: string,
    headers: Record<string, string> = {},
  ) {
    super(code, message);
    this.status = apiErrorStatus[code];
    this.field = field;
    this.headers = headers;
  }

  toBody(): ApiErrorBody {
    const body: ApiErrorBody = { code: this.code, message: this.message };
    if (this.field !== undefined) body.field = this.field;
    return body;
  }
}

/** A refusal to start; `problems` lists every cause, each naming its variable, key or file. */
export class StartupError extends PdpError<StartupErrorCode> {
  readonly problems: readonly string[];

  constructor(code: StartupErrorCode, problems: readonly string[]) {
    super(code, `${code}: ${problems.join("; ")}`);
    this.problems = problems;
  }
}

/**
 * A bundle refused for a named reason (`bundleRefusalCodes`). It is a
 * StartupError, so a refusal at startup stops the start like any other.
 */
export class BundleRefusal extends StartupError {
  declare readonly code: BundleRefusalCode;

  // eslint-disable-next-line @typescript-eslint/no-useless-constructor -- narrows the codes it accepts
  constructor(code: BundleRefusalCode, problems: readonly string[]) {
    super(code, problems);
  }
}

/** A failure inside the decision path. Never reaches a client as an error: it becomes a deny. */
export class EvaluationError extends PdpError<EvaluationErrorCode> {}

/** A token that failed verification. The message is for operators and never contains the token. */
export class TokenError extends PdpError<TokenErrorCode> {}

/** A poll of a bundle service that brought no new policy; `httpStatus` when the server answered. */
export class BundleServiceError extends PdpError<BundleServiceFailureCode> {
  readonly httpStatus: number | undefined;

  constructor(
    code: BundleServiceFailureCode,
    message: string,
    options?: ErrorOptions & { httpStatus?: number },
  ) {
    super(code, message, options);
    this.httpStatus = options?.httpStatus;
  }
}

/** A persisted bundle that is absent, damaged or older than allowed. */
export class PersistedBundleError extends PdpError<PersistedBundleErrorCode> {}

/** Normalizes anything thrown (opa-wasm throws strings and plain objects) into a message. */
export function describeThrown(thrown: unknown): string {
  if (thrown instanceof Error) return thrown.message;
  if (typeof thrown === "string") return thrown;
  if (typeof thrown === "object" && thrown !== null && "message" in thrown) {
    return String(thrown.message);
  }
  return String(thrown);
}

/**
 * The error registry: every error the PDP reports to a client or refuses to
 * start with carries a stable code. Tests assert codes, never messages.
 * A deny is not an error: it is a normal decision.
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

export type ApiErrorCode = keyof typeof apiErrorStatus;

/** The JSON body of every error response. */
export interface ApiErrorBody {
  code: ApiErrorCode;
  message: string;
  /** JSON pointer of the offending field, when one is to blame. */
  field?: string;
}

/** An error a client caused or must see; rendered by the one error handler. */
export class ApiError extends Error {
  readonly code: ApiErrorCode;
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
    super(message);
    this.name = "ApiError";
    this.code = code;
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

/** Codes of problems that stop the PDP from starting or from loading a policy. */
export type StartupErrorCode =
  | "config_invalid"
  | "bundle_unreadable"
  | "bundle_invalid"
  | "data_invalid"
  | "entrypoint_missing"
  | "builtin_unsupported"
  | "policy_config_invalid"
  | "log_unwritable";

/** A refusal to start; `problems` lists every cause, each naming its variable, key or file. */
export class StartupError extends Error {
  readonly code: StartupErrorCode;
  readonly problems: readonly string[];

  constructor(code: StartupErrorCode, problems: readonly string[]) {
    super(`${code}: ${problems.join("; ")}`);
    this.name = "StartupError";
    this.code = code;
    this.problems = problems;
  }
}

/** Codes of evaluation failures; each becomes a fail-closed deny with that reason. */
export type EvaluationErrorCode =
  "policy_undefined" | "policy_result_invalid" | "evaluation_error" | "input_invalid";

/** A failure inside the decision path. Never reaches a client as an error: it becomes a deny. */
export class EvaluationError extends Error {
  readonly code: EvaluationErrorCode;

  constructor(code: EvaluationErrorCode, message: string) {
    super(message);
    this.name = "EvaluationError";
    this.code = code;
  }
}

/** Normalizes anything thrown (opa-wasm throws strings and plain objects) into a message. */
export function describeThrown(thrown: unknown): string {
  if (thrown instanceof Error) return thrown.message;
  if (typeof thrown === "string") return thrown;
  if (typeof thrown === "object" && thrown !== null && "message" in thrown) {
    return String(thrown.message);
  }
  return String(thrown);
}

/**
 * How an enforcement point tells an MCP client to authenticate or step up,
 * shared by the PDP's forward-auth endpoint and the enforcement library so the
 * two answer alike: 401 `WWW-Authenticate: Bearer resource_metadata=…`
 * (RFC 6750, RFC 9728) for token reasons; 403 with
 * `error="insufficient_scope", scope=…` (or RFC 9470's
 * `insufficient_user_authentication` when only `acr_values`/`max_age` would
 * help) when the policy offers a step-up; a plain 403 otherwise.
 */

/** What the policy asks of the client to be allowed next time (its `obligations.step_up`). */
export interface StepUp {
  scopes: string[];
  acrValues: string[];
  maxAge: number | undefined;
}

/** Token reasons are answered with 401: the client must (re)authenticate. */
export function isTokenReason(code: string): boolean {
  return code.startsWith("token_") || code === "jwks_unavailable";
}

/**
 * The reason of an allow an enforcement point cannot honour: the policy attached an
 * obligation it does not perform. Forward-auth and the PEP library perform one obligation,
 * `step_up` (as the challenge of a deny); an allow on condition of anything else (a custom
 * policy's `redact`, `watermark` …) would run the call without what the policy asked for, so
 * it is a deny (as the AuthZEN obligations profile has every PEP do).
 */
export const obligationUnsupportedCode = "obligation_unsupported";

/** The obligations of a policy answer other than `step_up` (null entries ask for nothing). */
export function unperformableObligations(obligations: Record<string, unknown>): string[] {
  return Object.keys(obligations).filter(
    (key) => key !== "step_up" && obligations[key] !== null && obligations[key] !== undefined,
  );
}

/**
 * Reads a `step_up` obligation (`scopes`, `acr_values`, `max_age`): the one
 * reader, for the policy's answer in the PDP and for the PDP's answer in the
 * enforcement library. Absent or null offers no step-up; anything else that
 * is not the documented shape is a problem the caller fails closed on.
 */
export function readStepUp(raw: unknown): { stepUp: StepUp | undefined } | { problem: string } {
  if (raw === undefined || raw === null) return { stepUp: undefined };
  if (typeof raw !== "object" || Array.isArray(raw)) {
    return { problem: "step_up must be an object" };
  }
  const obligation = raw as Record<string, unknown>;
  const maxAge = obligation.max_age;
  // RFC 9470: max_age is a whole number of seconds; anything else would be rewritten on its way
  // into WWW-Authenticate (1e300, -1.5), so it is refused instead.
  if (
    maxAge !== undefined &&
    (typeof maxAge !== "number" || !Number.isSafeInteger(maxAge) || maxAge < 0)
  ) {
    return { problem: "step_up.max_age must be a whole number of seconds, 0 or more" };
  }
  const scopes = tokenList(obligation.scopes);
  const acrValues = tokenList(obligation.acr_values);
  if (scopes === undefined) return { problem: `step_up.scopes ${tokenListRule}` };
  if (acrValues === undefined) return { problem: `step_up.acr_values ${tokenListRule}` };
  return { stepUp: { scopes, acrValues, maxAge } };
}

/**
 * RFC 6749 §3.3 scope-token: printable ASCII but space, `"` and `\`. A value
 * outside it could not be written into a quoted WWW-Authenticate parameter
 * as it is (it would be altered, or split into two scopes), so it is refused.
 */
const scopeToken = /^[\x21\x23-\x5B\x5D-\x7E]+$/;
const tokenListRule =
  "must be a list of scope tokens (printable ASCII, no space, quote or backslash)";

function tokenList(raw: unknown): string[] | undefined {
  if (raw === undefined) return [];
  if (
    !Array.isArray(raw) ||
    !raw.every((item): item is string => typeof item === "string" && scopeToken.test(item))
  ) {
    return undefined;
  }
  return [...raw];
}

/** The status and `WWW-Authenticate` value of a denial. */
export function denialChallenge(denial: {
  reasonCodes: readonly string[];
  stepUp: StepUp | undefined;
  /** Whether the client presented a token (then a token reason says `invalid_token`). */
  tokenPresented: boolean;
  /** Undefined when the request is for no registered server: nothing to announce. */
  resourceMetadataUrl: string | undefined;
}): { status: 401 | 403; wwwAuthenticate: string | undefined } {
  const metadata =
    denial.resourceMetadataUrl === undefined
      ? []
      : [`resource_metadata=${quoted(denial.resourceMetadataUrl)}`];
  if (denial.reasonCodes.some(isTokenReason)) {
    const parts = [...(denial.tokenPresented ? [`error="invalid_token"`] : []), ...metadata];
    return { status: 401, wwwAuthenticate: `Bearer ${parts.join(", ")}`.trimEnd() };
  }
  const stepUp = denial.stepUp;
  if (stepUp === undefined) return { status: 403, wwwAuthenticate: undefined };
  const parts =
    stepUp.scopes.length > 0
      ? [`error="insufficient_scope"`, `scope=${quoted(stepUp.scopes.join(" "))}`]
      : [`error="insufficient_user_authentication"`];
  if (stepUp.acrValues.length > 0) parts.push(`acr_values=${quoted(stepUp.acrValues.join(" "))}`);
  if (stepUp.maxAge !== undefined) parts.push(`max_age=${Math.trunc(stepUp.maxAge)}`);
  parts.push(...metadata);
  return { status: 403, wwwAuthenticate: `Bearer ${parts.join(", ")}` };
}

/**
 * An auth-param value: quotes, backslashes and anything outside printable
 * ASCII dropped rather than escaped (none are legitimate in scopes, acr values
 * or URLs, and a CR LF or non-Latin-1 character would make the header illegal).
 */
function quoted(value: string): string {
  return `"${value.replace(/[^\x20-\x7e]|["\\]/g, "")}"`;
}

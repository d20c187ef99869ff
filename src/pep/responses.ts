import { denialChallenge, isTokenReason } from "../protocol/challenge.js";
import { jsonRpcAccessDenied, jsonRpcInvalidRequest } from "../protocol/mcp/jsonrpc.js";
import type { PdpDecision } from "./pdp-client.js";

export { jsonRpcAccessDenied, jsonRpcInvalidRequest } from "../protocol/mcp/jsonrpc.js";
/** JSON-RPC "Internal error". */
export const jsonRpcInternalError = -32603;

export type JsonRpcId = string | number;

/** An HTTP answer the PEP sends instead of running the MCP handler. */
export interface PepResponse {
  status: number;
  headers: Record<string, string>;
  body: unknown;
}

/** One authorized element of the request and its decision. */
export interface DecidedElement {
  /** The JSON-RPC request id; undefined for notifications, responses, GET and DELETE. */
  id: JsonRpcId | undefined;
  decision: PdpDecision;
}

interface JsonRpcError {
  code: number;
  message: string;
  data?: Record<string, unknown>;
}

export { isTokenReason } from "../protocol/challenge.js";

export const unavailableMessage =
  "Authorization is temporarily unavailable; the request was not executed.";
const notExecutedMessage = "Not executed: another request in this batch was denied.";

/**
 * The answer to a request with at least one denied element, or undefined when
 * every element is allowed. A batch is denied as a whole: each request gets an
 * error (its own refusal, or "not executed"), and the status and
 * `WWW-Authenticate` come from the first token refusal, else the first
 * refusal: 401 `Bearer [error="invalid_token", ]resource_metadata="…"` for
 * token reasons; 403 `Bearer error="insufficient_scope", scope="…"` (or
 * `error="insufficient_user_authentication"` when only `acr_values`/`max_age`
 * would help) when the PDP offers a step-up; a plain 403 otherwise.
 */
export function denialResponse(
  elements: DecidedElement[],
  batch: boolean,
  details: { resourceMetadataUrl: string; tokenPresented: boolean },
): PepResponse | undefined {
  const denied = elements.filter((element) => !element.decision.allow);
  const chosen =
    denied.find((element) => element.decision.reasons.some((r) => isTokenReason(r.code))) ??
    denied[0];
  if (chosen === undefined) return undefined;

  const { decision } = chosen;
  const challenge = denialChallenge({
    reasonCodes: decision.reasons.map((r) => r.code),
    stepUp: decision.stepUp,
    tokenPresented: details.tokenPresented,
    resourceMetadataUrl: details.resourceMetadataUrl,
  });
  const status = challenge.status;
  const headers: Record<string, string> =
    challenge.wwwAuthenticate === undefined
      ? {}
      : { "www-authenticate": challenge.wwwAuthenticate };

  const errorOf = (element: DecidedElement): JsonRpcError =>
    element.decision.allow
      ? {
          code: jsonRpcAccessDenied,
          message: notExecutedMessage,
          data: { reasons: ["batch_denied"], decision_id: element.decision.id ?? null },
        }
      : refusalError(element.decision);
  const body = batch
    ? batchBody(elements, errorOf, refusalError(decision))
    : envelope(chosen.id ?? null, refusalError(decision));
  return { status, headers, body };
}

/** 503 when the PDP cannot be asked: nothing runs, every request gets the same error. */
export function unavailableResponse(ids: JsonRpcId[], batch: boolean): PepResponse {
  const error: JsonRpcError = {
    code: jsonRpcAccessDenied,
    message: unavailableMessage,
    data: { reasons: ["pdp_unavailable"] },
  };
  return {
    status: 503,
    headers: { "retry-after": "1" },
    body: batch
      ? batchBody(
          ids.map((id) => ({ id })),
          () => error,
          error,
        )
      : envelope(ids[0] ?? null, error),
  };
}

/** 400 for a body that is not JSON-RPC the PEP can authorize. */
export function invalidRequestResponse(message: string, id: JsonRpcId | null = null): PepResponse {
  return {
    status: 400,
    headers: {},
    body: envelope(id, {
      code: jsonRpcInvalidRequest,
      message,
      data: { reasons: ["mcp_invalid"] },
    }),
  };
}

/** The JSON-RPC error a tools/list response is replaced with when filtering cannot be decided. */
export function unavailableError(id: JsonRpcId | null): Record<string, unknown> {
  return envelope(id, {
    code: jsonRpcAccessDenied,
    message: unavailableMessage,
    data: { reasons: ["pdp_unavailable"] },
  });
}

function refusalError(decision: PdpDecision): JsonRpcError {
  const messages = decision.reasons
    .map((r) => r.user)
    .filter((m): m is string => m !== undefined && m !== "");
  const data: Record<string, unknown> = {
    reasons: decision.reasons.map((r) => r.code),
    decision_id: decision.id ?? null,
  };
  if (decision.stepUp !== undefined) {
    const { scopes, acrValues, maxAge } = decision.stepUp;
    data.step_up = {
      ...(scopes.length > 0 ? { scopes } : {}),
      ...(acrValues.length > 0 ? { acr_values: acrValues } : {}),
      ...(maxAge === undefined ? {} : { max_age: maxAge }),
    };
  }
  return {
    code: jsonRpcAccessDenied,
    message: [...new Set(messages)].join(" ") || "Access denied.",
    data,
  };
}

function envelope(id: JsonRpcId | null, error: JsonRpcError): Record<string, unknown> {
  return { jsonrpc: "2.0", id, error };
}

/** A batch answer: one error per request; a batch of only notifications gets one error with id null. */
function batchBody<T extends { id: JsonRpcId | undefined }>(
  elements: T[],
  errorOf: (element: T) => JsonRpcError,
  fallback: JsonRpcError,
): Record<string, unknown>[] {
  const answered = elements.filter(
    (element): element is T & { id: JsonRpcId } => element.id !== undefined,
  );
  if (answered.length === 0) return [envelope(null, fallback)];
  return answered.map((element) => envelope(element.id, errorOf(element)));
}

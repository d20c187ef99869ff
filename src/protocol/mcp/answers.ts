import { denialChallenge, isTokenReason, type StepUp } from "../challenge.ts";
import { mcpRefusalJsonRpcCode } from "../../errors.ts";
import { jsonRpcAccessDenied, type JsonRpcId } from "./jsonrpc.ts";
import type { McpOperation } from "./operation.ts";
import type { McpRefusal } from "./request-reader.ts";

/**
 * The one renderer of what an enforcement point answers instead of letting an
 * MCP request through, shared by forward-auth and the PEP library: the HTTP
 * status, `WWW-Authenticate`, and a JSON-RPC error whose `data` is the same on
 * both paths (`reasons`, `decision_id`, `step_up` when the policy offers one).
 */

/** An HTTP answer: status, headers, and a body serialized as JSON. */
export interface McpAnswer {
  status: number;
  headers: Record<string, string>;
  body: unknown;
}

/** One decision, as far as the answer needs it (the PDP's own, or one read from its AuthZEN API). */
export interface McpDecision {
  allow: boolean;
  /** The decision id, for the audit trail; undefined when the PDP gave none. */
  id: string | undefined;
  reasons: readonly { code: string; user?: string | undefined }[];
  stepUp: StepUp | undefined;
}

/** One authorized operation of the request and its decision. */
export interface DecidedOperation {
  operation: McpOperation;
  decision: McpDecision;
}

/** How to answer: in JSON-RPC (the client sent JSON-RPC) or the PDP's plain shape. */
export interface AnswerDialect {
  /**
   * Forward-auth answers in JSON-RPC when it saw a JSON-RPC body; the PEP
   * library, which is the MCP endpoint, always does.
   */
  jsonRpc: boolean;
  /** The body was a batch: every request in it gets an error. */
  batch: boolean;
}

interface JsonRpcError {
  code: number;
  message: string;
  data: Record<string, unknown>;
}

const deniedMessage = "Access denied.";
const notExecutedMessage = "Not executed: another request in this batch was denied.";
export const unavailableMessage =
  "Authorization is temporarily unavailable; the request was not executed.";

/** The end-user messages of a decision's reasons, each once, in order; "" when there are none. */
export function joinUserMessages(reasons: readonly { user?: string | undefined }[]): string {
  const messages = reasons
    .map((reason) => reason.user)
    .filter((message): message is string => message !== undefined && message !== "");
  return [...new Set(messages)].join(" ");
}

/**
 * The answer to a request with at least one denied operation, or undefined
 * when every operation is allowed. One deny refuses the whole request. The
 * status and `WWW-Authenticate` come from the first token refusal, else the
 * first refusal (the client must sign in before anything else can help): 401
 * `Bearer [error="invalid_token", ]resource_metadata="…"` for token reasons,
 * 403 `error="insufficient_scope"` (or `insufficient_user_authentication`)
 * when the policy offers a step-up, a plain 403 otherwise. A batch answers each
 * of its requests: its own refusal, or "not executed" (`batch_denied`).
 */
export function denialAnswer(
  operations: readonly DecidedOperation[],
  dialect: AnswerDialect,
  details: { resourceMetadataUrl: string | undefined; tokenPresented: boolean },
): McpAnswer | undefined {
  const denied = operations.filter((operation) => !operation.decision.allow);
  const chosen =
    denied.find((operation) => operation.decision.reasons.some((r) => isTokenReason(r.code))) ??
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
  const error = refusalError(decision);
  if (!dialect.jsonRpc) {
    const code = status === 401 ? "unauthenticated" : "access_denied";
    return { status, headers, body: { code, message: error.message, ...error.data } };
  }
  const errorOf = (operation: DecidedOperation): JsonRpcError =>
    operation.decision.allow
      ? {
          code: jsonRpcAccessDenied,
          message: notExecutedMessage,
          data: { reasons: ["batch_denied"], decision_id: operation.decision.id ?? null },
        }
      : refusalError(operation.decision);
  const body = dialect.batch
    ? batchBody(
        operations.map((decided) => ({ ...decided, id: requestIdOf(decided.operation) })),
        errorOf,
        error,
      )
    : envelope(requestIdOf(chosen.operation) ?? null, error);
  return { status, headers, body };
}

/**
 * 400 for a request that is not MCP the enforcement point can authorize: the
 * refusal's code, then the JSON rule that refused the body (with its
 * pointer), if any. A JSON-RPC error addressed to the refusal's id when the
 * answer is JSON-RPC (forward-auth: when the refusal is addressed to one),
 * with the refusal's code from the registry (-32020 for a header mismatch).
 */
export function refusalAnswer(refusal: McpRefusal, jsonRpc: boolean): McpAnswer {
  const reasons =
    refusal.refusedBy === undefined ? [refusal.code] : [refusal.code, refusal.refusedBy.code];
  const field = refusal.refusedBy?.field === undefined ? {} : { field: refusal.refusedBy.field };
  const body = jsonRpc
    ? envelope(refusal.id ?? null, {
        code: mcpRefusalJsonRpcCode[refusal.code],
        message: refusal.message,
        data: { reasons, ...field },
      })
    : { code: refusal.code, message: refusal.message, reasons, ...field };
  return { status: 400, headers: {}, body };
}

/** 503 when the PDP cannot be asked: nothing runs, every request gets the same error. */
export function unavailableAnswer(ids: readonly JsonRpcId[], batch: boolean): McpAnswer {
  const error = unavailable();
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

/** The JSON-RPC error a response is replaced with when it cannot be authorized (a tools/list). */
export function unavailableError(id: JsonRpcId | null): Record<string, unknown> {
  return envelope(id, unavailable());
}

function unavailable(): JsonRpcError {
  return {
    code: jsonRpcAccessDenied,
    message: unavailableMessage,
    data: { reasons: ["pdp_unavailable"] },
  };
}

function refusalError(decision: McpDecision): JsonRpcError {
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
    message: joinUserMessages(decision.reasons) || deniedMessage,
    data,
  };
}

/** The id an error answers: a request's own; notifications and the client's responses get none. */
export function requestIdOf(operation: McpOperation): JsonRpcId | undefined {
  if (operation.method === "mcp/response") return undefined;
  return operation.id ?? undefined;
}

function envelope(id: JsonRpcId | null, error: JsonRpcError): Record<string, unknown> {
  return { jsonrpc: "2.0", id, error };
}

/** A batch answer: one error per request; a batch of only notifications gets one error with id null. */
function batchBody<T extends { id: JsonRpcId | undefined }>(
  elements: readonly T[],
  errorOf: (element: T) => JsonRpcError,
  fallback: JsonRpcError,
): Record<string, unknown>[] {
  const answered = elements.filter(
    (element): element is T & { id: JsonRpcId } => element.id !== undefined,
  );
  if (answered.length === 0) return [envelope(null, fallback)];
  return answered.map((element) => envelope(element.id, errorOf(element)));
}

import {
  obligationUnsupportedCode,
  readStepUp,
  unperformableObligations,
  type StepUp,
} from "../protocol/challenge.ts";
import { PdpError, type PdpUnavailableCode } from "../errors.ts";
/** An AuthZEN entity (subject, action or resource) as sent to the PDP. */
export type AuthzenEntity = Record<string, unknown>;

/** What one evaluation asks about; missing parts are taken from the shared defaults. */
export interface EvaluationItem {
  action?: AuthzenEntity;
  resource: AuthzenEntity;
}

/** The defaults every item of one PDP call shares (AuthZEN §7.1). */
export interface EvaluationDefaults {
  subject: AuthzenEntity;
  action?: AuthzenEntity;
  context: Record<string, unknown>;
}

export interface Reason {
  code: string;
  /** The end-user message, when the PDP gave one. */
  user: string | undefined;
}

export type { StepUp } from "../protocol/challenge.ts";

/** One decision, read from the PDP's answer. */
export interface PdpDecision {
  allow: boolean;
  /** The decision id (`context.id`), for the audit trail. */
  id: string | undefined;
  reasons: Reason[];
  stepUp: StepUp | undefined;
}

/** The PDP could not be asked or did not answer usably. Every caller fails closed on it. */
export class PdpUnavailableError extends PdpError<PdpUnavailableCode> {}

export interface PdpClientSettings {
  evaluationsUrl: string;
  apiKey: string | undefined;
  timeoutMs: number;
  maxEvaluationsPerCall: number;
  fetch: typeof globalThis.fetch;
}

/**
 * Asks `POST /access/v1/evaluations` for every item in one call (several
 * calls only beyond `maxEvaluationsPerCall`), with `execute_all` semantics and
 * `include_context` so that denials carry reasons and step-up obligations.
 * Resolves to exactly one decision per item, in order, or rejects with
 * {@link PdpUnavailableError}.
 */
export async function evaluate(
  settings: PdpClientSettings,
  defaults: EvaluationDefaults,
  items: EvaluationItem[],
): Promise<PdpDecision[]> {
  const decisions: PdpDecision[] = [];
  for (let start = 0; start < items.length; start += settings.maxEvaluationsPerCall) {
    const chunk = items.slice(start, start + settings.maxEvaluationsPerCall);
    decisions.push(...(await evaluateChunk(settings, defaults, chunk)));
  }
  return decisions;
}

async function evaluateChunk(
  settings: PdpClientSettings,
  defaults: EvaluationDefaults,
  items: EvaluationItem[],
): Promise<PdpDecision[]> {
  const headers: Record<string, string> = {
    "content-type": "application/json",
    accept: "application/json",
  };
  if (settings.apiKey !== undefined) headers["x-api-key"] = settings.apiKey;
  const body = JSON.stringify({
    subject: defaults.subject,
    ...(defaults.action === undefined ? {} : { action: defaults.action }),
    context: defaults.context,
    options: { evaluations_semantic: "execute_all", include_context: true },
    evaluations: items,
  });

  let text: string;
  let status: number;
  try {
    // One deadline for the whole exchange: connecting, the answer and its body.
    const signal = AbortSignal.timeout(settings.timeoutMs);
    const response = await settings.fetch(settings.evaluationsUrl, {
      method: "POST",
      headers,
      body,
      signal,
      redirect: "error",
    });
    status = response.status;
    text = await response.text();
  } catch (error) {
    if (error instanceof Error && (error.name === "TimeoutError" || error.name === "AbortError")) {
      throw new PdpUnavailableError(
        "pdp_timeout",
        `the PDP did not answer within ${settings.timeoutMs} ms`,
        { cause: error },
      );
    }
    throw new PdpUnavailableError("pdp_unreachable", `the PDP is unreachable: ${describe(error)}`, {
      cause: error,
    });
  }
  if (status !== 200) {
    throw new PdpUnavailableError("pdp_error", `the PDP answered HTTP ${status}: ${excerpt(text)}`);
  }
  return readAnswer(text, items.length);
}

/** Reads `{"evaluations": [...]}`: exactly `expected` items, each with a boolean decision. */
export function readAnswer(text: string, expected: number): PdpDecision[] {
  let answer: unknown;
  try {
    answer = JSON.parse(text);
  } catch {
    throw new PdpUnavailableError("pdp_answer_invalid", "the PDP's answer is not JSON");
  }
  const evaluations = isObject(answer) ? answer.evaluations : undefined;
  if (!Array.isArray(evaluations) || evaluations.length !== expected) {
    throw new PdpUnavailableError(
      "pdp_answer_invalid",
      `the PDP's answer does not hold ${expected} evaluations`,
    );
  }
  return evaluations.map((item: unknown, index) => {
    if (!isObject(item) || typeof item.decision !== "boolean") {
      throw new PdpUnavailableError(
        "pdp_answer_invalid",
        `evaluation ${index} of the PDP's answer has no boolean decision`,
      );
    }
    return decisionOf(item.decision, isObject(item.context) ? item.context : {});
  });
}

function decisionOf(allow: boolean, context: Record<string, unknown>): PdpDecision {
  const id = typeof context.id === "string" ? context.id : undefined;
  // An item the PDP refused to evaluate (e.g. an invalid field) is a deny with that error's code.
  if (isObject(context.error)) {
    const code = typeof context.error.code === "string" ? context.error.code : "invalid_request";
    return { allow: false, id, reasons: [{ code, user: undefined }], stepUp: undefined };
  }
  const reasons: Reason[] = Array.isArray(context.reasons)
    ? context.reasons.map((reason: unknown) => {
        if (typeof reason === "string") return { code: reason, user: undefined };
        if (isObject(reason) && typeof reason.code === "string") {
          return {
            code: reason.code,
            user: typeof reason.user === "string" ? reason.user : undefined,
          };
        }
        return { code: "unknown", user: undefined };
      })
    : [];
  const obligations = context.obligations ?? {};
  if (!isObject(obligations)) {
    throw new PdpUnavailableError(
      "pdp_answer_invalid",
      "the PDP answered obligations that are not an object",
    );
  }
  // The same reader the PDP applies to its policy: a step-up it cannot read is no answer.
  const stepUp = readStepUp(obligations.step_up);
  if ("problem" in stepUp) {
    throw new PdpUnavailableError(
      "pdp_answer_invalid",
      `the PDP answered an invalid ${stepUp.problem}`,
    );
  }
  // An allow on condition of an obligation the library does not perform is not honoured.
  if (allow && unperformableObligations(obligations).length > 0) {
    reasons.push({ code: obligationUnsupportedCode, user: undefined });
    return { allow: false, id, reasons, stepUp: stepUp.stepUp };
  }
  return { allow, id, reasons, stepUp: stepUp.stepUp };
}

function isObject(value: unknown): value is Record<string, unknown> {
  return typeof value === "object" && value !== null && !Array.isArray(value);
}

function describe(error: unknown): string {
  if (!(error instanceof Error)) return String(error);
  const cause = error.cause instanceof Error ? ` (${error.cause.message})` : "";
  return `${error.message}${cause}`;
}

function excerpt(text: string): string {
  return text.length > 200 ? `${text.slice(0, 200)}…` : text;
}

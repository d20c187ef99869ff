import { EvaluationError } from "../errors.ts";
import { readStepUp } from "../protocol/challenge.ts";
import type { Reason, Risk, StepUp } from "./decision.ts";

/** The policy's answer, normalized: what is left of a Decision once the PDP adds id and revision. */
export interface PolicyAnswer {
  allow: boolean;
  reasons: Reason[];
  risk: Risk | null;
  obligations: Record<string, unknown>;
  stepUp: StepUp | undefined;
}

/** The reason of a deny the policy gave no reason for (it answered false, or no reasons). */
export const policyDeniedCode = "policy_denied";

const deniedByPolicy: Reason = {
  code: policyDeniedCode,
  admin: "the policy answered false",
  user: "Access denied.",
};

/**
 * Reads what a decision entrypoint answered, once, into typed parts. A policy
 * may answer a boolean, or a document with a boolean `allow` and optional
 * `reasons` (codes, or objects with `code` and messages), `risk`
 * (`{class, source?}` or null) and `obligations` (an object; its `step_up`,
 * when present, `{scopes?, acr_values?, max_age?}`). Anything else is
 * `policy_result_invalid`: a decision the PDP cannot read is never an allow,
 * and a risk or step-up it cannot read would mislabel or mislead.
 */
export function readPolicyAnswer(value: unknown): PolicyAnswer {
  if (typeof value === "boolean") {
    return {
      allow: value,
      reasons: value ? [] : [deniedByPolicy],
      risk: null,
      obligations: {},
      stepUp: undefined,
    };
  }
  if (!isObject(value)) {
    throw invalid(`expected a boolean or a decision document, got ${describe(value)}`);
  }
  if (typeof value.allow !== "boolean") {
    throw invalid(`decision.allow must be a boolean, got ${describe(value.allow)}`);
  }
  const reasons = readReasons(value.reasons);
  if (!value.allow && reasons.length === 0) reasons.push(deniedByPolicy);
  const obligations: unknown = value.obligations ?? {};
  if (!isObject(obligations)) {
    throw invalid(`decision.obligations must be an object, got ${describe(obligations)}`);
  }
  return {
    allow: value.allow,
    reasons,
    risk: readRisk(value.risk),
    obligations,
    stepUp: stepUpOf(obligations.step_up),
  };
}

function readReasons(raw: unknown): Reason[] {
  if (raw === undefined || raw === null) return [];
  if (!Array.isArray(raw)) throw invalid(`decision.reasons must be a list, got ${describe(raw)}`);
  return raw.map((item: unknown, index) => {
    if (typeof item === "string") return { code: item, admin: item, user: "Access denied." };
    if (isObject(item) && typeof item.code === "string") {
      const { code, admin, user, message } = item;
      const adminText =
        typeof admin === "string" ? admin : typeof message === "string" ? message : code;
      return { code, admin: adminText, user: typeof user === "string" ? user : "Access denied." };
    }
    throw invalid(`decision.reasons[${index}] must be a code or an object with a string code`);
  });
}

function readRisk(raw: unknown): Risk | null {
  if (raw === undefined || raw === null) return null;
  if (!isObject(raw) || typeof raw.class !== "string") {
    throw invalid(
      `decision.risk must be null or an object with a string class, got ${describe(raw)}`,
    );
  }
  const source = raw.source ?? null;
  if (source !== null && typeof source !== "string") {
    throw invalid(`decision.risk.source must be a string, got ${describe(source)}`);
  }
  return { class: raw.class, source };
}

function stepUpOf(raw: unknown): StepUp | undefined {
  const read = readStepUp(raw);
  if ("problem" in read) throw invalid(`decision.obligations.${read.problem}`);
  return read.stepUp;
}

function isObject(value: unknown): value is Record<string, unknown> {
  return typeof value === "object" && value !== null && !Array.isArray(value);
}

function invalid(message: string): EvaluationError {
  return new EvaluationError("policy_result_invalid", message);
}

function describe(value: unknown): string {
  const text = value === undefined ? "undefined" : JSON.stringify(value);
  return text.length > 80 ? `${text.slice(0, 77)}...` : text;
}

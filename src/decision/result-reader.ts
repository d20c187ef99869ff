import { EvaluationError } from "../errors.js";
import type { Reason } from "./decision.js";

/** The policy's answer, normalized: what is left of a Decision once the PDP adds id and revision. */
export interface PolicyAnswer {
  allow: boolean;
  reasons: Reason[];
  risk: unknown;
  obligations: Record<string, unknown>;
}

const deniedByPolicy: Reason = {
  code: "policy_denied",
  admin: "the policy answered false",
  user: "Access denied.",
};

/**
 * Reads what a decision entrypoint answered. A policy may answer a boolean, or
 * a document with a boolean `allow` and optional `reasons` (codes, or objects
 * with `code` and messages), `risk` and `obligations`. Anything else is
 * `policy_result_invalid`: a decision the PDP cannot read is never an allow.
 */
export function readPolicyAnswer(value: unknown): PolicyAnswer {
  if (typeof value === "boolean") {
    return { allow: value, reasons: value ? [] : [deniedByPolicy], risk: null, obligations: {} };
  }
  if (typeof value !== "object" || value === null || Array.isArray(value)) {
    throw invalid(`expected a boolean or a decision document, got ${describe(value)}`);
  }
  const document = value as Record<string, unknown>;
  if (typeof document.allow !== "boolean") {
    throw invalid(`decision.allow must be a boolean, got ${describe(document.allow)}`);
  }
  const reasons = readReasons(document.reasons);
  if (!document.allow && reasons.length === 0) reasons.push(deniedByPolicy);
  const obligations: unknown = document.obligations ?? {};
  if (typeof obligations !== "object" || obligations === null || Array.isArray(obligations)) {
    throw invalid(`decision.obligations must be an object, got ${describe(obligations)}`);
  }
  return {
    allow: document.allow,
    reasons,
    risk: document.risk ?? null,
    obligations: obligations as Record<string, unknown>,
  };
}

function readReasons(raw: unknown): Reason[] {
  if (raw === undefined || raw === null) return [];
  if (!Array.isArray(raw)) throw invalid(`decision.reasons must be a list, got ${describe(raw)}`);
  return raw.map((item: unknown, index) => {
    if (typeof item === "string") return { code: item, admin: item, user: "Access denied." };
    if (
      typeof item === "object" &&
      item !== null &&
      typeof (item as { code?: unknown }).code === "string"
    ) {
      const { code, admin, user, message } = item as Record<string, unknown>;
      const adminText =
        typeof admin === "string" ? admin : typeof message === "string" ? message : String(code);
      return {
        code: String(code),
        admin: adminText,
        user: typeof user === "string" ? user : "Access denied.",
      };
    }
    throw invalid(`decision.reasons[${index}] must be a code or an object with a string code`);
  });
}

function invalid(message: string): EvaluationError {
  return new EvaluationError("policy_result_invalid", message);
}

function describe(value: unknown): string {
  const text = value === undefined ? "undefined" : JSON.stringify(value);
  return text.length > 80 ? `${text.slice(0, 77)}...` : text;
}

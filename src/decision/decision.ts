/** An AuthZEN entity (subject or resource): a type, an id and free-form properties. */
export interface Entity {
  type: string;
  id: string;
  properties?: Record<string, unknown>;
}

/** An AuthZEN access evaluation request: who, what, on what, in which circumstances. */
export interface AccessRequest {
  subject: Entity;
  action: { name: string; properties?: Record<string, unknown> };
  resource: Entity;
  context?: Record<string, unknown>;
}

/** Why a decision came out as it did: a stable code and two messages. */
export interface Reason {
  code: string;
  /** For operators: may name policy details. */
  admin: string;
  /** Safe to show the end user. */
  user: string;
}

/** The risk the policy resolved for a request: its class and where the class came from. */
export interface Risk {
  /** E.g. `read`, `write`, `destructive` (the policy's risk_order). */
  class: string;
  /** E.g. `catalog`, `annotations`, `unknown_tool`, `method`; null when the policy names none. */
  source: string | null;
}

/** What the policy asks of the client to be allowed next time: one type with the protocol layer. */
export type { StepUp } from "../protocol/challenge.ts";
import type { StepUp } from "../protocol/challenge.ts";

/** The PDP's answer to one access request. A deny is a normal decision, not an error. */
export interface Decision {
  /** Unique per decision; returned to the client and recorded in logs. */
  id: string;
  allow: boolean;
  /** Empty when allowed by the default policy. */
  reasons: Reason[];
  /** The resolved risk, e.g. `{class: "write", source: "catalog"}`, or null. */
  risk: Risk | null;
  /**
   * Every obligation as the policy answered it, for clients and records,
   * e.g. `{step_up: {scopes: ["mcp:admin"], acr_values: ["mfa"], max_age: 900}}`.
   */
  obligations: Record<string, unknown>;
  /** `obligations.step_up`, read once (result-reader.ts); undefined when the policy offers none. */
  stepUp: StepUp | undefined;
  /** Revision of the bundle that decided. */
  revision: string;
  /** Input building, evaluation and result reading, in seconds. */
  evaluationSeconds: number;
  /** The policy input, when it could be built (for decision records; never sent to clients). */
  input?: Record<string, unknown>;
  /** The shadow policy's answer on the same input, when this decision was sampled; never sent to clients. */
  shadow?: ShadowOutcome;
}

/**
 * A candidate (shadow) policy's answer on a decision's input. It never
 * changes the decision: it is compared with it. `agree` means the same
 * outcome and the same reason codes.
 */
export interface ShadowOutcome {
  result: "agree" | "disagree" | "error" | "skipped";
  /** The shadow policy's revision. */
  revision: string;
  /** The shadow's outcome, when it was evaluated and readable. */
  decision?: boolean;
  /** The shadow's reason codes, when it was evaluated and readable. */
  reasons?: string[];
}

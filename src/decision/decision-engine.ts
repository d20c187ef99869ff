import { randomUUID } from "node:crypto";
import { EvaluationError, type EvaluationErrorCode } from "../errors.js";
import type { InputJsonCache } from "../policy/input-json.js";
import type { ActivePolicy } from "../policy/policy-loader.js";
import type { AccessRequest, Decision } from "./decision.js";
import { buildPolicyInput } from "./input-builder.js";
import { readPolicyAnswer } from "./result-reader.js";

/** The decision core: one access request in, one decision out. Never throws, never allows on doubt. */
export interface DecisionEngine {
  /**
   * `nowMs` is the request's time: the policy sees it as context.time. The
   * items of one batch pass one `cache`, so their shared parts serialize once.
   */
  decide(request: AccessRequest, nowMs: number, cache?: InputJsonCache): Decision;
  /** Revision of the active bundle. */
  readonly revision: string;
}

/** Milliseconds since the epoch; injected so tests can freeze time. */
export type Clock = () => number;

/** Told about every evaluation that failed closed, for logs (and, later, metrics). */
export type FailureListener = (failure: {
  decisionId: string;
  code: EvaluationErrorCode;
  message: string;
}) => void;

export interface PolicyDecisionEngineOptions {
  newId?: () => string;
  onFailure?: FailureListener;
}

const userFailureMessage = "Access could not be evaluated and is denied.";

/** Evaluates AuthZEN requests with a loaded wasm policy. */
export class PolicyDecisionEngine implements DecisionEngine {
  private readonly active: ActivePolicy;
  private readonly newId: () => string;
  private readonly onFailure: FailureListener;

  constructor(active: ActivePolicy, options: PolicyDecisionEngineOptions = {}) {
    this.active = active;
    this.newId = options.newId ?? randomUUID;
    this.onFailure = options.onFailure ?? (() => undefined);
  }

  get revision(): string {
    return this.active.revision;
  }

  decide(request: AccessRequest, nowMs: number, cache?: InputJsonCache): Decision {
    const id = this.newId();
    const started = process.hrtime.bigint();
    const elapsed = () => Number(process.hrtime.bigint() - started) / 1e9;
    let input: Record<string, unknown> | undefined;
    try {
      input = buildPolicyInput(request, nowMs);
      const outcome = this.active.policy.evaluate(this.active.entrypoint, input, cache);
      if (!outcome.defined) {
        throw new EvaluationError(
          "policy_undefined",
          `${this.active.entrypoint} is undefined for this input`,
        );
      }
      const answer = readPolicyAnswer(outcome.value);
      return { id, revision: this.active.revision, ...answer, evaluationSeconds: elapsed(), input };
    } catch (error) {
      const failure =
        error instanceof EvaluationError
          ? error
          : new EvaluationError(
              "evaluation_error",
              error instanceof Error ? error.message : String(error),
            );
      this.onFailure({ decisionId: id, code: failure.code, message: failure.message });
      return {
        id,
        revision: this.active.revision,
        allow: false,
        reasons: [{ code: failure.code, admin: failure.message, user: userFailureMessage }],
        risk: null,
        obligations: {},
        stepUp: undefined,
        evaluationSeconds: elapsed(),
        ...(input === undefined ? {} : { input }),
      };
    }
  }
}

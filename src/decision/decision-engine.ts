import { randomUUID } from "node:crypto";
import { EvaluationError, type EvaluationErrorCode } from "../errors.ts";
import type { InputJsonCache } from "../policy/input-json.ts";
import type { CurrentPolicy } from "../policy/policy-holder.ts";
import type { EvaluationOutcome, WasmPolicy } from "../policy/wasm-policy.ts";
import type { AccessRequest, Decision } from "./decision.ts";
import { buildPolicyInput } from "./input-builder.ts";
import { readPolicyAnswer } from "./result-reader.ts";
import type { ShadowEvaluator } from "./shadow-evaluator.ts";

/** The decision core: one access request in, one decision out. Never throws, never allows on doubt. */
export interface DecisionEngine {
  /**
   * `nowMs` is the request's time: the policy sees it as context.time. The
   * items of one batch pass one `cache`, so their shared parts serialize once.
   */
  decide(request: AccessRequest, nowMs: number, cache?: InputJsonCache): Decision;
  /**
   * Evaluates a compiled entrypoint with an input exactly as given (or
   * `noInput`, policy/wasm-policy.ts):
   * no AuthZEN processing, no PDP facts, no result reading (the OPA Data
   * API). Never throws: a failed evaluation is `failure`, told to the same
   * failure listener as a decision's, under the same id. Without an
   * entrypoint (the query names none) the document is undefined, unevaluated,
   * with an id all the same, as OPA answers.
   */
  query(entrypoint: string | undefined, input: unknown): EntrypointAnswer;
  /** Whether the active policy has this compiled entrypoint. */
  hasEntrypoint(entrypoint: string): boolean;
  /** Revision of the active policy (for a pinned engine, the one it is pinned to). */
  readonly revision: string;
  /**
   * This engine on the policy active now, for the whole of one request: a
   * batch or a search that yields between items decides every item on the
   * revision it started with, even when a reload activates another meanwhile.
   */
  pinned(): PinnedDecisionEngine;
}

/** A DecisionEngine held to one policy; its search candidates come from that policy too. */
export interface PinnedDecisionEngine extends DecisionEngine {
  readonly policy: WasmPolicy;
}

/** One entrypoint query: its id, the bundle it ran on, and its outcome or failure. */
export interface EntrypointAnswer {
  id: string;
  revision: string;
  /** Undefined when the query named no entrypoint. */
  entrypoint: string | undefined;
  /** The document, defined or not; undefined when the evaluation failed. */
  outcome: EvaluationOutcome | undefined;
  /** Why the evaluation failed, when it did. */
  failure?: EvaluationError;
  /** Policy evaluation alone, in seconds. */
  evaluationSeconds: number;
}

/** Milliseconds since the epoch; injected so tests can freeze time. */
export type Clock = () => number;

/** Told about every evaluation that failed closed, for logs (and, later, metrics). */
export type FailureListener = (failure: {
  decisionId: string;
  /** The entrypoint that failed: the decision entrypoint, or the one an entrypoint query named. */
  entrypoint: string;
  code: EvaluationErrorCode;
  message: string;
}) => void;

export interface PolicyDecisionEngineOptions {
  newId?: () => string;
  onFailure?: FailureListener;
  /** A candidate policy evaluated on a sample of the inputs after each answer, never changing it. */
  shadow?: ShadowEvaluator | undefined;
}

const userFailureMessage = "Access could not be evaluated and is denied.";

/**
 * Evaluates AuthZEN requests with the active wasm policy, read from the
 * holder once per decision (or once per request, pinned), so each decision
 * names exactly the revision that decided it.
 */
export class PolicyDecisionEngine implements DecisionEngine {
  private readonly holder: CurrentPolicy;
  private readonly newId: () => string;
  private readonly onFailure: FailureListener;
  private readonly shadow: ShadowEvaluator | undefined;

  constructor(holder: CurrentPolicy, options: PolicyDecisionEngineOptions = {}) {
    this.holder = holder;
    this.newId = options.newId ?? randomUUID;
    this.onFailure = options.onFailure ?? (() => undefined);
    this.shadow = options.shadow;
  }

  get revision(): string {
    return this.holder.current().revision;
  }

  pinned(): PinnedDecisionEngine {
    const active = this.holder.current();
    const engine = new PolicyDecisionEngine(
      { current: () => active },
      { newId: this.newId, onFailure: this.onFailure, shadow: this.shadow },
    );
    return Object.assign(engine, { policy: active.policy });
  }

  decide(request: AccessRequest, nowMs: number, cache?: InputJsonCache): Decision {
    // One read: the policy that evaluates is the one the decision names.
    const active = this.holder.current();
    const id = this.newId();
    const started = process.hrtime.bigint();
    const elapsed = () => Number(process.hrtime.bigint() - started) / 1e9;
    let input: Record<string, unknown> | undefined;
    try {
      input = buildPolicyInput(request, nowMs);
      const outcome = active.policy.evaluate(active.entrypoint, input, cache);
      if (!outcome.defined) {
        throw new EvaluationError(
          "policy_undefined",
          `${active.entrypoint} is undefined for this input`,
        );
      }
      const answer = readPolicyAnswer(outcome.value);
      const evaluationSeconds = elapsed();
      // After the answer is final (and outside its timing): the shadow can only be compared with it.
      const shadow = this.shadow?.compare(input, answer);
      return {
        id,
        revision: active.revision,
        ...answer,
        evaluationSeconds,
        input,
        ...(shadow === undefined ? {} : { shadow }),
      };
    } catch (error) {
      const failure = this.failed(id, active.entrypoint, error);
      return {
        id,
        revision: active.revision,
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

  query(entrypoint: string | undefined, input: unknown): EntrypointAnswer {
    const active = this.holder.current();
    const id = this.newId();
    const started = process.hrtime.bigint();
    const elapsed = () => Number(process.hrtime.bigint() - started) / 1e9;
    const answer = { id, revision: active.revision, entrypoint };
    if (entrypoint === undefined) {
      return { ...answer, outcome: { defined: false }, evaluationSeconds: 0 };
    }
    try {
      const outcome = active.policy.evaluate(entrypoint, input);
      return { ...answer, outcome, evaluationSeconds: elapsed() };
    } catch (error) {
      const failure = this.failed(id, entrypoint, error);
      return { ...answer, outcome: undefined, failure, evaluationSeconds: elapsed() };
    }
  }

  hasEntrypoint(entrypoint: string): boolean {
    return this.holder.current().policy.hasEntrypoint(entrypoint);
  }

  /** The one failure path: anything thrown becomes an EvaluationError, told to the listener. */
  private failed(id: string, entrypoint: string, error: unknown): EvaluationError {
    const failure =
      error instanceof EvaluationError
        ? error
        : new EvaluationError(
            "evaluation_error",
            error instanceof Error ? error.message : String(error),
          );
    this.onFailure({ decisionId: id, entrypoint, code: failure.code, message: failure.message });
    return failure;
  }
}

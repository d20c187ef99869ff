import type { ActivePolicy } from "../policy/policy-loader.ts";
import type { Decision, ShadowOutcome } from "./decision.ts";
import { readPolicyAnswer } from "./result-reader.ts";

export interface ShadowEvaluatorOptions {
  /** Share of decisions also evaluated on the shadow policy, 0 to 1. */
  sampleRate: number;
  /**
   * Most wall-clock time shadow evaluations may take per second, as a
   * share of it (default 0.1: 100 ms a second). Past it, sampled decisions
   * are `skipped` until the next second: under overload the shadow gives
   * way first.
   */
  budgetShare?: number;
  /** Uniform in [0, 1); injected so tests sample deterministically. */
  random?: () => number;
}

/**
 * Evaluates a candidate policy on a share of the real decisions' inputs,
 * after the real answer is computed, and compares. It can only add a
 * `shadow` to a decision, never change one.
 */
export class ShadowEvaluator {
  private readonly shadow: ActivePolicy;
  private readonly sampleRate: number;
  private readonly budgetMs: number;
  private readonly random: () => number;
  private windowStartMs = 0;
  private spentMs = 0;

  constructor(shadow: ActivePolicy, options: ShadowEvaluatorOptions) {
    this.shadow = shadow;
    this.sampleRate = options.sampleRate;
    this.budgetMs = (options.budgetShare ?? 0.1) * 1000;
    this.random = options.random ?? Math.random;
  }

  get revision(): string {
    return this.shadow.revision;
  }

  /** The shadow's outcome for this decision, or undefined when it is not sampled. */
  compare(
    input: Record<string, unknown>,
    decision: Pick<Decision, "allow" | "reasons">,
  ): ShadowOutcome | undefined {
    if (this.sampleRate <= 0 || this.random() >= this.sampleRate) return undefined;
    const revision = this.shadow.revision;
    const startedMs = performance.now();
    if (startedMs - this.windowStartMs >= 1000) {
      this.windowStartMs = startedMs;
      this.spentMs = 0;
    }
    if (this.spentMs >= this.budgetMs) return { result: "skipped", revision };
    try {
      const outcome = this.shadow.policy.evaluate(this.shadow.entrypoint, input);
      if (!outcome.defined) return { result: "error", revision };
      const answer = readPolicyAnswer(outcome.value);
      const reasons = answer.reasons.map((reason) => reason.code);
      const agree =
        answer.allow === decision.allow &&
        sameCodes(
          reasons,
          decision.reasons.map((reason) => reason.code),
        );
      return { result: agree ? "agree" : "disagree", revision, decision: answer.allow, reasons };
    } catch {
      return { result: "error", revision };
    } finally {
      this.spentMs += performance.now() - startedMs;
    }
  }
}

function sameCodes(a: readonly string[], b: readonly string[]): boolean {
  const left = [...new Set(a)].sort();
  const right = [...new Set(b)].sort();
  return left.length === right.length && left.every((code, i) => code === right[i]);
}

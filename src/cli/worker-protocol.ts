import type { ApiResponse } from "../api/api-types.ts";
import type { Config } from "../config/index.ts";
import type { Readiness } from "../http/ops-handlers.ts";
import type { MetricsSnapshot } from "../observability/metrics.ts";
import type { ActivationTrigger, PolicySourceName } from "../policy/policy-holder.ts";
import type { PolicySnapshot } from "../policy/policy-loader.ts";

/**
 * The messages between the main thread and its worker threads. Everything in
 * them is structured-clonable: a compiled WebAssembly.Module crosses as it is,
 * so a worker instantiates the module the main thread compiled and checked.
 */

/** A worker's `workerData`: what it needs to build its app and listen. */
export interface WorkerStart {
  worker: number;
  config: Config;
  /** The port the main thread bound (PORT=0 resolved): every worker listens on it too. */
  port: number;
  policy: PolicySnapshot;
  source: PolicySourceName;
  /** Hand decision lines to the main thread (the destination is a pipe: line-relay.ts). */
  relayDecisionLines: boolean;
}

/** What a worker asks the main thread; answered with the main thread's own handlers. */
export type CoordinatorQuestion = "readiness" | "status" | "reload" | "exposition";

export interface CoordinatorReply {
  readiness: Readiness;
  status: ApiResponse;
  reload: ApiResponse;
  exposition: string;
}

export type ToWorker =
  /** Serve this policy from now on; answered with `activated`. */
  | {
      type: "activate";
      policy: PolicySnapshot;
      source: PolicySourceName;
      trigger: ActivationTrigger;
    }
  /** Send your registry's metrics (`metrics` with the same id). */
  | { type: "metrics"; id: number }
  /** The answer to a `question`: its value, or why the main thread could not answer. */
  | { type: "answer"; id: number; value: unknown; error?: string }
  /** What became of relayed decision lines `id`: written, or the error. */
  | { type: "lines-written"; id: number; error?: { code: string | undefined; message: string } }
  /** SIGTERM reached the main thread: every answer closes its connection from now on. */
  | { type: "drain" }
  /** Stop accepting, let in-flight requests finish (`timeoutMs` at most), then end. */
  | { type: "close"; timeoutMs: number };

export type FromWorker =
  /** Listening, deciding with this policy (its digest tells a republished revision apart). */
  | { type: "listening"; revision: string; digest: string }
  /** The worker cannot serve (its app or listener refused to start); it ends next. */
  | { type: "failed"; code: string | undefined; problems: string[] }
  | { type: "activated"; revision: string; digest: string }
  | { type: "metrics"; id: number; snapshot: MetricsSnapshot }
  | { type: "question"; id: number; what: CoordinatorQuestion }
  /** Decision lines for the main thread to write (relayDecisionLines). */
  | { type: "decision-lines"; id: number; text: string };

import { extname } from "node:path";
import { Worker } from "node:worker_threads";
import type { CoordinatorAnswers, WorkerGroup } from "../app.ts";
import type { Config } from "../config/index.ts";
import { StartupError, startupErrorCodes, type StartupErrorCode } from "../errors.ts";
import type { LineWriter } from "../observability/log-destination.ts";
import type { Logger } from "../observability/logger.ts";
import { retireSnapshot, type Metrics, type MetricsSnapshot } from "../observability/metrics.ts";
import type { ActivationTrigger, PolicySourceName } from "../policy/policy-holder.ts";
import { policySnapshot, type ActivePolicy } from "../policy/policy-loader.ts";
import type { CoordinatorQuestion, FromWorker, ToWorker, WorkerStart } from "./worker-protocol.ts";

/** The worker entry beside this module: `.ts` when run from source, `.js` when built. */
const workerEntry = new URL(
  `./serve-worker${extname(new URL(import.meta.url).pathname)}`,
  import.meta.url,
);

export interface WorkerPoolOptions {
  /** Worker threads to run beside the main thread (PDP_WORKERS − 1). */
  count: number;
  config: Config;
  logger: Logger;
  metrics: Metrics;
  /** The main thread's answers to what a worker asks (its readiness, /v1/status, …). */
  answers: () => CoordinatorAnswers;
  /** The policy the main thread serves now: a new or replaced worker starts on it. */
  current: () => { active: ActivePolicy; source: PolicySourceName };
  /** How long a worker may take to switch to an activated policy before it is replaced. */
  activationTimeoutMs?: number;
  /** How long a scrape waits for a worker's metrics. */
  metricsTimeoutMs?: number;
  /** The worker's module: serve-worker by default (tests give one that misbehaves on purpose). */
  entry?: URL;
  /**
   * Where the workers' decision lines are written when they hand them over
   * (the main thread's own writer of the destination, so that lines go out one
   * after another); undefined: each worker writes its destination itself.
   */
  decisionLines?: () => LineWriter | undefined;
}

interface Thread {
  worker: number;
  thread: Worker;
  /**
   * What it last said it decides with; undefined until it listens. Compared by
   * digest: a bundle republished under the same revision is another policy.
   */
  serving: { revision: string; digest: string } | undefined;
  startedAt: number;
  /** Asked to end (closing, or replaced for missing an activation): its exit is no surprise. */
  retiring: boolean;
  /** Its metrics at the last scrape: kept when it ends, so the process's counters never drop. */
  lastMetrics: MetricsSnapshot | undefined;
}

/**
 * The worker threads serving the main port beside the main thread, each with
 * its own app and wasm instance (of the module the main thread compiled) and
 * a listener on the same port (SO_REUSEPORT: the kernel spreads connections).
 * The main thread's policy reaches every worker when activated; a worker that
 * has not switched within the activation timeout, or that ends unasked, is
 * replaced by a new one started on the active policy, counted and logged.
 */
export class WorkerPool implements WorkerGroup {
  private readonly options: WorkerPoolOptions;
  private readonly activationTimeoutMs: number;
  private readonly threads = new Map<number, Thread>();
  private readonly pendingMetrics = new Map<number, (snapshot: MetricsSnapshot) => void>();
  /** Called whenever a worker's revision or the set of workers changes. */
  private readonly changeListeners = new Set<() => void>();
  private nextRequestId = 1;
  /** Replacements waiting for their start (after a pause when the worker died young). */
  private readonly respawns = new Set<NodeJS.Timeout>();
  /** The counters and histograms of the workers that ended, as last scraped. */
  private retired: Promise<MetricsSnapshot | undefined> = Promise.resolve(undefined);
  private port = 0;
  private closing = false;
  private started = false;

  constructor(options: WorkerPoolOptions) {
    this.options = options;
    this.activationTimeoutMs = options.activationTimeoutMs ?? 10000;
  }

  /**
   * Starts every worker on `port` and resolves once all listen; a worker that
   * cannot start is a refusal of the whole start (StartupError), bounded.
   */
  async start(port: number): Promise<void> {
    this.port = port;
    const starts: Promise<void>[] = [];
    for (let worker = 1; worker <= this.options.count; worker++) {
      starts.push(this.spawn(worker));
    }
    try {
      await Promise.all(starts);
    } finally {
      this.started = true;
    }
  }

  /** Whether every worker has listened once (until then /ready says so). */
  get ready(): boolean {
    return this.started;
  }

  revisions(): ReadonlyMap<number, string> {
    const revisions = new Map<number, string>();
    for (const [worker, thread] of this.threads) {
      if (thread.serving !== undefined && !thread.retiring) {
        revisions.set(worker, thread.serving.revision);
      }
    }
    return revisions;
  }

  /** Sends the activated policy to every worker; one that has not switched in time is replaced. */
  activate(active: ActivePolicy, source: PolicySourceName, trigger: ActivationTrigger): void {
    const message: ToWorker = { type: "activate", policy: policySnapshot(active), source, trigger };
    // Only these two outlive the call: the deadline must not hold the policy itself for 10 s.
    const { digest, revision } = active;
    for (const thread of this.threads.values()) {
      if (!thread.retiring) thread.thread.postMessage(message);
    }
    const deadline = setTimeout(() => {
      for (const thread of this.threads.values()) {
        if (thread.retiring || thread.serving === undefined) continue;
        // Replaced only while this policy is still the one to serve.
        if (this.options.current().active.digest !== digest) return;
        if (thread.serving.digest === digest) continue;
        this.options.logger.error("worker did not switch to the activated policy: replaced", {
          worker: thread.worker,
          revision: thread.serving.revision,
          activated: revision,
          timeout_ms: this.activationTimeoutMs,
        });
        this.replace(thread);
      }
    }, this.activationTimeoutMs);
    deadline.unref();
  }

  settled(digest: string): Promise<void> {
    // Bounded: past the activation timeout a laggard is replaced and its replacement starts on
    // the active policy; the margin covers that start.
    const limitMs = this.activationTimeoutMs + 5000;
    return new Promise((resolve) => {
      const check = (): void => {
        // Every worker, a replacement included, listening on this policy.
        const serving = [...this.threads.values()].filter(
          (t) => !t.retiring && t.serving?.digest === digest,
        );
        if (serving.length === this.options.count || this.closing) done();
      };
      const timer = setTimeout(() => {
        done();
      }, limitMs);
      timer.unref();
      const done = (): void => {
        clearTimeout(timer);
        this.changeListeners.delete(check);
        resolve();
      };
      this.changeListeners.add(check);
      check();
    });
  }

  async metrics(): Promise<MetricsSnapshot[]> {
    const timeoutMs = this.options.metricsTimeoutMs ?? 5000;
    const asked = [...this.threads.values()]
      .filter((t) => t.serving !== undefined && !t.retiring)
      .map(
        (thread) =>
          new Promise<MetricsSnapshot | undefined>((resolve) => {
            const id = this.nextRequestId++;
            const timer = setTimeout(() => {
              this.pendingMetrics.delete(id);
              this.options.logger.warn("worker sent no metrics in time: left out of this scrape", {
                worker: thread.worker,
                timeout_ms: timeoutMs,
              });
              resolve(undefined);
            }, timeoutMs);
            this.pendingMetrics.set(id, (snapshot) => {
              clearTimeout(timer);
              thread.lastMetrics = snapshot;
              resolve(snapshot);
            });
            thread.thread.postMessage({ type: "metrics", id } satisfies ToWorker);
          }),
      );
    const snapshots = (await Promise.all(asked)).filter((s) => s !== undefined);
    const retired = await this.retired;
    return retired === undefined ? snapshots : [...snapshots, retired];
  }

  /** SIGTERM: every worker's answers close their connections from now on. */
  drain(): void {
    for (const thread of this.threads.values()) {
      thread.thread.postMessage({ type: "drain" } satisfies ToWorker);
    }
  }

  /** Every worker stops accepting and finishes its in-flight requests; resolves once all ended. */
  async close(timeoutMs: number): Promise<void> {
    this.closing = true;
    for (const timer of this.respawns) clearTimeout(timer);
    this.respawns.clear();
    const exits = [...this.threads.values()].map(async (thread) => {
      thread.retiring = true;
      const ended = new Promise<void>((resolve) => {
        thread.thread.once("exit", () => {
          resolve();
        });
      });
      thread.thread.postMessage({ type: "close", timeoutMs } satisfies ToWorker);
      // Bounded: a worker that does not end after its own deadline is stopped.
      const kill = setTimeout(() => void thread.thread.terminate(), timeoutMs + 1000);
      await ended;
      clearTimeout(kill);
    });
    await Promise.all(exits);
  }

  private spawn(worker: number): Promise<void> {
    const { active, source } = this.options.current();
    const start: WorkerStart = {
      worker,
      config: this.options.config,
      port: this.port,
      policy: policySnapshot(active),
      source,
      relayDecisionLines: this.options.decisionLines?.() !== undefined,
    };
    const thread = new Worker(this.options.entry ?? workerEntry, { workerData: start });
    const entry: Thread = {
      worker,
      thread,
      serving: undefined,
      startedAt: Date.now(),
      retiring: false,
      lastMetrics: undefined,
    };
    this.threads.set(worker, entry);
    return new Promise((resolve, reject) => {
      let settled = false;
      const settle = (error?: Error): void => {
        if (settled) return;
        settled = true;
        if (error === undefined) resolve();
        else reject(error);
      };
      thread.on("message", (message: FromWorker) => {
        this.receive(entry, message, settle);
      });
      // An uncaught exception in the worker: it ends next (its exit replaces it).
      thread.on("error", (error: unknown) => {
        const text = error instanceof Error ? (error.stack ?? error.message) : String(error);
        this.options.logger.error("worker failed", { worker, error: text });
        settle(new StartupError("worker_failed", [`worker ${worker}: ${text}`]));
      });
      thread.on("exit", (code) => {
        settle(new StartupError("worker_failed", [`worker ${worker} ended (exit code ${code})`]));
        this.ended(entry, code);
      });
    });
  }

  private receive(entry: Thread, message: FromWorker, settle: (error?: Error) => void): void {
    switch (message.type) {
      case "listening":
        entry.serving = { revision: message.revision, digest: message.digest };
        this.changed();
        settle();
        return;
      case "failed":
        this.options.logger.error("worker cannot start", {
          worker: entry.worker,
          code: message.code ?? null,
          problems: message.problems,
        });
        // The worker's own refusal (its log destination, its TLS files…) is the start's.
        settle(new StartupError(startupCodeOf(message.code), message.problems));
        return;
      case "activated":
        entry.serving = { revision: message.revision, digest: message.digest };
        this.changed();
        return;
      case "metrics":
        this.pendingMetrics.get(message.id)?.(message.snapshot);
        this.pendingMetrics.delete(message.id);
        return;
      case "question":
        void this.answer(entry, message.id, message.what);
        return;
      case "decision-lines":
        this.writeLines(entry, message.id, message.text);
        return;
    }
  }

  private async answer(entry: Thread, id: number, what: CoordinatorQuestion): Promise<void> {
    const answers = this.options.answers();
    let value: unknown;
    let failure: string | undefined;
    try {
      value =
        what === "readiness"
          ? answers.readiness()
          : what === "status"
            ? answers.status()
            : what === "reload"
              ? await answers.reload()
              : await answers.exposition();
    } catch (error) {
      this.options.logger.error("answering a worker failed", {
        worker: entry.worker,
        question: what,
        error: error instanceof Error ? error.stack : String(error),
      });
      failure = error instanceof Error ? error.message : String(error);
    }
    const reply: ToWorker =
      failure === undefined
        ? { type: "answer", id, value }
        : { type: "answer", id, value: undefined, error: failure };
    entry.thread.postMessage(reply);
  }

  private writeLines(entry: Thread, id: number, text: string): void {
    const writer = this.options.decisionLines?.();
    const settle = (error: { code: string | undefined; message: string } | undefined): void => {
      const reply: ToWorker =
        error === undefined ? { type: "lines-written", id } : { type: "lines-written", id, error };
      entry.thread.postMessage(reply);
    };
    if (writer === undefined) {
      settle({ code: undefined, message: "the main thread has no decision log to write to" });
      return;
    }
    writer.write(text, (error) => {
      settle(error === undefined ? undefined : { code: error.code, message: error.message });
    });
  }

  private ended(entry: Thread, code: number): void {
    if (this.threads.get(entry.worker) === entry) this.threads.delete(entry.worker);
    const last = entry.lastMetrics;
    if (last !== undefined) {
      // What it counted after the last scrape is lost with it; what a scrape saw stays.
      this.retired = this.retired.then((retired) => retireSnapshot(retired, last));
    }
    this.changed();
    if (this.closing) return;
    this.options.metrics.recordWorkerRestart();
    if (!entry.retiring) {
      this.options.logger.error("worker ended unasked: replaced", {
        worker: entry.worker,
        exit_code: code,
      });
    }
    // A worker that dies at once is not restarted in a tight loop; one replaced for lagging is.
    const delayMs = !entry.retiring && Date.now() - entry.startedAt < 5000 ? 1000 : 0;
    // Referenced: a replacement due is work to do (the pool's own process must not end before
    // it, with no listener left to hold it); close() cancels it.
    const again = setTimeout(() => {
      this.respawns.delete(again);
      if (this.closing) return;
      this.spawn(entry.worker).catch((error: unknown) => {
        this.options.logger.error("replacement worker cannot start", {
          worker: entry.worker,
          error: error instanceof Error ? error.message : String(error),
        });
      });
    }, delayMs);
    this.respawns.add(again);
  }

  private replace(thread: Thread): void {
    thread.retiring = true;
    this.changed();
    void thread.thread.terminate();
  }

  private changed(): void {
    for (const listener of [...this.changeListeners]) listener();
  }
}

function startupCodeOf(code: string | undefined): StartupErrorCode {
  const known: readonly string[] = startupErrorCodes;
  return code !== undefined && known.includes(code) ? (code as StartupErrorCode) : "worker_failed";
}

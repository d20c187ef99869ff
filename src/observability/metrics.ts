import { getHeapStatistics } from "node:v8";
import {
  AggregatorRegistry,
  Counter,
  Gauge,
  Histogram,
  Registry,
  collectDefaultMetrics,
  type MetricObjectWithValues,
  type MetricValue,
} from "prom-client";
import { startupErrorCodes } from "../errors.ts";
import { policySourceNames, type PolicySourceName } from "../policy/policy-holder.ts";
import { droppedRecordReasons, type DroppedRecordReason } from "./decision-log.ts";

/** Every metric the PDP exports is declared here, under this prefix. */
export const metricsPrefix = "mcp_pdp_";

/** Seconds, resolving microsecond evaluations through multi-second stalls. */
const latencyBuckets = [
  0.000005, 0.00001, 0.000025, 0.00005, 0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025,
  0.05, 0.1, 0.25, 0.5, 1, 2.5, 5,
];

/** Routes that may appear as a `route` label. */
export type RouteLabel =
  | "evaluation"
  | "evaluations"
  | "search"
  | "forward_auth"
  | "opa_data"
  | "metadata"
  | "health"
  | "ready"
  | "status"
  | "policy_reload"
  | "metrics"
  | "other";

export interface MetricsOptions {
  /** Values allowed as labels, beyond which everything folds into `other`. */
  riskClasses: readonly string[];
  reasonCodes: readonly string[];
  /** MCP methods allowed as the `action` label. */
  actions: readonly string[];
  /** `<server>/<tool>` names the operator wants as labels (default: none). */
  toolLabels: readonly string[];
  /** Client ids the operator wants as labels (default: none). */
  clientLabels: readonly string[];
  /**
   * Collect Node process and event-loop metrics (off in tests that count
   * series, and in worker threads: the process is one, its main thread reports it).
   */
  processMetrics?: boolean;
  /** Which thread serves with these metrics: 0 the main thread, 1… worker threads. */
  worker?: number;
}

/** One registry's metrics as prom-client gives them (`getMetricsAsJSON`), to post between threads. */
export type MetricsSnapshot = MetricObjectWithValues<MetricValue<string>>[];

/**
 * The Prometheus text of several threads' registries as one process: counters
 * summed, histograms merged bucket by bucket, gauges by each one's
 * `aggregator` (sum unless declared otherwise); series labelled `worker` stay apart.
 */
export async function mergedExposition(snapshots: readonly MetricsSnapshot[]): Promise<string> {
  return AggregatorRegistry.aggregate([...snapshots]).metrics();
}

/**
 * What a thread that ended still contributes: its counters and histograms as
 * last seen, folded into `retired` (its gauges described it, and it is gone).
 * Kept so that the process's counters never go down when a worker is replaced.
 */
export async function retireSnapshot(
  retired: MetricsSnapshot | undefined,
  last: MetricsSnapshot,
): Promise<MetricsSnapshot> {
  // prom-client's typings say an enum; its JSON says "counter", "gauge", "histogram".
  const cumulative = last.filter((metric) => String(metric.type) !== "gauge");
  if (retired === undefined) return cumulative;
  return AggregatorRegistry.aggregate([retired, cumulative]).getMetricsAsJSON();
}

/** What one decision contributes to the metrics. */
export interface DecisionSample {
  allow: boolean;
  action: string;
  risk: string | undefined;
  reasons: readonly string[];
  tool: string | undefined;
  clientId: string | undefined;
  /** Policy evaluation alone, in seconds. */
  evaluationSeconds: number;
}

/**
 * The PDP's Prometheus metrics. Label values are bounded: anything not on an
 * allow-list (risk classes, reason codes and MCP methods the policy bundle
 * names, operator-chosen tools and clients) is counted as `other`, so hostile
 * or merely numerous tool names cannot grow the series count.
 */
export class Metrics {
  readonly registry = new Registry();
  // Replaced whole when a policy is activated: its bundle names them (setPolicyLabels).
  private risks: ReadonlySet<string>;
  private reasons: ReadonlySet<string>;
  private actions: ReadonlySet<string>;
  private readonly tools: ReadonlySet<string>;
  private readonly clients: ReadonlySet<string>;

  private readonly decisions: Counter<"outcome" | "risk" | "action">;
  private readonly decisionReasons: Counter<"reason">;
  private readonly toolDecisions: Counter<"tool" | "outcome">;
  private readonly clientDecisions: Counter<"client" | "outcome">;
  private readonly evaluationSeconds: Histogram;
  private readonly requestSeconds: Histogram<"route">;
  private readonly httpRequests: Counter<"route" | "method" | "status">;
  private readonly bundleInfo: Gauge<"revision" | "entrypoint">;
  private readonly bundleLoadedAt: Gauge;
  private readonly bundleLoadFailures: Counter<"source" | "reason">;
  private readonly bundleActivations: Counter<"source">;
  private readonly shadowDecisions: Counter<"result">;
  private successAges: () => ReadonlyMap<PolicySourceName, number> = () => new Map();
  private readonly unhandledRejections: Counter;
  private readonly tokenVerifications: Counter<"result">;
  private readonly jwksFetches: Counter<"issuer" | "outcome">;
  private readonly callerAuthFailures: Counter<"reason">;
  private readonly droppedDecisionRecords: Counter<"reason">;
  private readonly truncatedDecisionRecords: Counter;
  private readonly dataQueries: Counter<"endpoint" | "result">;
  private readonly workerRequests: Counter<"worker">;
  private readonly worker: string;
  private readonly workerRestarts: Counter;
  private threadRevisions: () => ReadonlyMap<number, string> = () => new Map();
  private readonly issuers = new Set<string>();

  constructor(options: MetricsOptions) {
    this.risks = new Set();
    this.reasons = new Set();
    this.actions = new Set();
    this.setPolicyLabels(options);
    this.tools = new Set(options.toolLabels);
    this.clients = new Set(options.clientLabels);
    const registers = [this.registry];
    const name = (suffix: string) => `${metricsPrefix}${suffix}`;

    this.decisions = new Counter({
      name: name("decisions_total"),
      help: "Decisions by outcome (allow or deny), resolved risk class and MCP method.",
      labelNames: ["outcome", "risk", "action"],
      registers,
    });
    this.decisionReasons = new Counter({
      name: name("decision_reasons_total"),
      help: "Reason codes of denied decisions (a decision with several reasons counts each).",
      labelNames: ["reason"],
      registers,
    });
    this.toolDecisions = new Counter({
      name: name("tool_decisions_total"),
      help: "Decisions per <server>/<tool>, for the tools the operator allow-lists; others are 'other'.",
      labelNames: ["tool", "outcome"],
      registers,
    });
    this.clientDecisions = new Counter({
      name: name("client_decisions_total"),
      help: "Decisions per OAuth client id, for the clients the operator allow-lists; others are 'other'.",
      labelNames: ["client", "outcome"],
      registers,
    });
    this.evaluationSeconds = new Histogram({
      name: name("evaluation_duration_seconds"),
      help: "Time of one policy evaluation (input building, wasm evaluation, result reading).",
      buckets: latencyBuckets,
      registers,
    });
    this.requestSeconds = new Histogram({
      name: name("http_request_duration_seconds"),
      help: "Time of a whole HTTP request, from the first byte read to the answer written.",
      labelNames: ["route"],
      buckets: latencyBuckets,
      registers,
    });
    this.httpRequests = new Counter({
      name: name("http_requests_total"),
      help: "HTTP requests by route, method and status.",
      labelNames: ["route", "method", "status"],
      registers,
    });
    // Set by the main thread only (a worker's are empty, its unlabelled gauge 0): merged with
    // max, the main thread's value.
    this.bundleInfo = new Gauge({
      name: name("bundle_info"),
      help: "The active policy bundle (value 1): its revision and decision entrypoint.",
      labelNames: ["revision", "entrypoint"],
      aggregator: "max",
      registers,
    });
    this.bundleLoadedAt = new Gauge({
      name: name("bundle_loaded_timestamp_seconds"),
      help: "When the active policy was activated (Unix time).",
      aggregator: "max",
      registers,
    });
    this.bundleLoadFailures = new Counter({
      name: name("bundle_load_failures_total"),
      help: "Candidate policies refused (the active one kept), by source and reason code.",
      labelNames: ["source", "reason"],
      registers,
    });
    // Every source and startup-check reason from the start, so rate() and alerts see the first
    // refusal; other registry codes (a bundle service's) appear when they first happen.
    for (const source of policySourceNames) {
      for (const reason of [...startupErrorCodes, "load_failed"]) {
        this.bundleLoadFailures.inc({ source, reason }, 0);
      }
    }
    this.bundleActivations = new Counter({
      name: name("bundle_activations_total"),
      help: "Candidate policies activated after startup, by source (an unchanged candidate is not one).",
      labelNames: ["source"],
      registers,
    });
    for (const source of policySourceNames) this.bundleActivations.inc({ source }, 0);
    this.shadowDecisions = new Counter({
      name: name("shadow_decisions_total"),
      help: "Sampled decisions also evaluated on the shadow policy: agree, disagree (outcome or reason codes), error, or skipped (over the shadow's time budget).",
      labelNames: ["result"],
      registers,
    });
    for (const result of ["agree", "disagree", "error", "skipped"]) {
      this.shadowDecisions.inc({ result }, 0);
    }
    const ages = () => this.successAges();
    new Gauge({
      name: name("bundle_last_success_age_seconds"),
      help: "Seconds since each policy source was last checked successfully (the staleness signal).",
      labelNames: ["source"],
      aggregator: "max",
      registers,
      // Computed at scrape time from the PDP's clock.
      collect() {
        this.reset();
        for (const [source, ms] of ages()) this.set({ source }, ms / 1000);
      },
    });
    this.unhandledRejections = new Counter({
      name: name("unhandled_rejections_total"),
      help: "Promise rejections nothing handled (bugs); the process logs each and keeps serving.",
      registers,
    });
    this.tokenVerifications = new Counter({
      name: name("token_verifications_total"),
      help: "Bearer token verifications by result: valid, or the token_* / jwks_unavailable reason.",
      labelNames: ["result"],
      registers,
    });
    this.jwksFetches = new Counter({
      name: name("jwks_fetches_total"),
      help: "JWKS fetches by issuer and outcome (success or failure).",
      labelNames: ["issuer", "outcome"],
      registers,
    });
    this.callerAuthFailures = new Counter({
      name: name("caller_auth_failures_total"),
      help: "Requests refused because the PDP's caller was not authenticated or not permitted.",
      labelNames: ["reason"],
      registers,
    });
    this.droppedDecisionRecords = new Counter({
      name: name("decision_records_dropped_total"),
      help: "Decision records lost: the destination fell too far behind (backpressure), refused the write (write_error), or the record was not serializable (serialize_error).",
      labelNames: ["reason"],
      registers,
    });
    // Every reason is exported from the start, so that rate() and alerts see the first loss.
    for (const reason of droppedRecordReasons) this.droppedDecisionRecords.inc({ reason }, 0);
    this.truncatedDecisionRecords = new Counter({
      name: name("decision_record_truncations_total"),
      help: "Decision records in which values were replaced by [TRUNCATED] to keep the record within PDP_DECISION_LOG_MAX_RECORD_BYTES.",
      registers,
    });
    this.dataQueries = new Counter({
      name: name("data_queries_total"),
      help: "OPA Data API queries by endpoint (opa_data) and result: defined, undefined, or error (answered 500).",
      labelNames: ["endpoint", "result"],
      registers,
    });
    this.worker = String(options.worker ?? 0);
    this.workerRequests = new Counter({
      name: name("worker_http_requests_total"),
      help: "HTTP requests served by each worker (0 is the main thread): how evenly connections spread.",
      labelNames: ["worker"],
      registers,
    });
    this.workerRequests.inc({ worker: this.worker }, 0);
    const worker = this.worker;
    new Gauge({
      name: name("worker_heap_used_bytes"),
      help: "V8 heap in use, per worker (each thread has its own heap; 0 is the main thread).",
      labelNames: ["worker"],
      registers,
      collect() {
        this.set({ worker }, getHeapStatistics().used_heap_size);
      },
    });
    // Read at scrape time on the main thread, which supervises the workers (readThreads);
    // a worker thread reports none, so the merged view is the main thread's.
    const threads = () => this.threadRevisions();
    new Gauge({
      name: name("workers"),
      help: "Threads serving the main listener (PDP_WORKERS): the main thread and its running worker threads.",
      registers,
      collect() {
        this.set(threads().size);
      },
    });
    new Gauge({
      name: name("worker_policy_info"),
      help: "The revision each thread decides with (value 1); 0 is the main thread.",
      labelNames: ["worker", "revision"],
      registers,
      collect() {
        this.reset();
        for (const [worker, revision] of threads())
          this.set({ worker: String(worker), revision }, 1);
      },
    });
    this.workerRestarts = new Counter({
      name: name("worker_restarts_total"),
      help: "Worker threads that ended unasked (or missed an activation) and were replaced.",
      registers,
    });
    if (options.processMetrics !== false) {
      collectDefaultMetrics({ register: this.registry, prefix: metricsPrefix });
      // prom-client names these gauges *_total, which Prometheus reserves for counters
      // (promtool check metrics refuses them); the *_resources/handles gauges say the same.
      for (const gauge of [
        "active_handles_total",
        "active_requests_total",
        "active_resources_total",
      ]) {
        this.registry.removeSingleMetric(`${metricsPrefix}nodejs_${gauge}`);
      }
    }
  }

  recordDecision(sample: DecisionSample): void {
    const outcome = sample.allow ? "allow" : "deny";
    const risk = sample.risk === undefined ? "none" : this.fold(this.risks, sample.risk);
    const action = this.fold(this.actions, sample.action);
    this.decisions.inc({ outcome, risk, action });
    for (const reason of sample.reasons)
      this.decisionReasons.inc({ reason: this.fold(this.reasons, reason) });
    if (sample.tool !== undefined)
      this.toolDecisions.inc({ tool: this.fold(this.tools, sample.tool), outcome });
    if (sample.clientId !== undefined) {
      this.clientDecisions.inc({ client: this.fold(this.clients, sample.clientId), outcome });
    }
    this.evaluationSeconds.observe(sample.evaluationSeconds);
  }

  recordHttp(route: RouteLabel, method: string, status: number, seconds: number): void {
    const knownMethod = ["GET", "POST", "PUT", "DELETE", "PATCH", "HEAD", "OPTIONS"].includes(
      method,
    )
      ? method
      : "other";
    this.httpRequests.inc({ route, method: knownMethod, status: String(status) });
    this.workerRequests.inc({ worker: this.worker });
    this.requestSeconds.observe({ route }, seconds);
  }

  /** Where the main thread's gauges read each serving thread's revision when scraped. */
  readThreads(revisions: () => ReadonlyMap<number, string>): void {
    this.threadRevisions = revisions;
  }

  recordWorkerRestart(): void {
    this.workerRestarts.inc();
  }

  recordUnhandledRejection(): void {
    this.unhandledRejections.inc();
  }

  setBundle(revision: string, entrypoint: string, activatedAtMs: number): void {
    this.bundleInfo.reset();
    this.bundleInfo.set({ revision, entrypoint }, 1);
    this.bundleLoadedAt.set(activatedAtMs / 1000);
  }

  /** The label values of the active policy: what it does not name folds into `other`. */
  setPolicyLabels(labels: {
    riskClasses: readonly string[];
    reasonCodes: readonly string[];
    actions: readonly string[];
  }): void {
    this.risks = new Set([...labels.riskClasses, "none"]);
    this.reasons = new Set(labels.reasonCodes);
    this.actions = new Set(labels.actions);
  }

  /** Where the staleness gauge reads each source's age (ms) when scraped. */
  readSuccessAges(ages: () => ReadonlyMap<PolicySourceName, number>): void {
    this.successAges = ages;
  }

  /** `reason` is a registry code or `load_failed`, so bounded. */
  recordBundleLoadFailure(source: PolicySourceName, reason: string): void {
    this.bundleLoadFailures.inc({ source, reason });
  }

  recordShadowDecision(result: "agree" | "disagree" | "error" | "skipped"): void {
    this.shadowDecisions.inc({ result });
  }

  recordBundleActivation(source: PolicySourceName): void {
    this.bundleActivations.inc({ source });
  }

  recordTokenVerification(result: string): void {
    this.tokenVerifications.inc({
      result: result === "valid" ? result : this.fold(this.reasons, result),
    });
  }

  /** Issuers are configured, so bounded; they are registered before use. */
  registerIssuer(issuer: string): void {
    this.issuers.add(issuer);
  }

  recordJwksFetch(issuer: string, ok: boolean): void {
    this.jwksFetches.inc({
      issuer: this.fold(this.issuers, issuer),
      outcome: ok ? "success" : "failure",
    });
  }

  recordDroppedDecisionRecord(reason: DroppedRecordReason): void {
    this.droppedDecisionRecords.inc({ reason });
  }

  /**
   * One query of the OPA Data API; the time of its evaluation joins the
   * decisions' histogram (undefined when nothing was evaluated: the path named
   * no entrypoint).
   */
  recordDataQuery(
    result: "defined" | "undefined" | "error",
    evaluationSeconds: number | undefined,
  ): void {
    this.dataQueries.inc({ endpoint: "opa_data", result });
    if (evaluationSeconds !== undefined) this.evaluationSeconds.observe(evaluationSeconds);
  }

  recordTruncatedDecisionRecord(): void {
    this.truncatedDecisionRecords.inc();
  }

  recordCallerAuthFailure(reason: string): void {
    this.callerAuthFailures.inc({ reason });
  }

  private fold(allowed: ReadonlySet<string>, value: string): string {
    return allowed.has(value) ? value : "other";
  }
}

import type { ObservabilityConfig } from "../config/index.ts";
import type { Clock } from "../decision/decision-engine.ts";
import { policyDeniedCode } from "../decision/result-reader.ts";
import { evaluationErrorCodes, tokenErrorCodes } from "../errors.ts";
import type { ActivePolicy } from "../policy/policy-loader.ts";
import { JsonLinesDecisionLog, noDecisionLog, type DecisionLog } from "./decision-log.ts";
import { RecordingDecisionObserver, type DecisionObserver } from "./decision-observer.ts";
import { FailureReporter, openLineWriter, type LineWriter } from "./log-destination.ts";
import type { Logger } from "./logger.ts";
import { Metrics } from "./metrics.ts";

/**
 * Reason codes the PDP itself gives (a token that failed, an evaluation that
 * failed closed, a deny without reasons), from the error registry: always
 * label values. The policy's own come from its bundle (policyLabels).
 */
export const pdpReasonCodes: readonly string[] = [
  policyDeniedCode,
  ...evaluationErrorCodes,
  ...tokenErrorCodes,
];

/** The label values a policy bundle names for its reasons and actions. */
export interface PolicyLabels {
  riskClasses: string[];
  reasonCodes: string[];
  actions: string[];
}

/**
 * The metric label values the active policy names in its data: its risk
 * classes (`risk_order`), reason codes and MCP methods (`metric_labels.reason`,
 * `metric_labels.action`, rego/data.json). Anything that is not a list of
 * strings names nothing, so a bundle without them folds its values into
 * `other`: the label sets stay bounded by the bundle and operator data.
 */
export function policyLabels(data: Record<string, unknown>): PolicyLabels {
  const labels = isObject(data.metric_labels) ? data.metric_labels : {};
  return {
    riskClasses: strings(data.risk_order),
    reasonCodes: strings(labels.reason),
    actions: strings(labels.action),
  };
}

function strings(value: unknown): string[] {
  return Array.isArray(value) ? value.filter((item) => typeof item === "string") : [];
}

function isObject(value: unknown): value is Record<string, unknown> {
  return typeof value === "object" && value !== null && !Array.isArray(value);
}

export interface Observability {
  metrics: Metrics;
  observer: DecisionObserver;
  /** The decision log's destination, opened (undefined when off). */
  decisionLines: LineWriter | undefined;
}

/** Builds the metrics registry and the decision observer from configuration and the active policy. */
export function createObservability(
  config: ObservabilityConfig,
  active: ActivePolicy,
  options: {
    processMetrics?: boolean;
    /** The serving thread: 0 the main thread, 1… worker threads. */
    worker?: number;
    decisionLog?: DecisionLog;
    /**
     * Where the decision lines go instead of the configured destination,
     * opened by someone else (a worker thread's relay to the main thread).
     */
    decisionLines?: LineWriter;
    logger?: Logger;
    /** The PDP's clock: it stamps decision records. */
    clock: Clock;
  },
): Observability {
  const metrics = new Metrics({
    ...metricLabelsOf(active),
    toolLabels: config.toolLabels,
    clientLabels: config.clientLabels,
    ...(options.processMetrics === undefined ? {} : { processMetrics: options.processMetrics }),
    ...(options.worker === undefined ? {} : { worker: options.worker }),
  });
  // The bundle gauges are the main thread's: a worker (started later, or replaced) would
  // report its own start as the activation time.
  if ((options.worker ?? 0) === 0) {
    metrics.setBundle(active.revision, active.entrypoint, options.clock());
  }
  // Opened only when nothing replaces the log (`mcp-pdp check` opens no file).
  const writer =
    config.decisionLog === "off" || options.decisionLog !== undefined
      ? undefined
      : (options.decisionLines ?? openLineWriter("PDP_DECISION_LOG", config.decisionLog));
  const log =
    options.decisionLog ??
    (writer === undefined || config.decisionLog === "off" // (narrows the destination's type)
      ? noDecisionLog
      : decisionLogFor(config.decisionLog, writer, metrics, options.logger));
  const observer = new RecordingDecisionObserver(metrics, log, {
    entrypoint: active.entrypoint,
    contextKeys: config.decisionLogContext,
    includeInput: config.decisionLogInput,
    erase: config.decisionLogErase,
    maxRecordBytes: config.decisionLogMaxRecordBytes,
    clock: options.clock,
  });
  return { metrics, observer, decisionLines: writer };
}

/** The label sets a policy gives the metrics: its own values and the PDP's reason codes. */
function metricLabelsOf(active: ActivePolicy): PolicyLabels {
  const labels = policyLabels(active.data);
  return { ...labels, reasonCodes: [...pdpReasonCodes, ...labels.reasonCodes] };
}

/** A worker thread's newly activated policy: the label sets its bundle names. */
export function showPolicyLabels(metrics: Metrics, active: ActivePolicy): void {
  metrics.setPolicyLabels(metricLabelsOf(active));
}

/**
 * A newly activated policy in the metrics: `bundle_info`, the activation
 * time and the label sets its bundle names, replaced together.
 */
export function showActivePolicy(
  metrics: Metrics,
  active: ActivePolicy,
  activatedAtMs: number,
): void {
  metrics.setPolicyLabels(metricLabelsOf(active));
  metrics.setBundle(active.revision, active.entrypoint, activatedAtMs);
}

/**
 * The configured decision log on its destination, opened at startup
 * (StartupError when a file cannot be appended to). Every lost record is
 * counted by reason and reported in the diagnostics, at most one line per
 * 10 s summing the losses.
 */
function decisionLogFor(
  destination: Exclude<ObservabilityConfig["decisionLog"], "off">,
  writer: LineWriter,
  metrics: Metrics,
  logger: Logger | undefined,
): DecisionLog {
  const reporter = new FailureReporter((summary) => {
    logger?.error("decision records lost", {
      destination: "file" in destination ? destination.file : destination.stream,
      records: summary.counts,
      error: summary.lastError ?? null,
    });
  });
  return new JsonLinesDecisionLog(writer, {
    onDrop: (reason, error) => {
      metrics.recordDroppedDecisionRecord(reason);
      reporter.report(reason, error);
    },
  });
}

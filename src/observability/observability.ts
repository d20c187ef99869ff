import { tokenErrorCodes } from "../auth/token-error.js";
import type { ObservabilityConfig } from "../config/index.js";
import type { ActivePolicy } from "../policy/policy-loader.js";
import { JsonLinesDecisionLog, noDecisionLog, type DecisionLog } from "./decision-log.js";
import { RecordingDecisionObserver, type DecisionObserver } from "./decision-observer.js";
import { FailureReporter, openLineWriter } from "./log-destination.js";
import type { Logger } from "./logger.js";
import { Metrics } from "./metrics.js";

/** Reason codes the PDP and the default policy produce: the allowed `reason` label values. */
export const knownReasonCodes = [
  "method_unknown",
  "method_denied",
  "tool_unknown",
  "risk_class_undefined",
  "scope_missing",
  "device_untrusted",
  "auth_too_old",
  "acr_insufficient",
  "network_denied",
  "location_denied",
  "outside_hours",
  "policy_denied",
  "policy_undefined",
  "policy_result_invalid",
  "evaluation_error",
  "input_invalid",
  ...tokenErrorCodes,
];

export interface Observability {
  metrics: Metrics;
  observer: DecisionObserver;
}

/** Builds the metrics registry and the decision observer from configuration and the active policy. */
export function createObservability(
  config: ObservabilityConfig,
  active: ActivePolicy,
  options: { processMetrics?: boolean; decisionLog?: DecisionLog; logger?: Logger } = {},
): Observability {
  const riskOrder = active.data.risk_order;
  const metrics = new Metrics({
    riskClasses: Array.isArray(riskOrder) ? riskOrder.filter((c) => typeof c === "string") : [],
    reasonCodes: knownReasonCodes,
    toolLabels: config.toolLabels,
    clientLabels: config.clientLabels,
    ...(options.processMetrics === undefined ? {} : { processMetrics: options.processMetrics }),
  });
  metrics.setBundle(active.revision, active.entrypoint, active.loadedAt);
  const log = options.decisionLog ?? decisionLogFor(config.decisionLog, metrics, options.logger);
  const observer = new RecordingDecisionObserver(metrics, log, {
    entrypoint: active.entrypoint,
    contextKeys: config.decisionLogContext,
    includeInput: config.decisionLogInput,
    erase: config.decisionLogErase,
    maxRecordBytes: config.decisionLogMaxRecordBytes,
  });
  return { metrics, observer };
}

/**
 * The configured decision log, its destination opened now (StartupError when
 * a file cannot be appended to). Every lost record is counted by reason and
 * reported in the diagnostics, at most one line per 10 s summing the losses.
 */
function decisionLogFor(
  destination: ObservabilityConfig["decisionLog"],
  metrics: Metrics,
  logger: Logger | undefined,
): DecisionLog {
  if (destination === "off") return noDecisionLog;
  const writer = openLineWriter("PDP_DECISION_LOG", destination);
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

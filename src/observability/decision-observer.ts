import type { EntrypointAnswer } from "../decision/decision-engine.ts";
import type { AccessRequest, Decision } from "../decision/decision.ts";
import type { Clock } from "../decision/decision-engine.ts";
import { isRecording, type DecisionLog } from "./decision-log.ts";
import { eraseFields } from "./masking.ts";
import type { Metrics } from "./metrics.ts";
import { defaultMaxRecordBytes } from "../config/index.ts";
import { RecordBudget } from "./record-budget.ts";

/** The API that produced a decision. */
export type DecisionEndpoint =
  "evaluation" | "evaluations" | "search" | "forward_auth" | "opa_data";

/** Everything known about one decision once it is made. */
export interface DecisionEvent {
  decision: Decision;
  /** The request as the policy saw it, subject already verified. */
  request: AccessRequest;
  endpoint: DecisionEndpoint;
  /** The PDP caller's configured name (`anonymous` without caller authentication). */
  caller: string;
  requestId: string | undefined;
  traceId: string | undefined;
}

/** Everything known about one OPA Data API query once it is answered. */
export interface QueryEvent {
  answer: EntrypointAnswer;
  /** The path the client asked for under /v1/data (e.g. `mcp/authz/decision/allow`), OPA's `path`. */
  path: string;
  /** The input as sent; absent for a query without one. */
  input?: unknown;
  /** The document the client got (inside the entrypoint's result); absent when undefined or failed. */
  result?: unknown;
  caller: string;
  requestId: string | undefined;
  traceId: string | undefined;
}

/** Told about every decision and Data API query; the API layer calls it, the core never does. */
export interface DecisionObserver {
  decided(event: DecisionEvent): void;
  queried(event: QueryEvent): void;
}

export interface DecisionRecordOptions {
  /** The decision entrypoint, recorded as OPA's `path`. */
  entrypoint: string;
  /** Top-level `context` keys copied into the record (e.g. ip, device, location, session). */
  contextKeys: readonly string[];
  /** Whether the whole policy input goes into the record (as `input`, masked). */
  includeInput: boolean;
  /** JSON pointers removed from every record, e.g. `/input/resource/properties/arguments`. */
  erase: readonly string[];
  /** Largest record (bytes of JSON); larger values are replaced by `[TRUNCATED]` (record-budget.ts). */
  maxRecordBytes?: number;
  /** The PDP's clock, which stamps each record (the one the policy saw as context.time). */
  clock: Clock;
}

/**
 * Counts every decision in the metrics and writes one masked, bounded decision
 * record (configured fields erased here, values past the record budget
 * replaced, see record-budget.ts; token-like strings redacted when the record
 * is serialized, see masking.ts).
 * Records are shaped like OPA decision logs where the two overlap
 * (`decision_id`, `path`, `input`, `result`, `timestamp`, `bundles`,
 * `metrics`, `req_id`, `erased`), plus MCP fields at the top level.
 */
export class RecordingDecisionObserver implements DecisionObserver {
  private readonly metrics: Metrics;
  private readonly log: DecisionLog;
  private readonly options: DecisionRecordOptions;
  private readonly budget: RecordBudget;

  constructor(metrics: Metrics, log: DecisionLog, options: DecisionRecordOptions) {
    this.metrics = metrics;
    this.log = log;
    this.options = options;
    this.budget = new RecordBudget(
      options.maxRecordBytes ?? defaultMaxRecordBytes,
      options.contextKeys,
    );
  }

  decided(event: DecisionEvent): void {
    const { decision, request } = event;
    const subjectProperties = request.subject.properties ?? {};
    // The built input has the server split from a `<server>/<tool>` id; the request may not.
    const builtResource = (decision.input?.resource ?? request.resource) as typeof request.resource;
    const resourceProperties = builtResource.properties ?? {};
    const riskClass = decision.risk?.class;
    const server =
      typeof resourceProperties.server === "string" ? resourceProperties.server : undefined;
    const toolName =
      typeof resourceProperties.tool === "string" ? resourceProperties.tool : builtResource.id;
    const tool =
      builtResource.type === "tool" && toolName !== "" ? `${server ?? ""}/${toolName}` : undefined;
    const clientId =
      typeof subjectProperties.client_id === "string" ? subjectProperties.client_id : undefined;
    const reasons = decision.reasons.map((r) => r.code);

    this.metrics.recordDecision({
      allow: decision.allow,
      action: request.action.name,
      risk: riskClass,
      reasons: decision.allow ? [] : reasons,
      tool,
      clientId,
      evaluationSeconds: decision.evaluationSeconds,
    });
    if (decision.shadow !== undefined) this.metrics.recordShadowDecision(decision.shadow.result);
    if (!isRecording(this.log)) return;

    const context: Record<string, unknown> = {};
    for (const key of this.options.contextKeys) {
      const value = request.context?.[key];
      if (value !== undefined) context[key] = value;
    }
    const record: Record<string, unknown> = {
      log: "decision",
      decision_id: decision.id,
      timestamp: new Date(this.options.clock()).toISOString(),
      req_id: event.requestId ?? null,
      trace_id: event.traceId ?? null,
      path: this.options.entrypoint,
      endpoint: event.endpoint,
      caller: event.caller,
      subject: {
        type: request.subject.type,
        id: request.subject.id,
        authenticated: subjectProperties.authenticated === true,
        authentication: subjectProperties.authentication ?? null,
        issuer: subjectProperties.issuer ?? null,
        client_id: clientId ?? null,
        token_error: subjectProperties.token_error ?? null,
      },
      action: request.action.name,
      resource: { type: builtResource.type, id: builtResource.id, server: server ?? null },
      risk: decision.risk,
      outcome: decision.allow ? "allow" : "deny",
      reasons,
      obligations: decision.obligations,
      result: { allow: decision.allow, reasons, obligations: decision.obligations },
      revision: decision.revision,
      bundles: { default: { revision: decision.revision } },
      metrics: { timer_eval_ns: Math.round(decision.evaluationSeconds * 1e9) },
      context,
      // What the shadow policy would have answered (it changed nothing), when sampled.
      ...(decision.shadow === undefined ? {} : { shadow: decision.shadow }),
    };
    if (this.options.includeInput && decision.input !== undefined) record.input = decision.input;
    this.write(record);
  }

  /**
   * A Data API query: counted (`mcp_pdp_data_queries_total`, the evaluation
   * histogram) and recorded as OPA records Data API decisions: `path`,
   * `input`, `result` as answered, `decision_id`, `bundles`, `timestamp`,
   * `metrics`; no AuthZEN fields, since the input is not an AuthZEN request.
   */
  queried(event: QueryEvent): void {
    const { answer } = event;
    const result =
      answer.failure !== undefined ? "error" : event.result === undefined ? "undefined" : "defined";
    this.metrics.recordDataQuery(
      result,
      answer.entrypoint === undefined ? undefined : answer.evaluationSeconds,
    );
    if (!isRecording(this.log)) return;
    const record: Record<string, unknown> = {
      log: "decision",
      decision_id: answer.id,
      timestamp: new Date(this.options.clock()).toISOString(),
      req_id: event.requestId ?? null,
      trace_id: event.traceId ?? null,
      path: event.path,
      endpoint: "opa_data",
      caller: event.caller,
      entrypoint: answer.entrypoint ?? null,
      ...(event.result === undefined ? {} : { result: event.result }),
      ...(answer.failure === undefined ? {} : { error: { code: answer.failure.code } }),
      revision: answer.revision,
      bundles: { default: { revision: answer.revision } },
      metrics: { timer_eval_ns: Math.round(answer.evaluationSeconds * 1e9) },
    };
    if (this.options.includeInput && event.input !== undefined) record.input = event.input;
    this.write(record);
  }

  /** Erases the configured fields, bounds the record to its budget, and hands it to the log. */
  private write(record: Record<string, unknown>): void {
    const masked = eraseFields(record, this.options.erase);
    if (masked.erased.length > 0) masked.record.erased = masked.erased;
    const bounded = this.budget.bound(masked.record);
    if (bounded.truncated.length > 0) {
      // A copy: the record (and what it shares with the request) is unchanged.
      bounded.record.truncated = bounded.truncated;
      this.metrics.recordTruncatedDecisionRecord();
    }
    this.log.record(bounded.record);
  }
}

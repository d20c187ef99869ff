import type { RequestHandler } from "express";
import { prometheusContentType } from "prom-client";
import type { ApiResponse } from "../api/api-types.ts";
import type { ActivationOutcome, PolicyHolder, SourceStatus } from "../policy/policy-holder.ts";

/** Whether the PDP should get traffic, and if not why (a registry-style code). */
export type Readiness =
  { ready: true } | { ready: false; code: "not_ready" | "policy_stale"; message: string };

/**
 * What the ops endpoints report; not ready while draining or with a stale
 * policy. A worker thread asks its coordinating thread (hence a promise).
 */
export interface ServiceState {
  readiness: () => Readiness | Promise<Readiness>;
  /** The revision this listener's decisions are made with. */
  revision: () => string;
}

/** GET /health: the process answers. */
export const healthHandler: RequestHandler = (_req, res) => {
  res.json({ status: "ok" });
};

/** GET /ready: 200 with the active revision; 503 while draining or when the policy is stale. */
export function readyHandler(state: ServiceState): RequestHandler {
  return async (_req, res) => {
    const readiness = await state.readiness();
    if (readiness.ready) {
      res.json({ status: "ready", revision: state.revision() });
    } else {
      res.status(503).json({ code: readiness.code, message: readiness.message });
    }
  };
}

/**
 * GET /metrics: the Prometheus text exposition, of the whole process (with
 * worker threads, their registries merged: exposition() does that).
 */
export function metricsHandler(exposition: () => Promise<string>): RequestHandler {
  return async (_req, res) => {
    const body = await exposition();
    res.set("content-type", prometheusContentType).send(body);
  };
}

/**
 * The two policy routes' handlers, as the route table names them. `threads`:
 * the revision each thread serving the main listener decides with (0 is the
 * main thread).
 */
export function policyHandlers(
  holder: PolicyHolder,
  reload: () => Promise<ActivationOutcome>,
  stale: () => boolean,
  threads: () => ReadonlyMap<number, string>,
): { policyReload: () => Promise<ApiResponse>; policyStatus: () => ApiResponse } {
  return {
    policyReload: reloadHandler(reload),
    policyStatus: statusHandler(holder, stale, threads),
  };
}

/**
 * POST /v1/policy/reload: reads the local source now and answers what came
 * of it. 200 when the policy is active (`activated`, or `unchanged` when the
 * files hold what is served); 422 when the candidate is refused (the files
 * are what is wrong, not the request or the PDP's state), with the reason
 * code and the revision still serving.
 */
export function reloadHandler(
  reload: () => Promise<ActivationOutcome>,
): () => Promise<ApiResponse> {
  return async () => {
    const outcome = await reload();
    if (outcome.result === "refused") {
      return {
        status: 422,
        body: { code: outcome.code, message: outcome.message, revision: outcome.revision },
      };
    }
    return { status: 200, body: outcome };
  };
}

/**
 * GET /v1/status: the active revision and, per source, what OPA's status API
 * reports for a bundle (active revision, last request, last successful
 * request, download and activation, the last error), times as RFC 3339;
 * and the revision each serving thread decides with (`workers`).
 */
export function statusHandler(
  holder: PolicyHolder,
  stale: () => boolean,
  threads: () => ReadonlyMap<number, string>,
): () => ApiResponse {
  return (): ApiResponse => {
    const status = holder.status();
    return {
      status: 200,
      body: {
        revision: status.revision,
        activated_at: iso(status.activatedAtMs),
        stale: stale(),
        workers: [...threads()].map(([worker, revision]) => ({ worker, revision })),
        bundles: Object.fromEntries(
          Object.entries(status.sources).map(([name, source]) => [name, sourceBody(name, source)]),
        ),
      },
    };
  };
}

function sourceBody(name: string, source: SourceStatus): Record<string, unknown> {
  return {
    name,
    active_revision: source.revision ?? null,
    last_request: iso(source.lastRequestMs),
    last_successful_request: iso(source.lastSuccessfulRequestMs),
    last_successful_download: iso(source.lastDownloadMs),
    last_successful_activation: iso(source.lastActivationMs),
    ...(source.lastError === undefined
      ? {}
      : { code: source.lastError.code, message: source.lastError.message }),
  };
}

function iso(ms: number | undefined): string | null {
  return ms === undefined ? null : new Date(ms).toISOString();
}

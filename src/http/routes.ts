import { authzenPaths, type AuthzenApi } from "../api/authzen-api.ts";
import { searchKinds } from "../api/authzen-schemas.ts";
import { searchPaths, type AuthzenSearchApi } from "../api/authzen-search-api.ts";
import { forwardAuthPrefix } from "../api/forward-auth-api.ts";
import { opaDataMethods, opaDataPath, opaError, type OpaDataApi } from "../api/opa-data-api.ts";
import type { ApiRequest } from "../api/api-types.ts";
import type { Caller } from "../auth/caller.ts";
import type { ApiPermission } from "../config/index.ts";
import { healthHandler, metricsHandler, readyHandler, type ServiceState } from "./ops-handlers.ts";
import { pdpErrorResponse, type ApiHandler, type CallerGuard, type Route } from "./route-table.ts";

export interface RouteTableParts {
  authzen: AuthzenApi;
  search: AuthzenSearchApi;
  forwardAuth: ApiHandler;
  opaData: OpaDataApi;
  /** Authenticates the decision APIs' callers (and the ops callers of /health and /ready). */
  callers: (request: ApiRequest, permission: ApiPermission) => Caller;
  /** Authenticates /metrics, which has its own openness (ops.metrics_open). */
  metricsCaller: CallerGuard;
  state: ServiceState;
  /** POST /v1/policy/reload and GET /v1/status (ops-handlers.ts). */
  policyReload: ApiHandler;
  policyStatus: ApiHandler;
  /** The Prometheus text of the whole process (every worker thread's metrics merged). */
  exposition: () => Promise<string>;
  /** Whether /metrics has a listener of its own (PDP_METRICS_PORT) instead of the main one. */
  metricsPortOfItsOwn: boolean;
}

/**
 * The one route table: every path the PDP serves, with its methods, handler,
 * error shape, metrics label and caller permission. The decision APIs are
 * served by the dispatcher; express serves only ops and metrics. `main` is
 * the main listener's table, `metrics` the metrics port's (empty without one).
 */
export function routeTable(parts: RouteTableParts): { main: Route[]; metrics: Route[] } {
  const needs =
    (permission: ApiPermission): CallerGuard =>
    (request) =>
      parts.callers(request, permission);
  const metrics: Route = {
    methods: ["GET"],
    path: "/metrics",
    label: "metrics",
    caller: parts.metricsCaller,
    renderError: pdpErrorResponse,
    express: metricsHandler(parts.exposition),
  };
  const main: Route[] = [
    {
      methods: ["POST"],
      path: authzenPaths.evaluation,
      label: "evaluation",
      caller: needs("authzen"),
      renderError: pdpErrorResponse,
      handler: parts.authzen.evaluation,
    },
    {
      methods: ["POST"],
      path: authzenPaths.evaluations,
      label: "evaluations",
      caller: needs("authzen"),
      renderError: pdpErrorResponse,
      handler: parts.authzen.evaluations,
    },
    ...searchKinds.map((kind): Route => ({
      methods: ["POST"],
      path: searchPaths[kind],
      label: "search",
      caller: needs("authzen"),
      renderError: pdpErrorResponse,
      handler: parts.search[kind],
    })),
    {
      methods: ["GET"],
      path: authzenPaths.configuration,
      label: "metadata",
      renderError: pdpErrorResponse,
      handler: parts.authzen.configuration,
    },
    {
      // A proxy relays every method of its client.
      methods: "any",
      path: forwardAuthPrefix,
      prefix: true,
      label: "forward_auth",
      caller: needs("forward_auth"),
      renderError: pdpErrorResponse,
      handler: parts.forwardAuth,
    },
    {
      methods: opaDataMethods,
      path: opaDataPath,
      prefix: true,
      label: "opa_data",
      caller: needs("opa_data"),
      renderError: opaError,
      handler: parts.opaData,
    },
    {
      methods: ["GET"],
      path: "/health",
      label: "health",
      caller: needs("ops"),
      renderError: pdpErrorResponse,
      express: healthHandler,
    },
    {
      methods: ["GET"],
      path: "/ready",
      label: "ready",
      caller: needs("ops"),
      renderError: pdpErrorResponse,
      express: readyHandler(parts.state),
    },
    {
      methods: ["GET"],
      path: "/v1/status",
      label: "status",
      caller: needs("ops"),
      renderError: pdpErrorResponse,
      handler: parts.policyStatus,
    },
    {
      methods: ["POST"],
      path: "/v1/policy/reload",
      label: "policy_reload",
      caller: needs("ops"),
      renderError: pdpErrorResponse,
      handler: parts.policyReload,
    },
    ...(parts.metricsPortOfItsOwn ? [] : [metrics]),
  ];
  return { main, metrics: parts.metricsPortOfItsOwn ? [metrics] : [] };
}

import type { RequestListener } from "node:http";
import express, { type Express } from "express";
import { authzenPaths, createAuthzenApi } from "./api/authzen-api.js";
import { searchKinds } from "./api/authzen-schemas.js";
import { SearchCandidates } from "./api/authzen-search-candidates.js";
import { createAuthzenSearchApi, searchPaths } from "./api/authzen-search-api.js";
import { defaultConfigEntrypoint, type Config } from "./config/index.js";
import {
  PolicyDecisionEngine,
  type Clock,
  type DecisionEngine,
} from "./decision/decision-engine.js";
import { errorHandler, notFound } from "./http/error-handler.js";
import { authzenRouter } from "./http/authzen-router.js";
import { forwardAuthRouter } from "./http/forward-auth-router.js";
import { createForwardAuthApi, forwardAuthPrefix } from "./api/forward-auth-api.js";
import { createOpaDataApi, opaDataPath, opaError } from "./api/opa-data-api.js";
import { leanListener } from "./http/lean-listener.js";
import { opaDataRouter } from "./http/opa-data-router.js";
import { opsRouter, type OpsGuard } from "./http/ops-router.js";
import { probeListener } from "./http/probe-listener.js";
import type { CallerCheck } from "./http/caller-guard.js";
import { requestId } from "./http/request-id.js";
import type { Logger } from "./observability/logger.js";
import type { DecisionLog } from "./observability/decision-log.js";
import type { Metrics } from "./observability/metrics.js";
import { createObservability } from "./observability/observability.js";
import { instrument } from "./http/instrument.js";
import { metricsRouter } from "./http/metrics-router.js";
import { loadActivePolicy } from "./policy/policy-loader.js";
import { CallerAuthenticator } from "./auth/caller-authenticator.js";
import { buildIssuerPolicies, callerCredentials } from "./auth/issuer-policies.js";
import { JwtTokenVerifier } from "./auth/jwt-verifier.js";
import { SubjectResolver } from "./auth/subject-resolver.js";
import { ServerRegistry } from "./auth/servers.js";

/** What the composition root needs from outside: configuration, a logger, optionally a clock. */
export interface AppDependencies {
  config: Config;
  logger: Logger;
  /** Frozen in tests; the system clock otherwise. */
  clock?: Clock;
  /** Replaces the configured decision log (tests capture records). */
  decisionLog?: DecisionLog;
  /** Node process metrics; on unless a test turns them off. */
  processMetrics?: boolean;
}

/** The assembled service. It never listens: main.ts (or a test) does. */
export interface App {
  /** What a node:http server should serve: the lean decision path, express for the rest. */
  listener: RequestListener;
  /** The express app alone (every route, no lean path). */
  express: Express;
  engine: DecisionEngine;
  metrics: Metrics;
  /** Serves /metrics alone, for PDP_METRICS_PORT; undefined when /metrics is on the main listener. */
  metricsListener: RequestListener | undefined;
  /** Serves /health and /ready without credentials and nothing else, for PDP_PROBE_PORT. */
  probeListener: RequestListener;
  /** Marks the service as draining: /ready answers 503 from then on. */
  drain: () => void;
}

/**
 * The composition root: loads the policy, builds the decision engine and the
 * API, and mounts the routers. Throws StartupError when the policy or its data
 * cannot be served.
 */
export async function buildApp(deps: AppDependencies): Promise<App> {
  const { config, logger } = deps;
  const active = await loadActivePolicy({
    bundlePath: config.policy.bundlePath,
    dataPath: config.policy.dataPath,
    entrypoint: config.policy.entrypoint,
    configCheck:
      config.policy.configEntrypoint === undefined
        ? undefined
        : {
            entrypoint: config.policy.configEntrypoint,
            // The default check is optional (custom bundles lack it); a configured one is required.
            required: config.policy.configEntrypoint !== defaultConfigEntrypoint,
          },
  });
  logger.info("policy loaded", {
    bundle: active.bundlePath,
    data: active.dataPath ?? null,
    revision: active.revision,
    entrypoint: active.entrypoint,
    entrypoints: active.policy.entrypoints,
  });

  const { metrics, observer } = createObservability(config.observability, active, {
    logger,
    ...(deps.decisionLog === undefined ? {} : { decisionLog: deps.decisionLog }),
    ...(deps.processMetrics === undefined ? {} : { processMetrics: deps.processMetrics }),
  });

  const engine = new PolicyDecisionEngine(active, {
    onFailure: (failure) => {
      logger.warn("decision failed closed", {
        decision_id: failure.decisionId,
        reason: failure.code,
        error: failure.message,
        revision: active.revision,
      });
    },
  });

  const auth = config.auth;
  for (const issuer of auth.issuers) metrics.registerIssuer(issuer.issuer);
  const issuers = await buildIssuerPolicies(auth.issuers, (issuer, error) => {
    metrics.recordJwksFetch(issuer, error === undefined);
    if (error === undefined) return;
    logger.warn("JWKS fetch failed", {
      issuer,
      error: error instanceof Error ? error.message : "unknown error",
    });
  });
  const verifier =
    issuers.length === 0 ? undefined : new JwtTokenVerifier(issuers, auth.tokenCacheEntries);
  for (const warning of auth.warnings) logger.warn(warning);
  const servers = new ServerRegistry(auth.servers);
  const subjects = new SubjectResolver(verifier, servers, (result) => {
    metrics.recordTokenVerification(result === "valid" ? result : result.code);
    if (result !== "valid") {
      logger.debug("token rejected", { reason: result.code, detail: result.message });
    }
  });
  const callerOptions = {
    callers: callerCredentials(auth),
    opsKeyDigests: auth.ops.apiKeySha256.map((hex) => Buffer.from(hex, "hex")),
    onFailure: (reason: "unauthenticated" | "forbidden") => {
      metrics.recordCallerAuthFailure(reason);
    },
  };
  const callers = new CallerAuthenticator({ ...callerOptions, opsOpen: auth.ops.open });
  // /metrics has its own openness (ops.metrics_open), with the same ops credentials.
  const metricsCallers = new CallerAuthenticator({
    ...callerOptions,
    opsOpen: auth.ops.metricsOpen,
  });
  const check: CallerCheck = (request, permission) => callers.authenticate(request, permission);
  if (
    !auth.ops.metricsOpen &&
    auth.ops.apiKeySha256.length === 0 &&
    auth.callers?.some((c) => c.permissions.includes("ops")) !== true
  ) {
    logger.warn(
      "/metrics is closed (callers are configured) and no credential opens it: every scrape gets 401; add ops.api_key_sha256, give a caller the ops permission, or set ops.metrics_open: true",
      {},
    );
  }
  if (!callers.enabled) {
    logger.warn(
      config.allowUnauthenticatedCallers
        ? "CALLER AUTHENTICATION IS OFF on a non-loopback address (PDP_ALLOW_UNAUTHENTICATED_CALLERS=true): anyone who can reach this port may ask for decisions and assert subjects"
        : "caller authentication is off: loopback only; any local process may ask for decisions and assert subjects",
      { host: config.host, issuers: issuers.map((i) => i.issuer) },
    );
  }
  logger.info("identity", {
    issuers: issuers.map((i) => ({
      issuer: i.issuer,
      audiences: i.audiences ?? "any registered server",
      algorithms: i.algorithms,
    })),
    callers:
      auth.callers?.map((c) => ({
        name: c.name,
        permissions: c.permissions,
        assert_subject: c.assertSubject,
      })) ?? null,
    token_cache_entries: auth.tokenCacheEntries,
    servers: auth.servers.map((s) => ({
      name: s.name,
      resource: s.resource,
      enforces_mcp_headers: s.enforcesMcpHeaders,
      proxy: s.proxy ?? null,
    })),
  });

  const limits = { maxBytes: config.limits.maxBodyBytes, maxDepth: config.limits.maxDepth };
  // What every decision API needs.
  const decisionApi = {
    engine,
    callers,
    subjects,
    clock: deps.clock ?? Date.now,
    limits,
    observer,
  };
  const candidates = new SearchCandidates(active.policy, active.entrypoint, (problem) => {
    logger.warn("search candidates dropped", { ...problem, revision: active.revision });
  });
  const searchable = searchKinds.filter((kind) => candidates.supports(kind));
  logger.info("search", {
    supported: searchable,
    entrypoints: searchKinds.map((kind) => candidates.entrypoint(kind)),
  });
  const search = createAuthzenSearchApi({
    ...decisionApi,
    candidates,
    maxEvaluations: config.limits.maxEvaluations,
    maxBatchInputBytes: config.limits.maxBatchInputBytes,
  });
  const api = createAuthzenApi({
    ...decisionApi,
    maxEvaluations: config.limits.maxEvaluations,
    maxBatchInputBytes: config.limits.maxBatchInputBytes,
    publicUrl: config.publicUrl,
    search: searchable,
  });
  const forwardAuth = createForwardAuthApi({
    ...decisionApi,
    settings: auth.forwardAuth,
    servers,
    maxBatchElements: config.limits.maxEvaluations,
  });

  const opaData = createOpaDataApi({
    policy: active.policy,
    callers,
    limits,
    onFailure: (failure) => {
      logger.warn("OPA data API evaluation failed closed", {
        decision_id: failure.decisionId,
        entrypoint: failure.entrypoint,
        error: failure.message,
        revision: active.revision,
      });
    },
  });

  let draining = false;
  const app = express();
  app.disable("x-powered-by");
  app.set("etag", false);
  app.set("query parser", false);
  app.use(requestId);
  const opsGuard: OpsGuard = (request) => callers.authenticate(request, "ops");
  const metricsGuard: OpsGuard = (request) => metricsCallers.authenticate(request, "ops");
  app.use(opsRouter({ ready: () => !draining, revision: () => engine.revision }, opsGuard));
  let metricsListener: RequestListener | undefined;
  if (config.observability.metricsPort === undefined) {
    app.use(metricsRouter(metrics.registry, metricsGuard));
  } else {
    const metricsApp = express();
    metricsApp.disable("x-powered-by");
    metricsApp.use(requestId);
    metricsApp.use(metricsRouter(metrics.registry, metricsGuard));
    metricsApp.use(notFound);
    metricsApp.use(errorHandler(logger));
    metricsListener = instrument(metricsApp, metrics);
  }
  app.use(authzenRouter(api, config.limits.maxBodyBytes, check, search));
  app.use(forwardAuthRouter(forwardAuth, config.limits.maxBodyBytes, check));
  app.use(opaDataRouter(opaData, config.limits.maxBodyBytes, check));
  app.use(notFound);
  app.use(errorHandler(logger));

  const lean = leanListener({
    routes: [
      {
        method: "POST",
        path: authzenPaths.evaluation,
        handler: api.evaluation,
        permission: "authzen",
      },
      {
        method: "POST",
        path: authzenPaths.evaluations,
        handler: api.evaluations,
        permission: "authzen",
      },
      ...searchKinds.map((kind) => ({
        method: "POST",
        path: searchPaths[kind],
        handler: search[kind],
        permission: "authzen" as const,
      })),
      {
        method: "*",
        path: forwardAuthPrefix,
        prefix: true,
        handler: forwardAuth,
        permission: "forward_auth",
      },
      ...(["GET", "POST"] as const).map((method) => ({
        method,
        path: `${opaDataPath}/`,
        prefix: true,
        handler: opaData,
        renderError: opaError,
        permission: "opa_data" as const,
      })),
    ],
    maxBodyBytes: config.limits.maxBodyBytes,
    callers: check,
    fallback: app,
    onError: (error, request) => {
      logger.error("request failed", {
        request_id: request.requestId,
        method: request.method,
        path: request.path,
        error: error instanceof Error ? error.stack : String(error),
      });
    },
  });

  return {
    listener: instrument((req, res) => {
      // While draining, every answer ends its connection, so keep-alive clients reconnect to
      // a PDP that is not about to stop instead of finding this one's listener closed.
      if (draining) res.setHeader("connection", "close");
      lean(req, res);
    }, metrics),
    express: app,
    engine,
    metrics,
    metricsListener,
    probeListener: instrument(probeListener({ ready: () => !draining }), metrics),
    drain: () => {
      draining = true;
    },
  };
}

import type { RequestListener } from "node:http";
import { createAuthzenApi } from "./api/authzen-api.ts";
import type { ApiRequest, ApiResponse } from "./api/api-types.ts";
import { searchKinds } from "./api/authzen-schemas.ts";
import { SearchCandidates } from "./api/authzen-search-candidates.ts";
import { createAuthzenSearchApi } from "./api/authzen-search-api.ts";
import { createForwardAuthApi } from "./api/forward-auth-api.ts";
import { createOpaDataApi } from "./api/opa-data-api.ts";
import type { Config } from "./config/index.ts";
import {
  PolicyDecisionEngine,
  type Clock,
  type DecisionEngine,
} from "./decision/decision-engine.ts";
import { dispatcher, inProcessDispatcher, type FailedRequest } from "./http/dispatcher.ts";
import { expressSurface } from "./http/express-surface.ts";
import { probeListener } from "./http/probe-listener.ts";
import type { Route } from "./http/route-table.ts";
import { routeTable } from "./http/routes.ts";
import type { Logger } from "./observability/logger.ts";
import type { DecisionLog } from "./observability/decision-log.ts";
import type { LineWriter } from "./observability/log-destination.ts";
import type { Metrics } from "./observability/metrics.ts";
import { mergedExposition, type MetricsSnapshot } from "./observability/metrics.ts";
import {
  createObservability,
  showActivePolicy,
  showPolicyLabels,
} from "./observability/observability.ts";
import {
  PolicyHolder,
  type ActivationOutcome,
  type PolicySourceName,
} from "./policy/policy-holder.ts";
import { loadActivePolicy, policySourceOf, type ActivePolicy } from "./policy/policy-loader.ts";
import { LocalPolicyReloader } from "./policy/policy-reloader.ts";
import { ServicePolicySource, bundleVerificationOf } from "./policy/service-source.ts";
import { ShadowEvaluator } from "./decision/shadow-evaluator.ts";
import type { PolicySettings } from "./config/index.ts";
import type { PolicySource } from "./policy/policy-loader.ts";
import { embeddedBundlePath } from "./config/index.ts";
import { policyHandlers, type Readiness } from "./http/ops-handlers.ts";
import { CallerAuthenticator } from "./auth/caller-authenticator.ts";
import { buildIssuerPolicies, callerCredentials } from "./auth/issuer-policies.ts";
import { JwtTokenVerifier } from "./auth/jwt-verifier.ts";
import { SubjectResolver } from "./auth/subject-resolver.ts";
import { ServerRegistry } from "./auth/servers.ts";

/** What the composition root needs from outside: configuration, a logger, optionally a clock. */
export interface AppDependencies {
  config: Config;
  logger: Logger;
  /** Frozen in tests; the system clock otherwise. */
  clock?: Clock;
  /** Replaces the configured decision log (tests capture records). */
  decisionLog?: DecisionLog;
  /**
   * Where the decision lines go instead of opening the configured destination:
   * a worker thread's relay to the main thread, when the destination is a pipe
   * that several threads cannot write whole lines to.
   */
  decisionLines?: LineWriter;
  /** Node process metrics; on unless a test turns them off. */
  processMetrics?: boolean;
  /** Where policy.service.credentials.bearer_token_env is looked up; process.env by default. */
  environment?: Readonly<Record<string, string | undefined>>;
  /**
   * Set in a worker thread: the thread that coordinates it. The worker's
   * policy comes from there (it loads, watches and polls nothing itself), and
   * so do its readiness, /v1/status, reloads and the whole process's /metrics.
   */
  coordinator?: Coordinator;
  /** Set on the main thread when worker threads serve beside it (serve's worker pool). */
  workers?: WorkerGroup;
}

/** What a worker thread asks the main thread for. */
export interface Coordinator {
  /** This worker's number (1…); the main thread is 0. */
  worker: number;
  /** The policy the main thread serves now, instantiated in this thread. */
  initial: ActivePolicy;
  initialSource: PolicySourceName;
  readiness: () => Promise<Readiness>;
  status: () => Promise<ApiResponse>;
  reload: () => Promise<ApiResponse>;
  exposition: () => Promise<string>;
}

/** The main thread's view of its worker threads. */
export interface WorkerGroup {
  /** Each running worker's metrics, for the merged /metrics. */
  metrics: () => Promise<MetricsSnapshot[]>;
  /** Each running worker (1…) and the revision it decides with. */
  revisions: () => ReadonlyMap<number, string>;
  /** Resolves once every worker decides with the policy of `digest` (a worker that cannot is replaced), bounded. */
  settled: (digest: string) => Promise<void>;
  /** Whether every worker has started listening (until then the PDP is not ready). */
  readonly ready: boolean;
}

/** What the main thread answers its workers with: the same handlers its own routes use. */
export interface CoordinatorAnswers {
  readiness: () => Readiness;
  status: () => ApiResponse;
  reload: () => Promise<ApiResponse>;
  exposition: () => Promise<string>;
}

/** The assembled service. It never listens: main.ts (or a test) does. */
export interface App {
  /** What a node:http server should serve: the one dispatcher over the route table. */
  listener: RequestListener;
  engine: DecisionEngine;
  /** The listener's route table answering an ApiRequest in process (`mcp-pdp decide`). */
  answer: (request: ApiRequest) => Promise<ApiResponse>;
  metrics: Metrics;
  /** Serves /metrics alone, for PDP_METRICS_PORT; undefined when /metrics is on the main listener. */
  metricsListener: RequestListener | undefined;
  /** Serves /health and /ready without credentials and nothing else, for PDP_PROBE_PORT. */
  probeListener: RequestListener;
  /** Marks the service as draining: /ready answers 503 from then on. */
  drain: () => void;
  /** The one active policy and its sources' status. */
  policy: PolicyHolder;
  /** Reads PDP_BUNDLE and PDP_DATA now (SIGHUP, the admin API); never rejects. */
  reloadPolicy: (trigger: "signal" | "admin") => Promise<ActivationOutcome>;
  /** Stops watching the policy files and polling the bundle service (the listeners are the caller's to close). */
  close: () => void;
  /** The main thread's answers to its worker threads' questions. */
  coordinatorAnswers: CoordinatorAnswers;
  /** The decision log's opened destination (undefined when off), for the workers' relayed lines. */
  decisionLines: LineWriter | undefined;
}

/**
 * The composition root: loads the policy, builds the decision engine and the
 * API, and serves them from one route table. Throws StartupError when the policy or its data
 * cannot be served.
 */
export async function buildApp(deps: AppDependencies): Promise<App> {
  const { config, logger, coordinator, workers } = deps;
  // With policy.signing every bundle is verified: PDP_BUNDLE, reloads, the shadow, the service's.
  const verification = bundleVerificationOf(config.policy.signing);
  const source: PolicySource = {
    ...policySourceOf(config.policy),
    ...(verification === undefined ? {} : { verification }),
  };
  const clock = deps.clock ?? Date.now;
  // A worker thread polls nothing: the main thread's source feeds every thread.
  const service =
    config.policy.service === undefined || coordinator !== undefined
      ? undefined
      : new ServicePolicySource(
          config.policy.service,
          source,
          {
            onDownloadFailure: (reason, message) => {
              metrics.recordBundleLoadFailure("service", reason);
              logger.warn("bundle service poll failed, the active policy kept", {
                source: "service",
                reason,
                error: message,
              });
            },
            onPersistFailure: (message) => {
              logger.warn("activated bundle not persisted", { error: message });
            },
            onPersistedStart: (why, savedAt) => {
              logger.warn(
                "bundle service unavailable at startup: started from the persisted bundle",
                {
                  reason: why,
                  saved_at: new Date(savedAt).toISOString(),
                },
              );
            },
          },
          deps.environment ?? process.env,
          clock,
        );
  // The startup load stays fail-fast: without a policy there is nothing to serve. With a
  // service: one poll, else the persisted bundle, else no start (policy_unavailable).
  const active =
    coordinator?.initial ??
    (service === undefined ? await loadActivePolicy(source) : await service.startup(clock()));

  // A worker thread serves the configuration the main thread has announced: its own startup
  // lines are debug, not the same lines once per thread.
  const announce = coordinator === undefined ? "info" : "debug";
  logger.log(announce, "policy loaded", {
    bundle: active.bundlePath,
    data: active.dataPath ?? null,
    revision: active.revision,
    entrypoint: active.entrypoint,
    entrypoints: active.policy.entrypoints,
  });

  // One clock for the policy's context.time, JWKS cooldowns, decision record timestamps and
  // the policy sources' status and staleness.
  const holder = new PolicyHolder(
    active,
    coordinator?.initialSource ?? (service === undefined ? "local" : "service"),
    clock,
    service?.persistedSavedAt,
  );
  const { metrics, observer, decisionLines } = createObservability(config.observability, active, {
    logger,
    clock,
    ...(deps.decisionLog === undefined ? {} : { decisionLog: deps.decisionLog }),
    ...(deps.decisionLines === undefined ? {} : { decisionLines: deps.decisionLines }),
    // The process is one: its main thread reports the process metrics.
    ...(deps.processMetrics === undefined && coordinator === undefined
      ? {}
      : { processMetrics: coordinator === undefined && deps.processMetrics !== false }),
    worker: coordinator?.worker ?? 0,
  });

  // The revision each thread serves: the main thread's and, with workers, theirs.
  const threadRevisions = (): Map<number, string> =>
    new Map([[0, holder.current().revision], ...(workers?.revisions() ?? [])]);
  if (coordinator === undefined) {
    metrics.readSuccessAges(() => holder.successAges());
    metrics.readThreads(threadRevisions);
  }
  holder.onActivation((outcome, current, trigger) => {
    if (coordinator !== undefined) {
      // The main thread logged and counted this activation, and shows it in the bundle
      // gauges; here it only changes the label sets.
      if (outcome.result === "activated") showPolicyLabels(metrics, current);
      logger.debug("policy activated in this worker", { revision: outcome.revision });
      return;
    }
    const line = { source: outcome.source, trigger, revision: outcome.revision };
    if (outcome.result === "activated") {
      showActivePolicy(metrics, current, holder.activatedAt);
      metrics.recordBundleActivation(outcome.source);
      logger.info("policy activated", { ...line, previous: outcome.previous });
    } else if (outcome.result === "unchanged") {
      logger.info("policy unchanged", line);
    } else {
      metrics.recordBundleLoadFailure(outcome.source, outcome.code);
      logger.warn("policy refused, the active one kept", {
        ...line,
        reason: outcome.code,
        error: outcome.message,
      });
    }
  });

  const shadow = await shadowEvaluatorOf(config.policy, source, logger);
  const engine = new PolicyDecisionEngine(holder, {
    shadow,
    onFailure: (failure) => {
      logger.warn("decision failed closed", {
        decision_id: failure.decisionId,
        entrypoint: failure.entrypoint,
        reason: failure.code,
        error: failure.message,
        revision: holder.current().revision,
      });
    },
  });

  const auth = config.auth;
  for (const issuer of auth.issuers) metrics.registerIssuer(issuer.issuer);
  const issuers = await buildIssuerPolicies(auth.issuers, clock, (issuer, error) => {
    metrics.recordJwksFetch(issuer, error === undefined);
    if (error === undefined) return;
    logger.warn("JWKS fetch failed", {
      issuer,
      error: error instanceof Error ? error.message : "unknown error",
    });
  });
  const verifier =
    issuers.length === 0 ? undefined : new JwtTokenVerifier(issuers, auth.tokenCacheEntries);
  for (const warning of auth.warnings)
    logger.log(coordinator === undefined ? "warn" : "debug", warning);
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
  if (
    coordinator === undefined &&
    !auth.ops.metricsOpen &&
    auth.ops.apiKeySha256.length === 0 &&
    auth.callers?.some((c) => c.permissions.includes("ops")) !== true
  ) {
    logger.warn(
      "/metrics is closed (callers are configured) and no credential opens it: every scrape gets 401; add ops.api_key_sha256, give a caller the ops permission, or set ops.metrics_open: true",
      {},
    );
  }
  if (!callers.enabled && coordinator === undefined) {
    logger.warn(
      config.allowUnauthenticatedCallers
        ? "CALLER AUTHENTICATION IS OFF on a non-loopback address (PDP_ALLOW_UNAUTHENTICATED_CALLERS=true): anyone who can reach this port may ask for decisions and assert subjects"
        : "caller authentication is off: loopback only; any local process may ask for decisions and assert subjects",
      { host: config.host, issuers: issuers.map((i) => i.issuer) },
    );
  }
  logger.log(announce, "identity", {
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
      speaks_mcp_2026_07_28: s.speaksMcp20260728,
      proxy: s.proxy ?? null,
    })),
  });

  const limits = { maxBytes: config.limits.maxBodyBytes, maxDepth: config.limits.maxDepth };
  // What every decision API needs.
  const decisionApi = {
    engine,
    subjects,
    clock,
    limits,
    observer,
  };
  const candidates = new SearchCandidates(active.entrypoint, (problem) => {
    logger.warn("search candidates dropped", { ...problem, revision: holder.current().revision });
  });
  // Advertised from the startup policy: the metadata document is read once by PEPs.
  const searchable = searchKinds.filter((kind) => candidates.supports(kind, active.policy));
  logger.log(announce, "search", {
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

  const opaData = createOpaDataApi({ engine, limits, observer, baseDocuments: holder });

  // With a service, a PDP_DATA edit is merged over the service's last bundle; PDP_BUNDLE is not read.
  const reloader = new LocalPolicyReloader(
    holder,
    service === undefined ? source : () => service.currentSource(),
    {
      ...(service === undefined ? {} : { sourceName: "service" as const }),
      // The embedded bundle changes only with the package; the operator's files may change any time.
      watched: [
        ...(service !== undefined || source.bundlePath === embeddedBundlePath
          ? []
          : [source.bundlePath]),
        ...(source.dataPath === undefined ? [] : [source.dataPath]),
      ],
      onWatchError: (path, error) => {
        logger.warn("policy file not watched: reload it with SIGHUP or POST /v1/policy/reload", {
          path,
          error: error.message,
        });
      },
    },
  );
  if (config.policy.watch && coordinator === undefined) await reloader.start();
  service?.start(holder);
  // SIGHUP and the admin API read the local files and poll the service now.
  const reloadPolicy = async (trigger: "signal" | "admin"): Promise<ActivationOutcome> => {
    if (coordinator !== undefined) {
      throw new Error("a worker thread reloads nothing: the main thread does, for every thread");
    }
    const local = await reloader.reload(trigger);
    const polled = await service?.pollNow(trigger);
    // A data edit that activated is the answer even when the service failed (status says so);
    // otherwise the service's outcome, when it had one, is the news.
    if (polled === undefined || (local.result === "activated" && polled.result === "refused")) {
      return local;
    }
    return polled;
  };
  const maxStalenessMs = config.policy.maxStalenessMs;
  const stale = (): boolean =>
    maxStalenessMs !== undefined && holder.activeSourceAge() > maxStalenessMs;

  let draining = false;
  const readiness = (): Readiness => {
    if (draining) return { ready: false, code: "not_ready", message: "the PDP is shutting down" };
    if (workers !== undefined && !workers.ready) {
      return { ready: false, code: "not_ready", message: "the worker threads are starting" };
    }
    if (stale()) {
      return {
        ready: false,
        code: "policy_stale",
        message: `the policy source ${holder.activeSource} has not been checked successfully for ${Math.round(holder.activeSourceAge() / 1000)} s (policy.max_staleness_s)`,
      };
    }
    return { ready: true };
  };
  const onError = (error: unknown, request: FailedRequest): void => {
    logger.error("request failed", {
      request_id: request.requestId,
      method: request.method,
      path: request.path,
      error: error instanceof Error ? error.stack : String(error),
    });
  };
  // The main thread's answers, for its own routes and its workers' questions alike.
  const own = policyHandlers(
    holder,
    async () => {
      const outcome = await reloadPolicy("admin");
      // Answered once every thread decides with what is active.
      await workers?.settled(holder.current().digest);
      return outcome;
    },
    stale,
    threadRevisions,
  );
  const coordinatorAnswers: CoordinatorAnswers = {
    readiness,
    status: () => own.policyStatus(),
    reload: () => own.policyReload(),
    // One thread: its registry is the process's; with workers, every thread's merged.
    exposition: async () =>
      workers === undefined
        ? metrics.registry.metrics()
        : mergedExposition([
            await metrics.registry.getMetricsAsJSON(),
            ...(await workers.metrics()),
          ]),
  };
  const routes = routeTable({
    authzen: api,
    search,
    forwardAuth,
    opaData,
    callers: (request, permission) => callers.authenticate(request, permission),
    metricsCaller: (request) => metricsCallers.authenticate(request, "ops"),
    ...(coordinator === undefined
      ? {
          state: { readiness, revision: () => engine.revision },
          ...own,
          exposition: coordinatorAnswers.exposition,
        }
      : {
          // The revision is this worker's own: what its decisions are made with.
          state: { readiness: coordinator.readiness, revision: () => engine.revision },
          policyStatus: () => coordinator.status(),
          policyReload: () => coordinator.reload(),
          exposition: coordinator.exposition,
        }),
    metricsPortOfItsOwn: config.observability.metricsPort !== undefined,
  });
  const listenerOf = (table: readonly Route[]): RequestListener =>
    dispatcher({
      routes: table,
      maxBodyBytes: config.limits.maxBodyBytes,
      express: expressSurface(table, onError),
      metrics,
      onError,
    });
  const main = listenerOf(routes.main);

  // Requests answered per connection (server.max_requests_per_connection); counted here, not
  // with node's maxRequestsPerSocket, which counts no HTTP/1.0 keep-alive and answers a bare
  // 503 to whatever a client sends past the limit, keeping the connection open.
  const maxRequests = config.transport.maxRequestsPerConnection;
  const answered = new WeakMap<object, number>();
  return {
    listener: (req, res) => {
      // While draining, every answer ends its connection, so keep-alive clients reconnect to
      // a PDP that is not about to stop instead of finding this one's listener closed. Past
      // the limit, the same: the kernel places the new connection on a worker anew
      // (SO_REUSEPORT spreads connections, not requests), so a client holding two
      // connections cannot pin its load on one worker for long.
      const count = (answered.get(req.socket) ?? 0) + 1;
      answered.set(req.socket, count);
      if (draining || (maxRequests > 0 && count >= maxRequests)) {
        res.setHeader("connection", "close");
      }
      main(req, res);
    },
    engine,
    answer: inProcessDispatcher(routes.main, onError),
    metrics,
    metricsListener: routes.metrics.length === 0 ? undefined : listenerOf(routes.metrics),
    probeListener: probeListener({ readiness }, metrics),
    drain: () => {
      draining = true;
    },
    policy: holder,
    reloadPolicy,
    coordinatorAnswers,
    decisionLines,
    close: () => {
      reloader.stop();
      service?.stop().catch((error: unknown) => {
        logger.warn("bundle service client did not stop cleanly", {
          error: error instanceof Error ? error.message : String(error),
        });
      });
    },
  };
}

/**
 * The shadow policy (`policy.shadow`), loaded and checked at startup like the
 * active one: a configured candidate that cannot load is a configuration
 * error, refused loudly rather than silently compared with nothing.
 */
async function shadowEvaluatorOf(
  settings: PolicySettings,
  active: PolicySource,
  logger: Logger,
): Promise<ShadowEvaluator | undefined> {
  if (settings.shadow === undefined) return undefined;
  const candidate = await loadActivePolicy({
    ...active,
    bundlePath: settings.shadow.bundlePath,
    dataPath: settings.shadow.dataPath,
  });
  logger.info("shadow policy loaded", {
    bundle: candidate.bundlePath,
    data: candidate.dataPath ?? null,
    revision: candidate.revision,
    sample_rate: settings.shadow.sampleRate,
  });
  return new ShadowEvaluator(candidate, { sampleRate: settings.shadow.sampleRate });
}

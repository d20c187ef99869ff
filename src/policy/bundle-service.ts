import {
  BundleServiceError,
  StartupError,
  bundleServiceFailureCodes,
  describeThrown,
  type BundleServiceFailureCode,
} from "../errors.ts";
import {
  BundleDownloader,
  defaultBundleContentTypes,
  type BundleServiceCredentials,
} from "./bundle-download.ts";

/**
 * A client of an OPA bundle service (an OPA bundle server, an object store's
 * HTTP endpoint, nginx serving files): it polls `<url>/<resource>` one request
 * at a time and hands every new bundle to `onBundle` (activation, which is not
 * its job). Its ETag moves only when activation succeeded, so a refused
 * bundle is downloaded again on the next poll — after the polling delay,
 * never at once. Timing follows OPA's downloader: a random delay in
 * [minDelayMs, maxDelayMs] after a good poll; OPA's backoff after a failure
 * (100 ms × 1.6ⁿ⁻¹, ±20 % jitter, capped at maxDelayMs); with long polling the
 * next request follows the answer at once (but never sooner than one second
 * after the previous one started, so a server that claims long polling and
 * answers at once is not hammered).
 */

/** Timers the client uses; tests inject a manual one so no test waits real seconds. */
export interface Scheduler {
  /** Milliseconds since the epoch. */
  now(): number;
  /** Runs `run` after `delayMs`. The timer must not keep the process alive on its own. */
  schedule(run: () => void, delayMs: number): { cancel(): void };
}

/** Real timers, unref'd: a pending poll never keeps the process alive. */
export const realScheduler: Scheduler = {
  now: () => Date.now(),
  schedule(run, delayMs) {
    const timer = setTimeout(run, delayMs);
    timer.unref();
    return {
      cancel: () => {
        clearTimeout(timer);
      },
    };
  },
};

/** OPA's defaults where OPA has one (polling delays, response timeout), ours where it has none. */
export const bundleServiceDefaults = {
  minDelayMs: 60_000,
  maxDelayMs: 120_000,
  /** OPA's response_header_timeout_seconds; here it bounds the whole answer, body included. */
  timeoutMs: 10_000,
  /** A compressed bundle larger than this is aborted while it streams. */
  maxBytes: 64 * 1024 * 1024,
} as const;

/** The first backoff step, its growth and its jitter: OPA's (util.DefaultBackoff). */
const backoffBaseMs = 100;
const backoffFactor = 1.6;
const backoffJitter = 0.2;
/** The shortest time between the starts of two long-poll requests. */
const minLongPollGapMs = 1000;

/** A downloaded bundle, as handed to activation. */
export interface DownloadedBundle {
  /** The bundle as served: a gzipped tarball, not yet read or verified. */
  bytes: Buffer;
  /** Its ETag, when the server sent one. */
  etag: string | undefined;
  /** Where it came from (no credentials in it). */
  url: string;
}

/** The reason label of one attempt: success or a failure code (bounded). */
export type BundleAttemptReason = "not_modified" | "downloaded" | BundleServiceFailureCode;

/** Every reason label an attempt can have, for metrics that pre-declare their label values. */
export const bundleAttemptReasons: readonly BundleAttemptReason[] = [
  "not_modified",
  "downloaded",
  ...bundleServiceFailureCodes,
];

/** What one poll did, for metrics (`onAttempt`). */
export interface BundleAttempt {
  reason: BundleAttemptReason;
  /** True for not_modified and downloaded. */
  ok: boolean;
  /** The HTTP status, when the server answered. */
  httpStatus: number | undefined;
  /** From the request to the end of activation (downloaded/refused) or of the answer. */
  durationMs: number;
  /** Body bytes of a 200. */
  bytes: number | undefined;
  /** Whether the request asked the server to hold it (long polling). */
  longPoll: boolean;
}

/** The client's state for the status endpoint and the staleness metric (times in ms since the epoch). */
export interface BundleServiceStatus {
  url: string;
  /** The ETag of the last activated bundle (sent as If-None-Match). */
  etag: string | undefined;
  lastRequestAt: number | undefined;
  /** The last answer that was a 304 or a complete 200. */
  lastSuccessfulRequestAt: number | undefined;
  lastSuccessfulDownloadAt: number | undefined;
  /** The last time onBundle resolved. */
  lastSuccessfulActivationAt: number | undefined;
  lastError:
    | {
        code: BundleServiceFailureCode;
        message: string;
        httpStatus: number | undefined;
        /** For `refused`: the activation error's own code, when it has one (e.g. bundle_invalid). */
        activationCode: string | undefined;
        at: number;
      }
    | undefined;
  consecutiveFailures: number;
  /** Whether the next request will ask the server to hold it. */
  longPolling: boolean;
  /** Body bytes of the last download. */
  lastDownloadBytes: number | undefined;
}

export interface BundleServiceOptions {
  /** The service URL (OPA's `services[].url`): http:// or https://, no user info. */
  url: string;
  /** The path below it (OPA's `bundles[].resource`), e.g. `bundles/authz.tar.gz`. */
  resource: string;
  minDelayMs?: number;
  maxDelayMs?: number;
  /** Long polling: ask the server to hold each request this many seconds (OPA's long_polling_timeout_seconds). */
  longPollWaitS?: number;
  timeoutMs?: number;
  maxBytes?: number;
  credentials?: BundleServiceCredentials;
  headers?: Readonly<Record<string, string>>;
  /** Media types a 200 may carry; default defaultBundleContentTypes. */
  contentTypes?: readonly string[];
  /** Where an environment-variable bearer token is read from (main.ts passes process.env). */
  environment?: Readonly<Record<string, string | undefined>>;
  /** The ETag of a bundle already active (e.g. the persisted one), so an unchanged bundle is a 304. */
  initialEtag?: string;
  /** Activation: resolves when the bundle is active, rejects when refused. */
  onBundle: (bundle: DownloadedBundle) => Promise<void>;
  /** Told about every attempt (metrics, logs). Must not throw; if it does, the error is ignored. */
  onAttempt?: (attempt: BundleAttempt, status: BundleServiceStatus) => void;
  scheduler?: Scheduler;
  /** A number in [0, 1): jitter of the polling delay and the backoff. */
  random?: () => number;
}

export class BundleServiceClient {
  private readonly url: URL;
  private readonly minDelayMs: number;
  private readonly maxDelayMs: number;
  private readonly longPollWaitS: number | undefined;
  private readonly timeoutMs: number;
  private readonly maxBytes: number;
  private readonly downloader: BundleDownloader;
  private readonly onBundle: BundleServiceOptions["onBundle"];
  private readonly onAttempt: BundleServiceOptions["onAttempt"];
  private readonly scheduler: Scheduler;
  private readonly random: () => number;
  private readonly state: BundleServiceStatus;
  private timer: { cancel(): void } | undefined;
  private inFlight: Promise<BundleAttempt> | undefined;
  private abort = new AbortController();
  private running = false;
  /** The delay the last attempt asked for, so start() after a pollNow() does not poll twice. */
  private nextDelayMs: number | undefined;

  /** Checks every option at once; a StartupError (config_invalid) lists every problem. */
  constructor(options: BundleServiceOptions) {
    const problems: string[] = [];
    this.url = bundleUrl(options.url, options.resource, problems);
    this.minDelayMs = options.minDelayMs ?? bundleServiceDefaults.minDelayMs;
    this.maxDelayMs = options.maxDelayMs ?? bundleServiceDefaults.maxDelayMs;
    this.timeoutMs = options.timeoutMs ?? bundleServiceDefaults.timeoutMs;
    this.maxBytes = options.maxBytes ?? bundleServiceDefaults.maxBytes;
    this.longPollWaitS = options.longPollWaitS;
    if (!(this.minDelayMs >= 0) || !(this.maxDelayMs >= this.minDelayMs)) {
      problems.push("the polling delays need 0 <= min <= max");
    }
    if (!(this.timeoutMs > 0)) problems.push("the request timeout must be positive");
    if (!(this.maxBytes > 0)) problems.push("the size limit must be positive");
    if (
      this.longPollWaitS !== undefined &&
      !(Number.isInteger(this.longPollWaitS) && this.longPollWaitS >= 1)
    ) {
      problems.push("the long polling wait is a whole number of seconds, at least 1 (as OPA's)");
    }
    if (problems.length > 0) throw new StartupError("config_invalid", problems);
    this.downloader = new BundleDownloader({
      url: this.url,
      credentials: options.credentials ?? {},
      headers: options.headers ?? {},
      contentTypes: (options.contentTypes ?? defaultBundleContentTypes).map((type) =>
        type.toLowerCase(),
      ),
      environment: options.environment ?? {},
    });
    this.onBundle = options.onBundle;
    this.onAttempt = options.onAttempt;
    this.scheduler = options.scheduler ?? realScheduler;
    this.random = options.random ?? Math.random;
    this.state = {
      url: this.url.href,
      etag: options.initialEtag,
      lastRequestAt: undefined,
      lastSuccessfulRequestAt: undefined,
      lastSuccessfulDownloadAt: undefined,
      lastSuccessfulActivationAt: undefined,
      lastError: undefined,
      consecutiveFailures: 0,
      longPolling: this.longPollWaitS !== undefined,
      lastDownloadBytes: undefined,
    };
  }

  /** A copy of the current state. */
  status(): BundleServiceStatus {
    return { ...this.state, lastError: this.state.lastError && { ...this.state.lastError } };
  }

  /**
   * Starts polling: at once, or — when a pollNow() ran first (a start that
   * waits for its first bundle) — after the delay that attempt asked for.
   */
  start(): void {
    if (this.running) return;
    this.running = true;
    if (this.abort.signal.aborted) this.abort = new AbortController();
    if (this.inFlight === undefined) this.scheduleNext(this.nextDelayMs ?? 0);
  }

  /**
   * Polls now (an operator's "reload now"). While a request is in flight, it
   * is that request's result: never two at a time.
   */
  pollNow(): Promise<BundleAttempt> {
    if (this.inFlight !== undefined) return this.inFlight;
    this.timer?.cancel();
    this.timer = undefined;
    return this.attempt();
  }

  /** Stops: cancels the timer, aborts the request in flight, waits for activation in progress. */
  async stop(): Promise<void> {
    this.running = false;
    this.timer?.cancel();
    this.timer = undefined;
    this.abort.abort();
    try {
      await this.inFlight;
    } finally {
      this.downloader.close();
    }
  }

  private scheduleNext(delayMs: number): void {
    if (!this.running) return;
    this.timer?.cancel();
    this.timer = this.scheduler.schedule(() => {
      this.timer = undefined;
      void this.attempt();
    }, delayMs);
  }

  private attempt(): Promise<BundleAttempt> {
    const attempt = this.poll().finally(() => {
      this.inFlight = undefined;
    });
    this.inFlight = attempt;
    return attempt;
  }

  private async poll(): Promise<BundleAttempt> {
    const startedAt = this.scheduler.now();
    const longPoll = this.state.longPolling && this.longPollWaitS !== undefined;
    this.state.lastRequestAt = startedAt;
    let reason: BundleAttemptReason;
    let httpStatus: number | undefined;
    let bytes: number | undefined;
    try {
      const outcome = await this.downloader.get({
        etag: this.state.etag,
        waitS: longPoll ? this.longPollWaitS : undefined,
        timeoutMs: this.timeoutMs,
        maxBytes: this.maxBytes,
        signal: this.abort.signal,
      });
      httpStatus = outcome.status;
      this.state.lastSuccessfulRequestAt = this.scheduler.now();
      if (outcome.kind === "not_modified") {
        reason = "not_modified";
      } else {
        bytes = outcome.bytes.length;
        this.state.lastSuccessfulDownloadAt = this.state.lastSuccessfulRequestAt;
        this.state.lastDownloadBytes = bytes;
        // OPA: a 200 says whether the server speaks long polling; a 304 leaves it as it was.
        this.state.longPolling = this.longPollWaitS !== undefined && outcome.longPolling;
        try {
          await this.onBundle({ bytes: outcome.bytes, etag: outcome.etag, url: this.url.href });
          this.state.etag = outcome.etag;
          this.state.lastSuccessfulActivationAt = this.scheduler.now();
          reason = "downloaded";
        } catch (error) {
          throw new BundleServiceError(
            "refused",
            `activation refused the bundle: ${describeThrown(error)}`,
            {
              httpStatus: 200,
              cause: error,
            },
          );
        }
      }
      this.state.consecutiveFailures = 0;
    } catch (thrown) {
      const error =
        thrown instanceof BundleServiceError
          ? thrown
          : new BundleServiceError("network", describeThrown(thrown), { cause: thrown });
      reason = error.code;
      httpStatus = error.httpStatus;
      if (!this.running && this.abort.signal.aborted && error.code === "network") {
        // Stopped: the abort is not the service's failure, nor an attempt to count.
        return { reason, ok: false, httpStatus, durationMs: 0, bytes, longPoll };
      }
      this.state.consecutiveFailures += 1;
      this.state.lastError = {
        code: error.code,
        message: error.message,
        httpStatus: error.httpStatus,
        activationCode: error.code === "refused" ? codeOf(error.cause) : undefined,
        at: this.scheduler.now(),
      };
    }
    const ok = reason === "not_modified" || reason === "downloaded";
    const attempt: BundleAttempt = {
      reason,
      ok,
      httpStatus,
      durationMs: this.scheduler.now() - startedAt,
      bytes,
      longPoll,
    };
    this.report(attempt);
    this.nextDelayMs = this.delayAfter(attempt, startedAt);
    this.scheduleNext(this.nextDelayMs);
    return attempt;
  }

  private report(attempt: BundleAttempt): void {
    try {
      this.onAttempt?.(attempt, this.status());
    } catch {
      // A metrics hook must not stop the polling.
    }
  }

  private delayAfter(attempt: BundleAttempt, startedAt: number): number {
    if (attempt.reason === "refused") return this.pollingDelay();
    if (!attempt.ok) return this.backoff(this.state.consecutiveFailures);
    if (this.state.longPolling) {
      return Math.max(0, minLongPollGapMs - (this.scheduler.now() - startedAt));
    }
    return this.pollingDelay();
  }

  private pollingDelay(): number {
    return this.minDelayMs + (this.maxDelayMs - this.minDelayMs) * this.random();
  }

  /** OPA's backoff after the n-th consecutive failure, never past maxDelayMs. */
  private backoff(failures: number): number {
    const grown = backoffBaseMs * backoffFactor ** Math.max(0, failures - 1);
    const jittered =
      Math.min(grown, this.maxDelayMs) * (1 + backoffJitter * (this.random() * 2 - 1));
    return Math.min(this.maxDelayMs, Math.max(0, jittered));
  }
}

/** `<url>/<resource>`, refusing what would leave the service or leak credentials into status and logs. */
function bundleUrl(url: string, resource: string, problems: string[]): URL {
  let base: URL;
  try {
    base = new URL(url);
  } catch {
    problems.push(`service URL ${JSON.stringify(url)} is not a URL`);
    return new URL("http://invalid.invalid/");
  }
  if (base.protocol !== "http:" && base.protocol !== "https:") {
    problems.push(`service URL ${base.origin}: only http:// and https://`);
  }
  if (base.username !== "" || base.password !== "") {
    problems.push("service URL: no user info (use the bearer token settings)");
  }
  if (base.search !== "" || base.hash !== "") {
    problems.push("service URL: no query or fragment");
  }
  const segments = resource.split("/").filter((segment) => segment !== "");
  const path = base.pathname.endsWith("/") ? base.pathname : `${base.pathname}/`;
  const joined = new URL(base.href);
  joined.pathname = `${path}${segments.join("/")}`;
  // The URL parser resolves dot segments, percent-encoded ones (%2e%2e) too: refuse them all.
  if (segments.length === 0 || segments.some(isDotSegment) || !joined.pathname.startsWith(path)) {
    problems.push(`resource ${JSON.stringify(resource)}: a path below the service URL`);
  }
  return joined;
}

function isDotSegment(segment: string): boolean {
  const decoded = segment.replace(/%2e/gi, ".");
  return decoded === "." || decoded === "..";
}

function codeOf(error: unknown): string | undefined {
  const code =
    typeof error === "object" && error !== null ? (error as { code?: unknown }).code : undefined;
  return typeof code === "string" ? code : undefined;
}

import { createPublicKey, createSecretKey, type KeyObject } from "node:crypto";
import { readFileSync } from "node:fs";
import type { PolicySettings } from "../config/index.ts";
import { StartupError, describeThrown } from "../errors.ts";
import {
  BundleServiceClient,
  type BundleAttempt,
  type DownloadedBundle,
} from "./bundle-service.ts";
import { PersistedBundleStore } from "./bundle-persistence.ts";
import {
  bundleVerificationProblems,
  type BundleVerificationKey,
  type BundleVerificationOptions,
} from "./bundle-signatures.ts";
import type { ActivationOutcome, ActivationTrigger, PolicyHolder } from "./policy-holder.ts";
import { loadActivePolicy, type ActivePolicy, type PolicySource } from "./policy-loader.ts";

type ServiceSettings = NonNullable<PolicySettings["service"]>;
type SigningSettings = NonNullable<PolicySettings["signing"]>;

/**
 * `policy.signing` as verification options: each key file read (a PEM public
 * key, or for HS* the shared secret's bytes) and checked now, so a wrong key
 * refuses the start (config_invalid, naming the key) instead of every bundle.
 */
export function bundleVerificationOf(
  signing: SigningSettings | undefined,
): BundleVerificationOptions | undefined {
  if (signing === undefined) return undefined;
  const problems: string[] = [];
  const keys = new Map<string, BundleVerificationKey>();
  signing.keys.forEach((entry, index) => {
    const name = `policy.signing.keys[${index}].key_file ${entry.keyFile}`;
    let key: KeyObject;
    try {
      const content = readFileSync(entry.keyFile);
      key = entry.algorithm.startsWith("HS")
        ? createSecretKey(content)
        : createPublicKey(content.toString("utf8"));
    } catch (error) {
      problems.push(`${name}: ${describeThrown(error)}`);
      return;
    }
    keys.set(entry.id, { key, algorithm: entry.algorithm });
  });
  const options: BundleVerificationOptions = {
    keys,
    ...(signing.keyId === undefined ? {} : { keyId: signing.keyId }),
    ...(signing.scope === undefined ? {} : { scope: signing.scope }),
    exclude: signing.exclude,
  };
  if (problems.length === 0) {
    problems.push(...bundleVerificationProblems(options).map((p) => `policy.signing: ${p}`));
  }
  if (problems.length > 0) throw new StartupError("config_invalid", problems);
  return options;
}

/** Why the startup poll gave no policy, for the refusal and the log. */
function attemptProblem(attempt: BundleAttempt, client: BundleServiceClient): string {
  const error = client.status().lastError;
  return error === undefined
    ? attempt.reason
    : `${error.activationCode ?? error.code}: ${error.message}`;
}

/** Told about what the service source did that the holder's listeners do not see. */
export interface ServiceSourceEvents {
  /** A poll that failed before activation (network, HTTP status, size, content type…). */
  onDownloadFailure: (code: string, message: string) => void;
  /** The activated bundle could not be saved (the policy stays active). */
  onPersistFailure: (message: string) => void;
  /** The start used the persisted bundle because the service gave none. */
  onPersistedStart: (why: string, savedAt: number) => void;
}

/**
 * The bundle-service source (`policy.service`): the startup policy from one
 * poll, else from the persisted bundle, else no start; then the client polls
 * and every downloaded bundle is a candidate for the holder — read from its
 * bytes with the signature checks, the operator data merged on top, the
 * policy's config_errors run — and saved once active. Its own requests feed
 * the holder's status (`noteRequest`), so staleness is the service's.
 */
export class ServicePolicySource {
  private readonly settings: ServiceSettings;
  private readonly base: PolicySource;
  private readonly client: BundleServiceClient;
  private readonly store: PersistedBundleStore | undefined;
  private readonly events: ServiceSourceEvents;
  private readonly clock: () => number;
  private holder: PolicyHolder | undefined;
  /** The last bundle activated (or started from): a PDP_DATA edit is merged over it. */
  private lastBytes: Uint8Array | undefined;
  private lastUrl: string;
  /** What the holder made of the last bundle handed to it (for reload's answer). */
  private lastOutcome: ActivationOutcome | undefined;
  private trigger: ActivationTrigger = "startup";
  /** Filled by the startup poll's onBundle, before a holder exists. */
  private startupPolicy: ActivePolicy | undefined;

  constructor(
    settings: ServiceSettings,
    base: PolicySource,
    events: ServiceSourceEvents,
    environment: Readonly<Record<string, string | undefined>>,
    clock: () => number,
  ) {
    this.clock = clock;
    this.settings = settings;
    this.base = base;
    this.events = events;
    this.store =
      settings.persistDir === undefined ? undefined : new PersistedBundleStore(settings.persistDir);
    const credentials = settings.credentials;
    this.client = new BundleServiceClient({
      url: settings.url,
      resource: settings.resource,
      minDelayMs: settings.minDelayMs,
      maxDelayMs: settings.maxDelayMs,
      ...(settings.longPollWaitS === undefined ? {} : { longPollWaitS: settings.longPollWaitS }),
      timeoutMs: settings.timeoutMs,
      maxBytes: settings.maxBytes,
      credentials: {
        ...(credentials.bearerTokenFile !== undefined
          ? { bearer: { file: credentials.bearerTokenFile } }
          : credentials.bearerTokenEnv !== undefined
            ? { bearer: { environmentVariable: credentials.bearerTokenEnv } }
            : {}),
        ...(credentials.clientCertFile === undefined
          ? {}
          : { clientCertFile: credentials.clientCertFile }),
        ...(credentials.clientKeyFile === undefined
          ? {}
          : { clientKeyFile: credentials.clientKeyFile }),
        ...(credentials.caFile === undefined ? {} : { caFile: credentials.caFile }),
      },
      environment,
      onBundle: (bundle) => this.activate(bundle),
      onAttempt: (attempt) => {
        this.attempted(attempt);
      },
    });
    this.lastUrl = settings.url;
  }

  /** The candidate for these bytes: the service's bundle with the operator data and every check. */
  policySource(bytes: Uint8Array, url: string): PolicySource {
    return { ...this.base, bundlePath: url, bundleBytes: bytes };
  }

  /** The source a PDP_DATA reload reads: the last activated service bundle with the data file. */
  currentSource(): PolicySource {
    return this.lastBytes === undefined
      ? this.base
      : this.policySource(this.lastBytes, this.lastUrl);
  }

  /** When the persisted bundle the start used was saved; undefined when the start polled. */
  persistedSavedAt: number | undefined;

  /**
   * The policy to start with: one poll (bounded by timeout_s), else the
   * persisted bundle when it is there and young enough; else a StartupError
   * naming both reasons (fail closed: no policy, no start).
   */
  async startup(now: number): Promise<ActivePolicy> {
    const attempt = await this.client.pollNow();
    if (attempt.reason === "downloaded" && this.startupPolicy !== undefined) {
      return this.startupPolicy;
    }
    const why = attemptProblem(attempt, this.client);
    if (this.store === undefined) {
      throw new StartupError("policy_unavailable", [
        `bundle service ${this.settings.url}: ${why}; no policy.service.persist_dir to start from`,
      ]);
    }
    let persisted;
    let policy: ActivePolicy;
    try {
      persisted = await this.store.load({
        now,
        ...(this.settings.persistedMaxAgeMs === undefined
          ? {}
          : { maxAgeMs: this.settings.persistedMaxAgeMs }),
      });
      policy = await loadActivePolicy(this.policySource(persisted.bytes, persisted.url));
    } catch (error) {
      throw new StartupError("policy_unavailable", [
        `bundle service ${this.settings.url}: ${why}`,
        `persisted bundle in ${this.settings.persistDir}: ${describeThrown(error)}`,
      ]);
    }
    this.lastBytes = persisted.bytes;
    this.lastUrl = persisted.url;
    this.persistedSavedAt = persisted.savedAt;
    this.events.onPersistedStart(why, persisted.savedAt);
    return policy;
  }

  /** From now on bundles go to the holder, and the client polls. */
  start(holder: PolicyHolder): void {
    this.holder = holder;
    const error = this.client.status().lastError;
    // The startup poll happened before the holder: its failure belongs in the status.
    if (error !== undefined && this.client.status().lastSuccessfulActivationAt === undefined) {
      holder.noteRequest("service", {
        code: error.activationCode ?? error.code,
        message: error.message,
      });
    }
    this.trigger = "poll";
    this.client.start();
  }

  /**
   * Polls now (SIGHUP, the admin API). Resolves to the holder's outcome for a
   * downloaded bundle, to a refusal naming the failure when the download
   * failed (already logged and counted), or undefined for a 304.
   */
  async pollNow(trigger: ActivationTrigger): Promise<ActivationOutcome | undefined> {
    this.lastOutcome = undefined;
    this.trigger = trigger;
    let attempt: BundleAttempt;
    try {
      attempt = await this.client.pollNow();
    } finally {
      this.trigger = "poll";
    }
    const outcome = this.takeOutcome();
    if (outcome !== undefined || attempt.ok || this.holder === undefined) return outcome;
    return {
      result: "refused",
      source: "service",
      revision: this.holder.current().revision,
      code: attempt.reason,
      message: this.client.status().lastError?.message ?? attempt.reason,
    };
  }

  /** The holder's outcome for the bundle of the poll that just ended, once. */
  private takeOutcome(): ActivationOutcome | undefined {
    const outcome = this.lastOutcome;
    this.lastOutcome = undefined;
    return outcome;
  }

  stop(): Promise<void> {
    return this.client.stop();
  }

  private async activate(bundle: DownloadedBundle): Promise<void> {
    const source = this.policySource(bundle.bytes, bundle.url);
    if (this.holder === undefined) {
      // The startup poll: a refusal here rejects, and the start falls back or is refused.
      this.startupPolicy = await loadActivePolicy(source);
    } else {
      const outcome = await this.holder.activateCandidate(
        "service",
        () => loadActivePolicy(source),
        this.trigger,
      );
      this.lastOutcome = outcome;
      if (outcome.result === "refused") {
        // Rejecting keeps the client's ETag, so the bundle is fetched again after the delay.
        // Its code becomes the client's lastError.activationCode.
        throw Object.assign(new Error(outcome.message), { code: outcome.code });
      }
    }
    this.lastBytes = bundle.bytes;
    this.lastUrl = bundle.url;
    if (this.store !== undefined) {
      try {
        await this.store.save(bundle, this.clock());
      } catch (error) {
        this.events.onPersistFailure(describeThrown(error));
      }
    }
  }

  private attempted(attempt: BundleAttempt): void {
    const holder = this.holder;
    if (holder === undefined) return;
    if (attempt.reason === "not_modified") {
      holder.noteRequest("service");
    } else if (!attempt.ok && attempt.reason !== "refused") {
      // A refused bundle reached the holder, which recorded and reported it already.
      const error = this.client.status().lastError;
      const message = error?.message ?? attempt.reason;
      holder.noteRequest("service", { code: attempt.reason, message });
      this.events.onDownloadFailure(attempt.reason, message);
    }
  }
}

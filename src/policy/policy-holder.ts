import { PdpError } from "../errors.ts";
import type { ActivePolicy } from "./policy-loader.ts";

/**
 * Where candidate policies come from: `local` is PDP_BUNDLE and PDP_DATA,
 * read and activated together (a data edit and a bundle edit are one
 * candidate); `service` is the HTTP bundle service. A closed list, so the
 * `source` label of the bundle metrics stays bounded.
 */
export const policySourceNames = ["local", "service"] as const;
export type PolicySourceName = (typeof policySourceNames)[number];

/** What an activation attempt came to. `revision` is the one active afterwards. */
export type ActivationOutcome =
  | { result: "activated"; source: PolicySourceName; revision: string; previous: string }
  | { result: "unchanged"; source: PolicySourceName; revision: string }
  | {
      result: "refused";
      source: PolicySourceName;
      revision: string;
      /** A registry code (StartupError …) or `load_failed`: bounded, a metric label. */
      code: string;
      message: string;
    };

/** Why a source was asked, for the diagnostics line: a file change, SIGHUP, the admin API, a poll. */
export type ActivationTrigger = "startup" | "watch" | "signal" | "admin" | "poll";

/** One source as OPA's status API reports a bundle (times in ms since the epoch). */
export interface SourceStatus {
  /** The revision this source last activated (or found unchanged). */
  revision: string | undefined;
  lastRequestMs: number | undefined;
  lastSuccessfulRequestMs: number | undefined;
  /** When the source last produced a candidate (files read, bundle downloaded). */
  lastDownloadMs: number | undefined;
  lastActivationMs: number | undefined;
  lastError: { code: string; message: string } | undefined;
}

/** What readers need: the policy active now. */
export interface CurrentPolicy {
  current(): ActivePolicy;
}

/** Told about every attempt, after the swap (or the refusal). */
export type ActivationListener = (
  outcome: ActivationOutcome,
  active: ActivePolicy,
  trigger: ActivationTrigger,
) => void;

/**
 * Holds the one active policy (wasm instance, merged data, revision,
 * entrypoints) and swaps it whole. A reader takes `current()` once and keeps
 * that value for the whole of its work, so an in-flight decision (a batch, a
 * search) ends on the revision it started with, and the swap is one
 * assignment between two event-loop turns: no reader ever sees half a
 * policy. A candidate that fails to load or check never replaces the active
 * one (last known good); attempts run one at a time, in the order asked.
 */
export class PolicyHolder implements CurrentPolicy {
  private active: ActivePolicy;
  private activatedAtMs: number;
  private activeSourceName: PolicySourceName;
  private readonly clock: () => number;
  private readonly sources = new Map<PolicySourceName, SourceStatus>();
  private readonly listeners: ActivationListener[] = [];
  private queue: Promise<unknown> = Promise.resolve();

  /**
   * `fetchedAt`: when the initial policy was last fetched from its source,
   * if not now (a bundle persisted by an earlier run, started from because
   * the service was down): staleness counts from then, not from this start.
   */
  constructor(
    initial: ActivePolicy,
    source: PolicySourceName,
    clock: () => number = Date.now,
    fetchedAt?: number,
  ) {
    this.active = initial;
    this.clock = clock;
    const now = clock();
    this.activatedAtMs = now;
    this.activeSourceName = source;
    this.sources.set(source, {
      revision: initial.revision,
      lastRequestMs: now,
      lastSuccessfulRequestMs: fetchedAt ?? now,
      lastDownloadMs: fetchedAt ?? now,
      lastActivationMs: now,
      lastError: undefined,
    });
  }

  current(): ActivePolicy {
    return this.active;
  }

  /** When the active policy was activated (ms since the epoch, the injected clock). */
  get activatedAt(): number {
    return this.activatedAtMs;
  }

  /** The source the active policy came from. */
  get activeSource(): PolicySourceName {
    return this.activeSourceName;
  }

  /**
   * Milliseconds since the active policy's source was last checked
   * successfully (the staleness readiness compares with max_staleness_s).
   */
  activeSourceAge(): number {
    return this.successAges().get(this.activeSourceName) ?? 0;
  }

  onActivation(listener: ActivationListener): void {
    this.listeners.push(listener);
  }

  /**
   * The seam every source uses: `load` reads and checks a candidate
   * (loadActivePolicy, or a bundle service's bytes through the bundle reader
   * and verification) and throws on anything wrong. A candidate with the
   * active digest changes nothing (`unchanged`); a throw is `refused` and
   * the active policy stays. Rejects only when a listener throws (a bug;
   * the outcome stands, and later attempts still run).
   *
   * `fetched: false` is a candidate that asked the source nothing (the
   * operator data merged again over a bundle service's last bundle): it
   * neither refreshes the source's staleness nor clears a failure the source
   * reported, since neither says anything about the source.
   */
  activateCandidate(
    source: PolicySourceName,
    load: () => Promise<ActivePolicy>,
    trigger: ActivationTrigger,
    options: { fetched: boolean } = { fetched: true },
  ): Promise<ActivationOutcome> {
    const attempt = this.queue.then(() => this.attempt(source, load, trigger, options.fetched));
    // The next attempt waits for this one, whatever became of it.
    this.queue = attempt.catch(() => undefined);
    return attempt;
  }

  /**
   * A source's request that produced no candidate: a bundle service's 304
   * (`ok`) or a failed download (`error`). It refreshes the staleness signal
   * or records the error without touching the active policy.
   */
  noteRequest(source: PolicySourceName, error?: { code: string; message: string }): void {
    const status = this.statusOf(source);
    const now = this.clock();
    status.lastRequestMs = now;
    if (error === undefined) {
      status.lastSuccessfulRequestMs = now;
      status.lastError = undefined;
    } else {
      status.lastError = error;
    }
  }

  /** Every source asked so far, by name (a copy). */
  status(): { revision: string; activatedAtMs: number; sources: Record<string, SourceStatus> } {
    return {
      revision: this.active.revision,
      activatedAtMs: this.activatedAtMs,
      sources: Object.fromEntries([...this.sources].map(([name, s]) => [name, { ...s }])),
    };
  }

  /**
   * Milliseconds since each source's last successful request (the staleness
   * signal), on the injected clock.
   */
  successAges(): Map<PolicySourceName, number> {
    const now = this.clock();
    const ages = new Map<PolicySourceName, number>();
    for (const [name, s] of this.sources) {
      if (s.lastSuccessfulRequestMs !== undefined) ages.set(name, now - s.lastSuccessfulRequestMs);
    }
    return ages;
  }

  private async attempt(
    source: PolicySourceName,
    load: () => Promise<ActivePolicy>,
    trigger: ActivationTrigger,
    fetched: boolean,
  ): Promise<ActivationOutcome> {
    const status = this.statusOf(source);
    if (fetched) status.lastRequestMs = this.clock();
    let candidate: ActivePolicy;
    let outcome: ActivationOutcome;
    try {
      candidate = await load();
    } catch (error) {
      const code: string = error instanceof PdpError ? (error as PdpError).code : "load_failed";
      const message = error instanceof Error ? error.message : String(error);
      status.lastError = { code, message };
      outcome = { result: "refused", source, revision: this.active.revision, code, message };
      this.tell(outcome, trigger);
      return outcome;
    }
    const now = this.clock();
    if (fetched) {
      status.lastSuccessfulRequestMs = now;
      status.lastDownloadMs = now;
      status.lastError = undefined;
    }
    status.revision = candidate.revision;
    if (candidate.digest === this.active.digest) {
      outcome = { result: "unchanged", source, revision: this.active.revision };
    } else {
      const previous = this.active.revision;
      this.active = candidate;
      this.activatedAtMs = now;
      this.activeSourceName = source;
      status.lastActivationMs = now;
      outcome = { result: "activated", source, revision: candidate.revision, previous };
    }
    this.tell(outcome, trigger);
    return outcome;
  }

  private tell(outcome: ActivationOutcome, trigger: ActivationTrigger): void {
    for (const listener of this.listeners) listener(outcome, this.active, trigger);
  }

  private statusOf(source: PolicySourceName): SourceStatus {
    let status = this.sources.get(source);
    if (status === undefined) {
      status = {
        revision: undefined,
        lastRequestMs: undefined,
        lastSuccessfulRequestMs: undefined,
        lastDownloadMs: undefined,
        lastActivationMs: undefined,
        lastError: undefined,
      };
      this.sources.set(source, status);
    }
    return status;
  }
}

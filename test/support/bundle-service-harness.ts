import { mkdtempSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { gunzipSync, gzipSync } from "node:zlib";
import {
  BundleServiceClient,
  type BundleAttempt,
  type BundleServiceOptions,
  type DownloadedBundle,
} from "../../src/policy/bundle-service.ts";
import { readBundle } from "../../src/policy/bundle-reader.ts";
import { ManualScheduler } from "./manual-scheduler.ts";
import { repoRoot } from "./opa.ts";

/** The committed default bundle, and the same tarball compressed differently (other bytes, same policy). */
export const bundleV1 = readFileSync(join(repoRoot, "bundle", "bundle.tar.gz"));
export const bundleV2 = gzipSync(gunzipSync(bundleV1), { level: 1 });

/**
 * Activation as the PDP does it, as far as the client is concerned: the
 * bytes must be a bundle the reader accepts, else the promise rejects.
 */
export async function activateByReading(bundle: DownloadedBundle): Promise<void> {
  const dir = mkdtempSync(join(tmpdir(), "mcp-pdp-activate-"));
  try {
    const file = join(dir, "bundle.tar.gz");
    writeFileSync(file, bundle.bytes);
    await readBundle(file);
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
}

/**
 * A client on a manual scheduler (random fixed at 0.5, so the polling delay
 * is the middle of its range and the backoff has no jitter) that records
 * every attempt and every bundle handed to activation.
 */
export class ClientHarness {
  readonly scheduler = new ManualScheduler();
  readonly attempts: BundleAttempt[] = [];
  readonly bundles: DownloadedBundle[] = [];
  readonly client: BundleServiceClient;
  private waiting: ((attempt: BundleAttempt) => void) | undefined;
  private seen = 0;

  constructor(options: Partial<BundleServiceOptions> & { url: string }) {
    this.client = new BundleServiceClient({
      resource: "bundles/authz.tar.gz",
      minDelayMs: 60_000,
      maxDelayMs: 120_000,
      timeoutMs: 2000,
      scheduler: this.scheduler,
      random: () => 0.5,
      onBundle: async (bundle) => {
        this.bundles.push(bundle);
        await activateByReading(bundle);
      },
      ...options,
      onAttempt: (attempt, status) => {
        this.attempts.push(attempt);
        this.waiting?.(attempt);
        options.onAttempt?.(attempt, status);
      },
    });
  }

  /** Starts the client and runs its first poll. */
  async first(): Promise<BundleAttempt> {
    this.client.start();
    assertEqualDelay(await this.scheduler.fire(), 0);
    return this.next();
  }

  /** Fires the pending timer and resolves with its delay and the attempt it started. */
  async poll(): Promise<{ delayMs: number; attempt: BundleAttempt }> {
    const delayMs = await this.scheduler.fire();
    return { delayMs, attempt: await this.next() };
  }

  /** The next attempt not yet returned (bounded wait). */
  next(waitMs = 10_000): Promise<BundleAttempt> {
    const ready = this.attempts[this.seen];
    if (ready !== undefined) {
      this.seen += 1;
      return Promise.resolve(ready);
    }
    return new Promise((resolve, reject) => {
      const timeout = setTimeout(() => {
        reject(new Error(`no attempt finished within ${waitMs} ms`));
      }, waitMs);
      this.waiting = (attempt) => {
        clearTimeout(timeout);
        this.waiting = undefined;
        this.seen += 1;
        resolve(attempt);
      };
    });
  }

  async stop(): Promise<void> {
    await this.client.stop();
  }
}

function assertEqualDelay(actual: number, expected: number): void {
  if (actual !== expected) throw new Error(`expected the first poll at once, got ${actual} ms`);
}

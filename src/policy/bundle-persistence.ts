import { createHash, randomBytes } from "node:crypto";
import { constants } from "node:fs";
import { mkdir, open, readFile, readdir, rename, rm } from "node:fs/promises";
import { join } from "node:path";
import { PersistedBundleError, describeThrown } from "../errors.ts";

/**
 * The last activated bundle on disk, so a PDP whose bundle service is down at
 * startup can start from it. The directory holds the bundle as served
 * (`bundle-<sha256>.tar.gz`, inspectable with tar or opa) and `bundle.json`
 * naming it (digest, size, ETag, URL, when saved). Each file is written to a
 * temporary name, fsynced and renamed, then the directory is fsynced; the
 * bundle goes first and bundle.json last, so after a crash at any point
 * bundle.json names a complete file (the previous one or the new one).
 */

/** A bundle read back from the directory. */
export interface PersistedBundle {
  bytes: Buffer;
  etag: string | undefined;
  url: string;
  /** When it was saved, in ms since the epoch. */
  savedAt: number;
}

interface PersistedIndex {
  format: 1;
  file: string;
  sha256: string;
  size: number;
  etag: string | null;
  url: string;
  saved_at: string;
}

const indexFile = "bundle.json";
const bundleFile = /^bundle-[0-9a-f]{64}\.tar\.gz$/;
const temporaryFile = /^\.tmp-/;

export class PersistedBundleStore {
  private readonly dir: string;
  /** Saves run one after another, so two activations in a row cannot interleave their files. */
  private queue: Promise<void> = Promise.resolve();

  constructor(dir: string) {
    this.dir = dir;
  }

  /** Saves an activated bundle; resolves once it is durable. */
  save(
    bundle: { bytes: Buffer; etag: string | undefined; url: string },
    now: number,
  ): Promise<void> {
    const saving = this.queue.then(() => this.write(bundle, now));
    this.queue = saving.catch(() => undefined);
    return saving;
  }

  /**
   * Reads the saved bundle, checking its digest and size. Refused with
   * `persisted_missing`, `persisted_corrupt`, or `persisted_too_old` when
   * saved more than `maxAgeMs` before `now`.
   */
  async load(options: { now: number; maxAgeMs?: number }): Promise<PersistedBundle> {
    let raw: string;
    try {
      raw = await readFile(join(this.dir, indexFile), "utf8");
    } catch (error) {
      if ((error as { code?: unknown }).code === "ENOENT") {
        throw new PersistedBundleError("persisted_missing", `${this.dir}: no persisted bundle`);
      }
      throw new PersistedBundleError(
        "persisted_corrupt",
        `${join(this.dir, indexFile)}: ${describeThrown(error)}`,
      );
    }
    const index = parseIndex(raw);
    if (index === undefined) {
      throw new PersistedBundleError(
        "persisted_corrupt",
        `${join(this.dir, indexFile)}: not a persisted-bundle index`,
      );
    }
    let bytes: Buffer;
    try {
      bytes = await readFile(join(this.dir, index.file));
    } catch (error) {
      throw new PersistedBundleError(
        "persisted_corrupt",
        `${join(this.dir, index.file)}: ${describeThrown(error)}`,
      );
    }
    if (bytes.length !== index.size || sha256(bytes) !== index.sha256) {
      throw new PersistedBundleError(
        "persisted_corrupt",
        `${join(this.dir, index.file)}: its size or digest is not the one bundle.json records`,
      );
    }
    const savedAt = Date.parse(index.saved_at);
    if (options.maxAgeMs !== undefined && options.now - savedAt > options.maxAgeMs) {
      throw new PersistedBundleError(
        "persisted_too_old",
        `${this.dir}: the persisted bundle was saved ${index.saved_at}, more than ${Math.round(options.maxAgeMs / 1000)} s ago`,
      );
    }
    return { bytes, etag: index.etag ?? undefined, url: index.url, savedAt };
  }

  private async write(
    bundle: { bytes: Buffer; etag: string | undefined; url: string },
    now: number,
  ): Promise<void> {
    await mkdir(this.dir, { recursive: true, mode: 0o700 });
    const digest = sha256(bundle.bytes);
    const file = `bundle-${digest}.tar.gz`;
    await this.writeDurably(file, bundle.bytes);
    const index: PersistedIndex = {
      format: 1,
      file,
      sha256: digest,
      size: bundle.bytes.length,
      etag: bundle.etag ?? null,
      url: bundle.url,
      saved_at: new Date(now).toISOString(),
    };
    await this.writeDurably(indexFile, Buffer.from(`${JSON.stringify(index, null, 2)}\n`));
    // Only now is the previous bundle unreferenced; leftovers of crashed saves go too.
    for (const name of await readdir(this.dir)) {
      if ((bundleFile.test(name) && name !== file) || temporaryFile.test(name)) {
        await rm(join(this.dir, name), { force: true });
      }
    }
  }

  /** Temporary file, fsync, rename, fsync of the directory. */
  private async writeDurably(name: string, bytes: Buffer): Promise<void> {
    const temporary = join(this.dir, `.tmp-${randomBytes(8).toString("hex")}`);
    const handle = await open(
      temporary,
      constants.O_WRONLY | constants.O_CREAT | constants.O_EXCL,
      0o600,
    );
    try {
      await handle.writeFile(bytes);
      await handle.sync();
    } finally {
      await handle.close();
    }
    await rename(temporary, join(this.dir, name));
    const directory = await open(this.dir, constants.O_RDONLY);
    try {
      await directory.sync();
    } finally {
      await directory.close();
    }
  }
}

function sha256(bytes: Buffer): string {
  return createHash("sha256").update(bytes).digest("hex");
}

function parseIndex(raw: string): PersistedIndex | undefined {
  let value: unknown;
  try {
    value = JSON.parse(raw);
  } catch {
    return undefined;
  }
  if (typeof value !== "object" || value === null) return undefined;
  const index = value as Record<string, unknown>;
  const ok =
    index.format === 1 &&
    typeof index.file === "string" &&
    bundleFile.test(index.file) &&
    typeof index.sha256 === "string" &&
    index.file === `bundle-${index.sha256}.tar.gz` &&
    typeof index.size === "number" &&
    (index.etag === null || typeof index.etag === "string") &&
    typeof index.url === "string" &&
    typeof index.saved_at === "string" &&
    !Number.isNaN(Date.parse(index.saved_at));
  return ok ? (index as unknown as PersistedIndex) : undefined;
}

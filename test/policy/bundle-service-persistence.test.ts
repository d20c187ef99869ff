/**
 * The persisted last-activated bundle (policy/bundle-persistence.ts) on a
 * real file system: saved and read back, replaced, refused by name when
 * absent, damaged or too old, and recoverable after a save that crashed
 * half-way (a leftover temporary file, a bundle file bundle.json does not
 * name).
 */
import assert from "node:assert/strict";
import { mkdtempSync, readFileSync, readdirSync, rmSync, statSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { after, describe, test } from "node:test";
import { PersistedBundleError } from "../../src/errors.ts";
import { PersistedBundleStore } from "../../src/policy/bundle-persistence.ts";
import { bundleV1, bundleV2 } from "../support/bundle-service-harness.ts";

const root = mkdtempSync(join(tmpdir(), "mcp-pdp-persisted-"));
let dirs = 0;
const freshDir = () => join(root, `store-${++dirs}`, "nested");
const savedAt = Date.parse("2026-01-01T00:00:00Z");
const url = "https://bundles.example/bundles/authz.tar.gz";

after(() => {
  rmSync(root, { recursive: true, force: true });
});

async function refusal(promise: Promise<unknown>): Promise<PersistedBundleError> {
  try {
    await promise;
  } catch (error) {
    assert.ok(error instanceof PersistedBundleError, String(error));
    return error;
  }
  return assert.fail("expected the persisted bundle to be refused");
}

describe("the persisted bundle", () => {
  test("is saved (directory made, private modes) and read back with its ETag, URL and time", async () => {
    const dir = freshDir();
    const store = new PersistedBundleStore(dir);
    await store.save({ bytes: bundleV1, etag: '"v1"', url }, savedAt);
    const loaded = await store.load({ now: savedAt + 1000 });
    assert.deepEqual(loaded.bytes, bundleV1);
    assert.equal(loaded.etag, '"v1"');
    assert.equal(loaded.url, url);
    assert.equal(loaded.savedAt, savedAt);
    assert.equal(statSync(dir).mode & 0o777, 0o700);
    const files = readdirSync(dir).sort();
    assert.equal(files.length, 2);
    assert.match(files[0] ?? "", /^bundle-[0-9a-f]{64}\.tar\.gz$/);
    assert.equal(files[1], "bundle.json");
    assert.equal(statSync(join(dir, files[0] ?? "")).mode & 0o777, 0o600);
  });

  test("a later save replaces it and removes the old file; a bundle without an ETag reads back without one", async () => {
    const dir = freshDir();
    const store = new PersistedBundleStore(dir);
    await store.save({ bytes: bundleV1, etag: '"v1"', url }, savedAt);
    await store.save({ bytes: bundleV2, etag: undefined, url }, savedAt + 5000);
    assert.equal(readdirSync(dir).length, 2, "the previous bundle file is gone");
    const loaded = await store.load({ now: savedAt + 6000 });
    assert.deepEqual(loaded.bytes, bundleV2);
    assert.equal(loaded.etag, undefined);
    assert.equal(loaded.savedAt, savedAt + 5000);
  });

  test("saves called back to back are written one after the other; the last one wins", async () => {
    const dir = freshDir();
    const store = new PersistedBundleStore(dir);
    await Promise.all([
      store.save({ bytes: bundleV1, etag: '"v1"', url }, savedAt),
      store.save({ bytes: bundleV2, etag: '"v2"', url }, savedAt + 1),
    ]);
    assert.equal((await store.load({ now: savedAt })).etag, '"v2"');
    assert.equal(readdirSync(dir).length, 2);
  });

  test("absent → persisted_missing", async () => {
    const error = await refusal(new PersistedBundleStore(freshDir()).load({ now: savedAt }));
    assert.equal(error.code, "persisted_missing");
  });

  test("older than allowed → persisted_too_old; within the age it loads", async () => {
    const store = new PersistedBundleStore(freshDir());
    await store.save({ bytes: bundleV1, etag: '"v1"', url }, savedAt);
    const hour = 3_600_000;
    assert.ok(await store.load({ now: savedAt + hour, maxAgeMs: hour }));
    const error = await refusal(store.load({ now: savedAt + hour + 1, maxAgeMs: hour }));
    assert.equal(error.code, "persisted_too_old");
  });

  test("a damaged bundle file, a damaged or foreign bundle.json → persisted_corrupt", async () => {
    const dir = freshDir();
    const store = new PersistedBundleStore(dir);
    await store.save({ bytes: bundleV1, etag: '"v1"', url }, savedAt);
    const bundleFile = readdirSync(dir).find((name) => name.endsWith(".tar.gz")) ?? "";
    const bytes = readFileSync(join(dir, bundleFile));
    bytes[100] = (bytes[100] ?? 0) ^ 0xff;
    writeFileSync(join(dir, bundleFile), bytes);
    assert.equal((await refusal(store.load({ now: savedAt }))).code, "persisted_corrupt");

    await store.save({ bytes: bundleV1, etag: '"v1"', url }, savedAt);
    const index = JSON.parse(readFileSync(join(dir, "bundle.json"), "utf8")) as Record<
      string,
      unknown
    >;
    for (const damaged of [
      "{not json",
      JSON.stringify({ ...index, format: 2 }),
      JSON.stringify({ ...index, file: "../../etc/passwd" }),
      JSON.stringify({ ...index, size: bundleV1.length + 1 }),
      JSON.stringify({ ...index, sha256: "0".repeat(64) }),
    ]) {
      writeFileSync(join(dir, "bundle.json"), damaged);
      assert.equal(
        (await refusal(store.load({ now: savedAt }))).code,
        "persisted_corrupt",
        damaged,
      );
    }
  });

  test("after a save that crashed half-way the previous bundle still loads, and the next save cleans up", async () => {
    const dir = freshDir();
    const store = new PersistedBundleStore(dir);
    await store.save({ bytes: bundleV1, etag: '"v1"', url }, savedAt);
    // The crash: the new bundle file was renamed in, a temporary index was left, bundle.json not replaced.
    writeFileSync(join(dir, `bundle-${"a".repeat(64)}.tar.gz`), bundleV2);
    writeFileSync(join(dir, ".tmp-0123456789abcdef"), "{");
    assert.equal((await store.load({ now: savedAt })).etag, '"v1"');
    await store.save({ bytes: bundleV2, etag: '"v2"', url }, savedAt + 1);
    assert.equal(readdirSync(dir).length, 2, readdirSync(dir).join());
    assert.equal((await store.load({ now: savedAt })).etag, '"v2"');
  });
});

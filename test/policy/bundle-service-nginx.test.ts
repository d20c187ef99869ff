/**
 * A real NGINX serving bundles as static files is a bundle service as it
 * stands: its ETag (mtime and size) and its 304 on If-None-Match are the real
 * thing. A second location checks a bearer token (`if` on
 * $http_authorization), the way an operator fronts a file directory with a
 * shared secret.
 */
import assert from "node:assert/strict";
import { mkdirSync, mkdtempSync, renameSync, rmSync, utimesSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { after, before, describe, test } from "node:test";
import { bundleV1, bundleV2, ClientHarness } from "../support/bundle-service-harness.ts";
import type { Managed } from "../e2e/support/processes.ts";
import { startStaticNginx } from "../support/static-nginx.ts";

const token = "nginx-bundle-token";
let dir: string;
let origin: string;
let nginx: Managed | undefined;

/** Publishes `bytes` as the bundle the way an operator should: a new file renamed over the old one. */
function publish(bytes: Buffer, mtimeS: number): void {
  const target = join(dir, "www", "bundles", "authz.tar.gz");
  const temporary = `${target}.new`;
  writeFileSync(temporary, bytes, { mode: 0o644 });
  utimesSync(temporary, mtimeS, mtimeS);
  renameSync(temporary, target);
}

before(async () => {
  dir = mkdtempSync(join(tmpdir(), "mcp-pdp-nginx-bundles-"));
  mkdirSync(join(dir, "www", "bundles"), { recursive: true, mode: 0o755 });
  publish(bundleV1, 1_700_000_000);
  const started = await startStaticNginx(dir, {
    locations: `        location /bundles/ {
            root ${dir}/www;
        }
        location /secured/ {
            if ($http_authorization != "Bearer ${token}") {
                return 401;
            }
            alias ${dir}/www/bundles/;
        }`,
    readyPath: "/bundles/authz.tar.gz",
  });
  origin = started.origin;
  nginx = started.process;
});

after(async () => {
  await nginx?.stop();
  rmSync(dir, { recursive: true, force: true });
});

describe("nginx serving bundle files", () => {
  test("its ETag and 304 drive the polling; a newly published file is downloaded with its new ETag", async () => {
    publish(bundleV1, 1_700_000_000);
    const harness = new ClientHarness({ url: origin });
    try {
      const first = await harness.first();
      assert.equal(first.reason, "downloaded");
      const etag = harness.client.status().etag;
      assert.match(etag ?? "", /^"[0-9a-f]+-[0-9a-f]+"$/, "nginx's ETag: mtime-size in hex");
      assert.deepEqual(harness.bundles[0]?.bytes, bundleV1);

      const unchanged = await harness.poll();
      assert.equal(unchanged.attempt.reason, "not_modified");
      assert.equal(unchanged.attempt.httpStatus, 304);

      publish(bundleV2, 1_700_000_100);
      const changed = await harness.poll();
      assert.equal(changed.attempt.reason, "downloaded");
      assert.deepEqual(harness.bundles[1]?.bytes, bundleV2);
      const newEtag = harness.client.status().etag;
      assert.ok(
        newEtag !== undefined && newEtag !== etag,
        `${String(newEtag)} after ${String(etag)}`,
      );
      assert.equal((await harness.poll()).attempt.reason, "not_modified");
    } finally {
      await harness.stop();
    }
  });

  test("a location that wants a bearer token: 401 without it, the bundle with it", async () => {
    publish(bundleV1, 1_700_000_000);
    const without = new ClientHarness({ url: origin, resource: "secured/authz.tar.gz" });
    try {
      assert.equal((await without.first()).reason, "http_4xx");
      assert.equal(without.client.status().lastError?.httpStatus, 401);
    } finally {
      await without.stop();
    }
    const withToken = new ClientHarness({
      url: origin,
      resource: "secured/authz.tar.gz",
      credentials: { bearer: { environmentVariable: "TOKEN" } },
      environment: { TOKEN: token },
    });
    try {
      assert.equal((await withToken.first()).reason, "downloaded");
    } finally {
      await withToken.stop();
    }
  });

  test("a bundle larger than the limit is refused from nginx's Content-Length", async () => {
    publish(bundleV1, 1_700_000_000);
    const harness = new ClientHarness({ url: origin, maxBytes: bundleV1.length - 1 });
    try {
      assert.equal((await harness.first()).reason, "too_large");
      assert.equal(harness.bundles.length, 0);
    } finally {
      await harness.stop();
    }
  });

  test("a missing file is a 404 → http_4xx, and nginx's redirect of a directory is not followed", async () => {
    const missing = new ClientHarness({ url: origin, resource: "bundles/none.tar.gz" });
    try {
      assert.equal((await missing.first()).reason, "http_4xx");
    } finally {
      await missing.stop();
    }
    mkdirSync(join(dir, "www", "bundles", "dir"), { recursive: true, mode: 0o755 });
    const directory = new ClientHarness({ url: origin, resource: "bundles/dir" });
    try {
      assert.equal((await directory.first()).reason, "http_3xx");
      assert.equal(directory.client.status().lastError?.httpStatus, 301);
    } finally {
      await directory.stop();
    }
  });
});

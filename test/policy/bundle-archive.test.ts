import assert from "node:assert/strict";
import { readFileSync } from "node:fs";
import { join } from "node:path";
import { after, before, describe, test } from "node:test";
import { gunzip, gzipSync } from "node:zlib";
import { promisify } from "node:util";
import { BundleRefusal, type BundleRefusalCode } from "../../src/errors.ts";
import {
  defaultBundleLimits,
  readBundleArchive,
  type BundleLimits,
} from "../../src/policy/bundle-archive.ts";
import { readBundle, readBundleBytes } from "../../src/policy/bundle-reader.ts";
import { buildWasmBundle, scratchDir } from "../support/opa.ts";
import {
  paxPath,
  tarArchive as tar,
  tarEntry as entry,
  tarHeader as header,
} from "../support/tarball.ts";

async function refusalOf(
  archive: Uint8Array,
  limits: Partial<BundleLimits> = {},
): Promise<BundleRefusal> {
  try {
    await readBundleArchive(archive, { ...defaultBundleLimits, ...limits }, "test bundle");
  } catch (error) {
    assert.ok(error instanceof BundleRefusal, `expected a BundleRefusal, got ${String(error)}`);
    return error;
  }
  assert.fail("the archive was accepted");
}

const inflate = promisify(gunzip);

/**
 * The CPU time `work` takes (this process, every thread: zlib inflates on the
 * thread pool), in ms. Not wall time: a loaded machine stretches that, but
 * not the work a bounded reader does.
 */
async function cpuMsOf(work: () => Promise<unknown>): Promise<number> {
  const before = process.cpuUsage();
  await work();
  const used = process.cpuUsage(before);
  return Math.round((used.user + used.system) / 1000);
}

async function assertRefused(
  archive: Uint8Array,
  code: BundleRefusalCode,
  limits: Partial<BundleLimits> = {},
): Promise<void> {
  const error = await refusalOf(archive, limits);
  assert.equal(error.code, code, error.message);
  assert.match(error.problems[0] ?? "", /^test bundle: /);
}

describe("reading a bundle archive", () => {
  test("a plain archive reads to its files, paths rooted at the bundle", async () => {
    const files = await readBundleArchive(
      gzipSync(
        tar(
          entry("./", "", { type: "5" }),
          entry("./data.json", "{}"),
          entry("/policy.wasm", "wasm"),
          entry("rego/", "", { type: "5" }),
          entry("rego/a.rego", "package a"),
        ),
      ),
      defaultBundleLimits,
      "test bundle",
    );
    assert.deepEqual(
      [...files.entries()].map(([path, content]) => [path, content.toString()]),
      [
        ["/data.json", "{}"],
        ["/policy.wasm", "wasm"],
        ["/rego/a.rego", "package a"],
      ],
    );
  });

  const cases: [string, Buffer, BundleRefusalCode][] = [
    ["a '..' segment", tar(entry("../evil.rego", "x")), "bundle_path_traversal"],
    ["a '..' in the middle", tar(entry("a/../../evil.rego", "x")), "bundle_path_traversal"],
    [
      "a '..' given by a pax header",
      tar(paxPath("../../etc/cron.d/x"), entry("innocent", "x")),
      "bundle_path_traversal",
    ],
    ["a drive letter", tar(entry("C:/evil.rego", "x")), "bundle_absolute_path"],
    ["a network path", tar(entry("//host/share/evil", "x")), "bundle_absolute_path"],
    ["a backslash", tar(entry("..\\evil.rego", "x")), "bundle_path_invalid"],
    [
      "a symbolic link",
      tar(entry("data.json", "", { type: "2", linkname: "/etc/passwd" })),
      "bundle_link_entry",
    ],
    [
      "a hard link",
      tar(entry("data.json", "", { type: "1", linkname: "/etc/passwd" })),
      "bundle_link_entry",
    ],
    ["a character device", tar(entry("tty", "", { type: "3" })), "bundle_special_entry"],
    ["a fifo", tar(entry("pipe", "", { type: "6" })), "bundle_special_entry"],
    [
      "the same path twice",
      tar(entry("/data.json", "{}"), entry("./data.json", "{}")),
      "bundle_duplicate_entry",
    ],
    [
      "a file where a directory was",
      tar(entry("rego/", "", { type: "5" }), entry("rego", "x")),
      "bundle_duplicate_entry",
    ],
    [
      "a bad header checksum",
      tar(entry("data.json", "{}", { badChecksum: true })),
      "bundle_archive_invalid",
    ],
    [
      "an entry cut short",
      Buffer.concat([header("policy.wasm", 0, { size: 4096 }), Buffer.alloc(512)]),
      "bundle_truncated",
    ],
    ["gzip inside gzip", gzipSync(tar(entry("data.json", "{}"))), "bundle_archive_invalid"],
  ];
  for (const [name, archive, code] of cases) {
    test(`${name} is ${code}`, async () => {
      await assertRefused(gzipSync(archive), code);
    });
  }

  test("a file larger than maxFileBytes is refused from its header, before its body", async () => {
    // The header claims 40 MiB and no body follows: the claim alone is refused.
    const archive = gzipSync(Buffer.concat([header("policy.wasm", 0, { size: 40 * 1024 * 1024 })]));
    await assertRefused(archive, "bundle_file_too_large");
  });

  test("more entries than maxFiles is bundle_too_many_files", async () => {
    const entries = [1, 2, 3, 4].map((i) => entry(`f${i}.rego`, "x"));
    await assertRefused(gzipSync(tar(...entries)), "bundle_too_many_files", { maxFiles: 3 });
    await readBundleArchive(
      gzipSync(tar(...entries)),
      { ...defaultBundleLimits, maxFiles: 4 },
      "ok",
    );
  });

  test("an archive larger than maxCompressedBytes is refused before inflating", async () => {
    const archive = gzipSync(tar(entry("data.json", "{}")));
    await assertRefused(archive, "bundle_too_large", { maxCompressedBytes: archive.length - 1 });
  });

  test("files that add up past maxUncompressedBytes stop the inflation", async () => {
    const files = [1, 2, 3].map((i) => entry(`f${i}.bin`, Buffer.alloc(400 * 1024, i)));
    await assertRefused(gzipSync(tar(...files)), "bundle_too_large", {
      maxUncompressedBytes: 1024 * 1024,
    });
  });

  test("a gzip bomb (1 GiB of zeros in 1 MB) is refused at the default limit, early", async (t) => {
    // Concatenated gzip members inflate as one stream: 64 x 16 MiB.
    const member = gzipSync(Buffer.alloc(16 * 1024 * 1024));
    const bomb = Buffer.concat(Array.from({ length: 64 }, () => member));
    assert.ok(bomb.length < 2 * 1024 * 1024);
    const refusal = await cpuMsOf(() => assertRefused(bomb, "bundle_too_large"));
    // Stopping at the 64 MiB limit costs less than inflating twice that (a tenth of the bomb),
    // measured here under the same load.
    const inflating = await cpuMsOf(() => inflate(bomb.subarray(0, 8 * member.length)));
    assert.ok(refusal < inflating, `refused after ${refusal} ms of CPU; 128 MiB take ${inflating}`);
    t.diagnostic(`refused after ${refusal} ms of CPU; inflating 128 MiB takes ${inflating}`);
  });

  test("a bomb of valid 30 MiB files is refused once 64 MiB are inflated, early", async () => {
    // Header and body are separate gzip members, so the 30 MiB of zeros is compressed once.
    const body = gzipSync(Buffer.alloc(30 * 1024 * 1024));
    const members = Array.from({ length: 34 }, (_, i) => [
      gzipSync(header(`f${i}.bin`, 30 * 1024 * 1024)),
      body,
    ]).flat();
    const bomb = Buffer.concat(members);
    const refusal = await cpuMsOf(() => assertRefused(bomb, "bundle_too_large"));
    // Five files (150 MiB) inflate in more CPU than the refusal after the first 64 MiB.
    const inflating = await cpuMsOf(() => inflate(Buffer.concat(members.slice(0, 10))));
    assert.ok(refusal < inflating, `refused after ${refusal} ms of CPU; 150 MiB take ${inflating}`);
  });

  test("bytes that are not gzip are bundle_not_gzip (a plain tar too)", async () => {
    await assertRefused(Buffer.from("this is not a tarball"), "bundle_not_gzip");
    await assertRefused(tar(entry("data.json", "{}")), "bundle_not_gzip");
  });

  test("a download cut short is bundle_truncated", async () => {
    const archive = gzipSync(tar(entry("policy.wasm", Buffer.alloc(64 * 1024, 7))));
    await assertRefused(archive.subarray(0, archive.length - 100), "bundle_truncated");
  });

  test("corrupt compressed data is bundle_archive_invalid", async () => {
    const archive = gzipSync(tar(entry("data.json", "{}")));
    const corrupt = Buffer.from(archive);
    corrupt[12] = (corrupt[12] ?? 0) ^ 0xff;
    corrupt[13] = (corrupt[13] ?? 0) ^ 0xff;
    const error = await refusalOf(corrupt);
    assert.ok(
      ["bundle_archive_invalid", "bundle_truncated"].includes(error.code),
      `unexpected ${error.code}`,
    );
  });
});

describe("readBundleBytes and readBundle", () => {
  const scratch = scratchDir();
  let bundlePath = "";
  before(() => {
    bundlePath = buildWasmBundle(
      scratch.dir,
      {
        "p.rego": "package p\n\nallow if input.x == data.y\n",
        "data.json": '{"y": 1}',
      },
      ["p/allow"],
    );
  });
  after(() => {
    scratch.remove();
  });

  test("bytes and path give the same bundle through the one assembler", async () => {
    const fromBytes = await readBundleBytes(readFileSync(bundlePath), { origin: "downloaded" });
    const fromPath = await readBundle(bundlePath);
    assert.deepEqual(fromBytes, fromPath);
    assert.deepEqual(fromBytes.data, { y: 1 });
    assert.deepEqual(fromBytes.manifest.wasm, [{ entrypoint: "p/allow", module: "/policy.wasm" }]);
    assert.equal(fromBytes.signature, undefined);
  });

  test("a refusal names the origin it was given", async () => {
    const error = await readBundleBytes(Buffer.from("nope"), {
      origin: "https://b.example/x",
    }).then(
      () => assert.fail("accepted"),
      (e: unknown) => e,
    );
    assert.ok(error instanceof BundleRefusal);
    assert.match(error.problems[0] ?? "", /^https:\/\/b\.example\/x: /);
  });

  test("readBundle holds a file on disk to maxCompressedBytes before reading it", async () => {
    const error = await readBundle(bundlePath, { limits: { maxCompressedBytes: 10 } }).then(
      () => assert.fail("accepted"),
      (e: unknown) => e,
    );
    assert.ok(error instanceof BundleRefusal);
    assert.equal(error.code, "bundle_too_large");
    assert.match(
      error.problems[0] ?? "",
      new RegExp(`PDP_BUNDLE ${join(scratch.dir, "bundle.tar.gz")}`),
    );
  });
});

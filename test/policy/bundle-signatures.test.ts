import assert from "node:assert/strict";
import { execFileSync } from "node:child_process";
import { generateKeyPairSync, type KeyObject } from "node:crypto";
import { mkdirSync, readFileSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { after, before, describe, test } from "node:test";
import { BundleRefusal, type BundleRefusalCode } from "../../src/errors.ts";
import {
  defaultBundleLimits,
  readBundleArchive,
  type BundleFiles,
} from "../../src/policy/bundle-archive.ts";
import { readBundle, readBundleBytes } from "../../src/policy/bundle-reader.ts";
import {
  bundleVerificationProblems,
  canonicalJson,
  hashBundleFile,
  verifyBundleSignatures,
  type BundleVerificationKey,
  type BundleVerificationOptions,
} from "../../src/policy/bundle-signatures.ts";
import { opaPath, repoRoot, scratchDir } from "../support/opa.ts";
import { packBundle } from "../support/tarball.ts";

/**
 * Every signed bundle here is written by the real `opa build --signing-key`
 * or `opa sign`, with keys generated for this run (no private key is
 * committed). The data file is deliberately awkward for canonical hashing:
 * unsorted keys, whitespace, number spellings JSON.parse would lose,
 * characters Go escapes differently from JavaScript.
 */
const awkwardData = `{
  "z": {"b": [1, {"d": 2, "c": 3}], "a": null},
  "y": 1,
  "n": 1.50, "e": 1E2, "neg": -0,
  "s": "<&> \\u2028 é 😀 \\u0001 tab\\t",
  "ü": true, "Z": false, "ab": "", "a\\u00e9": 1
}
`;

/** The same document as awkwardData: other key order, whitespace and escapes, same number spellings. */
const reorderedData =
  '{"ab":"","Z":false,"ü":true,"aé":1,"s":"<&> \\u2028 \\u00e9 😀 \\u0001 tab\\t",' +
  '"neg":-0,"e":1E2,"n":1.50,"y":1,"z":{"a":null,"b":[1,{"c":3,"d":2}]}}';

const rego = "package p\n\nallow if input.x == data.y\n";

describe("verifying bundle signatures written by opa", () => {
  const scratch = scratchDir();
  const src = join(scratch.dir, "src");
  const rsa = generateKeyPairSync("rsa", { modulusLength: 2048 });
  const otherRsa = generateKeyPairSync("rsa", { modulusLength: 2048 });
  const ec = generateKeyPairSync("ec", { namedCurve: "P-256" });
  const ed = generateKeyPairSync("ed25519");
  const bundles: Record<string, Buffer> = {};

  const pem = (key: KeyObject): string =>
    key.type === "private"
      ? key.export({ type: "pkcs8", format: "pem" }).toString()
      : key.export({ type: "spki", format: "pem" }).toString();
  const opa = (args: string[], cwd = scratch.dir): void => {
    execFileSync(opaPath(), args, { cwd, stdio: ["ignore", "ignore", "inherit"] });
  };
  const build = (name: string, extra: string[]): void => {
    const out = join(scratch.dir, `${name}.tar.gz`);
    opa(["build", "-t", "wasm", "-e", "p/allow", "-o", out, ...extra, "--bundle", src]);
    bundles[name] = readFileSync(out);
  };
  /** Whether the real `opa build --verification-key` accepts this archive signed by `rsa`. */
  const opaVerifies = (archive: Buffer): boolean => {
    const file = join(scratch.dir, "candidate.tar.gz");
    writeFileSync(file, archive);
    try {
      execFileSync(
        opaPath(),
        [
          "build",
          "--verification-key",
          join(scratch.dir, "rsa.pub.pem"),
          "--bundle",
          file,
          "-o",
          join(scratch.dir, "out.tar.gz"),
        ],
        { stdio: "ignore" },
      );
      return true;
    } catch {
      return false;
    }
  };
  const files = (name: string): Promise<BundleFiles> =>
    readBundleArchive(bundles[name] ?? Buffer.alloc(0), defaultBundleLimits, name);
  const key = (k: KeyObject | string, algorithm: BundleVerificationKey["algorithm"]) => ({
    key: typeof k === "string" ? k : pem(k),
    algorithm,
  });
  const rsaKeys: BundleVerificationOptions = {
    keys: new Map([["default", key(rsa.publicKey, "RS256")]]),
  };
  // opa sign writes no kid: the key id comes from configuration.
  const rsaKeysById: BundleVerificationOptions = { ...rsaKeys, keyId: "default" };
  // GNU tar notes on stderr that it strips opa's leading "/"; a failure still throws.
  const untar = (archive: string, dir: string): void => {
    execFileSync("tar", ["-xzf", archive, "-C", dir], { stdio: ["ignore", "ignore", "ignore"] });
  };

  before(() => {
    mkdirSync(src);
    writeFileSync(join(src, "p.rego"), rego);
    writeFileSync(join(src, "data.json"), awkwardData);
    const secret = (name: string, content: string): string => {
      const file = join(scratch.dir, name);
      writeFileSync(file, content, { mode: 0o600 });
      return file;
    };
    const rsaFile = secret("rsa.pem", pem(rsa.privateKey));
    writeFileSync(join(scratch.dir, "rsa.pub.pem"), pem(rsa.publicKey));
    build("unsigned", []);
    build("rs256", ["--signing-key", rsaFile]);
    build("ps256", ["--signing-key", rsaFile, "--signing-alg", "PS256"]);
    // `opa build --scope` only sets the scope it verifies with; the signed
    // scope is a claim, given with --claims-file.
    const claims = secret("claims.json", '{"scope": "write"}');
    const ecFile = secret("ec.pem", pem(ec.privateKey));
    build("es256-scoped", [
      "--signing-key",
      ecFile,
      "--signing-alg",
      "ES256",
      "--claims-file",
      claims,
    ]);
    build("es256", ["--signing-key", ecFile, "--signing-alg", "ES256"]);
    build("eddsa", [
      "--signing-key",
      secret("ed.pem", pem(ed.privateKey)),
      "--signing-alg",
      "EdDSA",
    ]);
    build("hs256", ["--signing-key", "a shared secret of some length", "--signing-alg", "HS256"]);
  });
  after(() => {
    scratch.remove();
  });

  async function refusal(
    bundle: Promise<unknown>,
    code: BundleRefusalCode,
  ): Promise<BundleRefusal> {
    try {
      await bundle;
    } catch (error) {
      assert.ok(error instanceof BundleRefusal, `expected a BundleRefusal, got ${String(error)}`);
      assert.equal(error.code, code, error.message);
      return error;
    }
    assert.fail(`accepted; expected ${code}`);
  }

  test("an RS256 bundle from opa build verifies, and opa's hash of data.json is ours", async () => {
    const bundle = await readBundleBytes(bundles.rs256 ?? Buffer.alloc(0), {
      verification: rsaKeys,
    });
    assert.deepEqual(bundle.signature, { keyId: "default", algorithm: "RS256", files: 4 });
    assert.equal((bundle.data as { n: unknown }).n, 1.5);
  });

  test("ES256 with a signed scope verifies with that scope, from the options or the key", async () => {
    const es = key(ec.publicKey, "ES256");
    const keys = new Map([["es", es]]);
    const verified = await verifyBundleSignatures(
      await files("es256-scoped"),
      { keys, keyId: "es", scope: "write" },
      "t",
    );
    assert.equal(verified.keyId, "es");
    await verifyBundleSignatures(
      await files("es256-scoped"),
      { keys: new Map([["es", { ...es, scope: "write" }]]), keyId: "es" },
      "t",
    );
  });

  test("a wrong or missing scope is bundle_signature_scope", async () => {
    const keys = new Map([["es", key(ec.publicKey, "ES256")]]);
    const scoped = await files("es256-scoped");
    await refusal(
      verifyBundleSignatures(scoped, { keys, keyId: "es", scope: "read" }, "t"),
      "bundle_signature_scope",
    );
    await refusal(
      verifyBundleSignatures(scoped, { keys, keyId: "es" }, "t"),
      "bundle_signature_scope",
    );
    await refusal(
      verifyBundleSignatures(await files("es256"), { keys, keyId: "es", scope: "write" }, "t"),
      "bundle_signature_scope",
    );
  });

  test("the key is chosen by configured keyId over the JWT's kid", async () => {
    // opa build writes kid "default"; a configured keyid names another key.
    const keys = new Map([
      ["default", key(otherRsa.publicKey, "RS256")],
      ["mine", key(rsa.publicKey, "RS256")],
    ]);
    const verified = await verifyBundleSignatures(
      await files("rs256"),
      { keys, keyId: "mine" },
      "t",
    );
    assert.equal(verified.keyId, "mine");
    await refusal(
      verifyBundleSignatures(await files("rs256"), { keys }, "t"),
      "bundle_signature_invalid",
    );
  });

  test("no usable key id is bundle_signature_key_unknown", async () => {
    // With --claims-file opa writes no kid: without a configured keyid there is no key.
    const keys = new Map([["es", key(ec.publicKey, "ES256")]]);
    await refusal(
      verifyBundleSignatures(await files("es256-scoped"), { keys, scope: "write" }, "t"),
      "bundle_signature_key_unknown",
    );
    await refusal(
      verifyBundleSignatures(
        await files("rs256"),
        { keys: new Map([["other", key(rsa.publicKey, "RS256")]]) },
        "t",
      ),
      "bundle_signature_key_unknown",
    );
  });

  test("a wrong key is bundle_signature_invalid; a key for another algorithm is bundle_signature_algorithm", async () => {
    const rs = await files("rs256");
    await refusal(
      verifyBundleSignatures(
        rs,
        { keys: new Map([["default", key(otherRsa.publicKey, "RS256")]]) },
        "t",
      ),
      "bundle_signature_invalid",
    );
    await refusal(
      verifyBundleSignatures(
        rs,
        { keys: new Map([["default", key(rsa.publicKey, "RS384")]]) },
        "t",
      ),
      "bundle_signature_algorithm",
    );
    await refusal(
      verifyBundleSignatures(
        rs,
        { keys: new Map([["default", key(rsa.publicKey, "PS256")]]) },
        "t",
      ),
      "bundle_signature_algorithm",
    );
  });

  test("PS256, EdDSA and HS256 bundles from opa build verify", async () => {
    await verifyBundleSignatures(
      await files("ps256"),
      { keys: new Map([["default", key(rsa.publicKey, "PS256")]]) },
      "t",
    );
    await verifyBundleSignatures(
      await files("eddsa"),
      { keys: new Map([["default", key(ed.publicKey, "EdDSA")]]) },
      "t",
    );
    const hs = { keys: new Map([["default", key("a shared secret of some length", "HS256")]]) };
    await verifyBundleSignatures(await files("hs256"), hs, "t");
    const wrong = { keys: new Map([["default", key("another secret of some length", "HS256")]]) };
    await refusal(
      verifyBundleSignatures(await files("hs256"), wrong, "t"),
      "bundle_signature_invalid",
    );
  });

  test("one changed byte of policy.wasm or data.json is bundle_file_hash_mismatch", async () => {
    const wasm = await files("rs256");
    const module = Buffer.from(wasm.get("/policy.wasm") ?? Buffer.alloc(0));
    module[module.length - 1] = (module[module.length - 1] ?? 0) ^ 1;
    wasm.set("/policy.wasm", module);
    const error = await refusal(
      readBundleBytes(packBundle(wasm), { verification: rsaKeys }),
      "bundle_file_hash_mismatch",
    );
    assert.match(error.problems[0] ?? "", /policy\.wasm/);
    assert.ok(!opaVerifies(packBundle(wasm)), "opa itself refuses the changed module");

    const data = await files("rs256");
    data.set(
      "/data.json",
      Buffer.from((data.get("/data.json") ?? Buffer.alloc(0)).toString().replace('"y":1', '"y":2')),
    );
    await refusal(
      readBundleBytes(packBundle(data), { verification: rsaKeys }),
      "bundle_file_hash_mismatch",
    );
  });

  test("re-ordered keys and whitespace in data.json still verify: OPA hashes JSON canonically", async () => {
    const bundle = await files("rs256");
    bundle.set("/data.json", Buffer.from(reorderedData));
    await readBundleBytes(packBundle(bundle), { verification: rsaKeys });
    assert.ok(opaVerifies(packBundle(bundle)), "opa itself accepts the re-ordered data.json");
    // A changed number spelling is a changed document for OPA (json.Number).
    bundle.set("/data.json", Buffer.from(awkwardData.replace("1.50", "1.5")));
    await refusal(verifyBundleSignatures(bundle, rsaKeys, "t"), "bundle_file_hash_mismatch");
    assert.ok(!opaVerifies(packBundle(bundle)), "opa itself refuses the re-spelled number");
    bundle.set("/data.json", Buffer.from(awkwardData));
    await verifyBundleSignatures(bundle, rsaKeys, "t");
    assert.ok(opaVerifies(packBundle(bundle)), "opa itself accepts the original text");
  });

  test("a missing file is bundle_file_missing; an extra one is bundle_file_unexpected unless excluded", async () => {
    const missing = await files("rs256");
    // opa build names the module by the path it was given (here absolute).
    const module = [...missing.keys()].find((path) => path.endsWith("/p.rego"));
    assert.ok(module !== undefined && missing.delete(module));
    const error = await refusal(
      readBundleBytes(packBundle(missing), { verification: rsaKeys }),
      "bundle_file_missing",
    );
    assert.match(error.problems.join(" "), /p\.rego/);

    const extra = await files("rs256");
    extra.set("/extra/notes.rego", Buffer.from("package extra"));
    await refusal(
      readBundleBytes(packBundle(extra), { verification: rsaKeys }),
      "bundle_file_unexpected",
    );
    // exclude_files uses Go's filepath.Match: `*` does not cross `/`.
    await refusal(
      verifyBundleSignatures(extra, { ...rsaKeys, exclude: ["*.rego"] }, "t"),
      "bundle_file_unexpected",
    );
    await verifyBundleSignatures(extra, { ...rsaKeys, exclude: ["extra/*.rego"] }, "t");
  });

  test("an unsigned bundle is bundle_unsigned when keys are configured, and reads without them", async () => {
    await refusal(
      readBundleBytes(bundles.unsigned ?? Buffer.alloc(0), { verification: rsaKeys }),
      "bundle_unsigned",
    );
    const bundle = await readBundleBytes(bundles.unsigned ?? Buffer.alloc(0));
    assert.equal(bundle.signature, undefined);
  });

  test("a .signatures.json with two JWTs or a signing plugin is bundle_signature_invalid", async () => {
    const bundle = await files("rs256");
    const token = (
      JSON.parse((bundle.get("/.signatures.json") ?? Buffer.alloc(0)).toString()) as {
        signatures: string[];
      }
    ).signatures[0];
    bundle.set("/.signatures.json", Buffer.from(JSON.stringify({ signatures: [token, token] })));
    await refusal(verifyBundleSignatures(bundle, rsaKeys, "t"), "bundle_signature_invalid");
    bundle.set(
      "/.signatures.json",
      Buffer.from(JSON.stringify({ signatures: [token], plugin: "custom" })),
    );
    await refusal(verifyBundleSignatures(bundle, rsaKeys, "t"), "bundle_signature_invalid");
  });

  test("a directory signed with opa sign verifies through readBundle", async () => {
    const dir = join(scratch.dir, "signed-dir");
    mkdirSync(dir);
    untar(join(scratch.dir, "unsigned.tar.gz"), dir);
    // opa sign names files as given on its command line: sign "." from inside.
    opa(["sign", "--signing-key", join(scratch.dir, "rsa.pem"), "--bundle", "."], dir);
    const bundle = await readBundle(dir, { verification: rsaKeysById });
    assert.equal(bundle.signature?.files, 4);
    writeFileSync(join(dir, "stray.json"), "{}");
    await refusal(readBundle(dir, { verification: rsaKeysById }), "bundle_file_unexpected");
  });

  test("configured keys are checked up front, each problem naming its key", () => {
    const problems = bundleVerificationProblems({
      keys: new Map<string, BundleVerificationKey>([
        ["good", key(rsa.publicKey, "RS256")],
        ["broken", key("-----BEGIN PUBLIC KEY-----\nnope\n-----END PUBLIC KEY-----\n", "RS256")],
        ["weird", { key: pem(rsa.publicKey), algorithm: "none" as "RS256" }],
      ]),
      keyId: "absent",
    });
    assert.deepEqual(
      problems.map((p) => p.split(":")[0]),
      ["key broken", "key weird", "keyid absent"],
    );
  });

  test("cost: verifying the default bundle signed with opa sign", async (t) => {
    const dir = join(scratch.dir, "default-bundle");
    mkdirSync(dir);
    untar(join(repoRoot, "bundle", "bundle.tar.gz"), dir);
    opa(["sign", "--signing-key", join(scratch.dir, "rsa.pem"), "--bundle", "."], dir);
    const archive = execFileSync("tar", ["-czf", "-", "-C", dir, "."]);
    const signed = await readBundleArchive(archive, defaultBundleLimits, "default");
    await verifyBundleSignatures(signed, rsaKeysById, "default");
    const runs = 20;
    const timings: number[] = [];
    for (let i = 0; i < runs; i++) {
      const started = performance.now();
      await verifyBundleSignatures(signed, rsaKeysById, "default");
      timings.push(performance.now() - started);
    }
    timings.sort((a, b) => a - b);
    const read: number[] = [];
    for (let i = 0; i < runs; i++) {
      const started = performance.now();
      await readBundleBytes(archive, { verification: rsaKeysById });
      read.push(performance.now() - started);
    }
    read.sort((a, b) => a - b);
    const plain: number[] = [];
    for (let i = 0; i < runs; i++) {
      const started = performance.now();
      await readBundleBytes(archive);
      plain.push(performance.now() - started);
    }
    plain.sort((a, b) => a - b);
    t.diagnostic(
      `default bundle (${archive.length} bytes, ${signed.size} files): verify median ${(timings[runs / 2] ?? 0).toFixed(2)} ms, ` +
        `max ${(timings[runs - 1] ?? 0).toFixed(2)} ms; readBundleBytes with verification median ${(read[runs / 2] ?? 0).toFixed(2)} ms; without ${(plain[runs / 2] ?? 0).toFixed(2)} ms`,
    );
    assert.ok((timings[runs / 2] ?? Infinity) < 100);
  });
});

describe("canonical JSON as OPA hashes it", () => {
  test("sorted keys by UTF-8 bytes, no whitespace, numbers as written, Go's string escapes", () => {
    const value: unknown = JSON.parse(awkwardData);
    assert.equal(canonicalJson({ b: 1, a: [true, null, "x"] }), '{"a":[true,null,"x"],"b":1}');
    assert.match(canonicalJson(value), /"s":"<&> \\u2028 é 😀 \\u0001 tab\\t"/);
    // Numbers keep their spelling only when hashed from the file text.
    const digest = hashBundleFile("data.json", Buffer.from(awkwardData), "SHA-256", "t");
    const respelled = hashBundleFile(
      "data.json",
      Buffer.from(awkwardData.replace("1E2", "100")),
      "SHA-256",
      "t",
    );
    assert.notEqual(digest, respelled);
    // Astral characters sort after U+FFFF by UTF-8 bytes (UTF-16 order would put them first).
    assert.equal(canonicalJson({ "\uffff": 1, "😀": 2 }), '{"\uffff":1,"😀":2}');
  });

  test("weak file hash algorithms are refused", () => {
    assert.throws(
      () => hashBundleFile("policy.wasm", Buffer.from("x"), "MD5", "t"),
      (e: unknown) => e instanceof BundleRefusal && e.code === "bundle_signature_invalid",
    );
  });
});

/**
 * policy.signing on the local source: with keys configured, PDP_BUNDLE must
 * be signed at startup and at every reload (the real `opa build
 * --signing-key` writes the signed one); an unsigned one is refused
 * `bundle_unsigned` (no start; on reload, the last good revision kept and
 * the refusal counted). And the new policy keys are checked in one run,
 * each problem with its key path.
 */
import assert from "node:assert/strict";
import { execFileSync } from "node:child_process";
import { generateKeyPairSync, randomBytes } from "node:crypto";
import { copyFileSync, mkdirSync, renameSync, rmSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { after, before, describe, test } from "node:test";
import { ConfigError, embeddedBundlePath, loadConfig } from "../../src/config/index.ts";
import { StartupError } from "../../src/errors.ts";
import { postJson, startPdp } from "../support/pdp.ts";
import { opaPath, scratchDir } from "../support/opa.ts";
import { parseExposition, sha256Hex, total } from "../observability/helpers.ts";

const scratch = scratchDir();
const dir = scratch.dir;
const src = join(dir, "src");
const opsKey = randomBytes(24).toString("base64url");
const ops = { "x-api-key": opsKey };
const rsa = generateKeyPairSync("rsa", { modulusLength: 2048 });
const privateKeyFile = join(dir, "signing.pem");
const publicKeyFile = join(dir, "signing.pub.pem");

function build(revision: string, signed: boolean): string {
  const out = join(dir, `${revision}.tar.gz`);
  execFileSync(
    opaPath(),
    [
      "build",
      "--bundle",
      ".",
      "--revision",
      revision,
      "-o",
      out,
      ...(signed ? ["--signing-key", privateKeyFile] : []),
    ],
    { cwd: src, stdio: ["ignore", "ignore", "inherit"] },
  );
  return out;
}

function configFile(name: string, policy: Record<string, unknown>): string {
  const path = join(dir, name);
  writeFileSync(path, JSON.stringify({ ops: { api_key_sha256: [sha256Hex(opsKey)] }, policy }));
  return path;
}

const signing = {
  keys: [{ id: "default", algorithm: "RS256", key_file: publicKeyFile }],
  keyid: "default",
};

let signedPath: string;
let unsignedPath: string;

before(() => {
  writeFileSync(privateKeyFile, rsa.privateKey.export({ type: "pkcs8", format: "pem" }), {
    mode: 0o600,
  });
  writeFileSync(publicKeyFile, rsa.publicKey.export({ type: "spki", format: "pem" }));
  mkdirSync(src);
  // GNU tar notes on stderr that it strips opa's leading "/"; a failure still throws.
  execFileSync("tar", ["-xzf", embeddedBundlePath, "-C", src], { stdio: "ignore" });
  rmSync(join(src, ".signatures.json"), { force: true });
  rmSync(join(src, ".manifest"), { force: true });
  signedPath = build("s1", true);
  unsignedPath = build("u1", false);
});

after(() => {
  scratch.remove();
});

describe("policy.signing with PDP_BUNDLE", () => {
  test("an unsigned PDP_BUNDLE does not start", async () => {
    await assert.rejects(
      startPdp({
        env: { PDP_BUNDLE: unsignedPath, PDP_CONFIG: configFile("unsigned.json", { signing }) },
      }),
      (error: unknown) =>
        error instanceof StartupError &&
        error.code === "bundle_unsigned" &&
        error.message.includes(unsignedPath),
    );
  });

  test("a signed one starts; reloading an unsigned one is refused, counted, and the signed revision kept", async () => {
    const live = join(dir, "live.tar.gz");
    copyFileSync(signedPath, live);
    const pdp = await startPdp({
      env: {
        PDP_BUNDLE: live,
        PDP_CONFIG: configFile("signed.json", { signing, watch: false }),
      },
    });
    try {
      const ready = await fetch(`${pdp.url}/ready`, { headers: ops });
      assert.equal(((await ready.json()) as { revision: string }).revision, "s1");
      copyFileSync(unsignedPath, `${live}.new`);
      renameSync(`${live}.new`, live);
      const reload = await postJson(`${pdp.url}/v1/policy/reload`, "", ops);
      assert.equal(reload.status, 422, JSON.stringify(reload.body));
      assert.equal((reload.body as { code: string }).code, "bundle_unsigned");
      assert.equal((reload.body as { revision: string }).revision, "s1");
      const metrics = await fetch(`${pdp.url}/metrics`, { headers: ops });
      assert.equal(
        total(parseExposition(await metrics.text()), "mcp_pdp_bundle_load_failures_total", {
          source: "local",
          reason: "bundle_unsigned",
        }),
        1,
      );
    } finally {
      await pdp.close();
    }
  });
});

/** The key paths of every problem loading this PDP_CONFIG reports (it must be refused). */
function problemPaths(file: string): string[] {
  try {
    loadConfig({ PDP_CONFIG: file });
  } catch (error) {
    assert.ok(error instanceof ConfigError, String(error));
    return error.details.map((problem) => problem.path).sort();
  }
  assert.fail("the configuration was accepted");
}

test("the policy.signing and policy.service problems are reported in one run, each with its key path", () => {
  const missing = join(dir, "nowhere.pem");
  const file = configFile("problems.json", {
    signing: {
      keys: [
        { id: "a", algorithm: "none", key_file: publicKeyFile },
        { id: "a", algorithm: "RS256", key_file: missing },
      ],
      keyid: "b",
    },
    service: {
      url: "ftp://bundles.example.com",
      resource: "bundles/authz.tar.gz",
      min_delay_s: 30,
      max_delay_s: 10,
      credentials: { bearer_token_file: publicKeyFile, bearer_token_env: "TOKEN" },
      persisted_max_age_s: 60,
    },
  });
  assert.deepEqual(
    problemPaths(file),
    [
      "policy.signing.keys[0].algorithm",
      "policy.signing.keys[1].key_file",
      "policy.service.url",
    ].sort(),
    // The schema failed the section: its cross-key rules wait for a policy section that passes.
  );
});

test("with a valid section, the cross-key rules name each key", () => {
  const file = configFile("rules.json", {
    signing: {
      keys: [
        { id: "a", algorithm: "RS256", key_file: publicKeyFile },
        { id: "a", algorithm: "RS256", key_file: publicKeyFile },
      ],
      keyid: "b",
    },
    service: {
      url: "https://bundles.example.com",
      resource: "bundles/authz.tar.gz",
      min_delay_s: 30,
      max_delay_s: 10,
      credentials: { bearer_token_file: publicKeyFile, bearer_token_env: "TOKEN" },
      persisted_max_age_s: 60,
    },
  });
  assert.deepEqual(
    problemPaths(file),
    [
      "policy.service.credentials.bearer_token_env",
      "policy.service.min_delay_s",
      "policy.service.persisted_max_age_s",
      "policy.signing.keyid",
      "policy.signing.keys[1].id",
    ].sort(),
  );
});

test("policy.bundle beside policy.service is a warning: it is not read", () => {
  const file = configFile("both.json", {
    service: { url: "https://bundles.example.com", resource: "bundles/authz.tar.gz" },
  });
  const config = loadConfig({ PDP_CONFIG: file, PDP_BUNDLE: signedPath });
  assert.ok(
    config.auth.warnings.some((warning) =>
      warning.endsWith(
        ": PDP_BUNDLE is not read: the bundle comes from policy.service (policy.data is still merged over it)",
      ),
    ),
    config.auth.warnings.join("; "),
  );
});

import assert from "node:assert/strict";
import { writeFileSync } from "node:fs";
import { join } from "node:path";
import { after, test } from "node:test";
import { embeddedBundlePath, loadConfig } from "../../src/config/index.js";
import { StartupError } from "../../src/errors.js";
import { scratchDir } from "../support/opa.js";

const scratch = scratchDir();
after(() => {
  scratch.remove();
});

/** A file the configuration may name: it must exist (its content is read when the app is built). */
function existingFile(name: string): string {
  const file = join(scratch.dir, name);
  writeFileSync(file, "stand-in\n");
  return file;
}

test("defaults: loopback, port 8180, the embedded bundle and the default entrypoint", () => {
  const config = loadConfig({});
  assert.equal(config.host, "127.0.0.1");
  assert.equal(config.port, 8180);
  assert.equal(config.publicUrl, "http://127.0.0.1:8180");
  assert.equal(config.policy.bundlePath, embeddedBundlePath);
  assert.equal(config.policy.dataPath, undefined);
  assert.equal(config.policy.entrypoint, "mcp/authz/decision");
  assert.equal(config.policy.configEntrypoint, "mcp/authz/config_errors");
  assert.equal(config.limits.maxBodyBytes, 1048576);
  assert.ok(Object.isFrozen(config));
});

test("variables override the defaults", () => {
  const bundle = existingFile("b.tar.gz");
  const data = existingFile("d.yaml");
  const config = loadConfig({
    HOST: "::1",
    PORT: "9000",
    PDP_BUNDLE: bundle,
    PDP_DATA: data,
    PDP_ENTRYPOINT: "acme/allow",
    PDP_CONFIG_ENTRYPOINT: "",
    PDP_MAX_BODY_BYTES: "4096",
    LOG_LEVEL: "debug",
  });
  assert.equal(config.publicUrl, "http://[::1]:9000");
  assert.equal(config.policy.bundlePath, bundle);
  assert.equal(config.policy.dataPath, data);
  assert.equal(config.policy.entrypoint, "acme/allow");
  assert.equal(config.policy.configEntrypoint, undefined);
  assert.equal(config.limits.maxBodyBytes, 4096);
  assert.equal(config.logLevel, "debug");
});

test("every problem is reported at once, each naming its variable", () => {
  try {
    loadConfig({
      PORT: "http",
      LOG_LEVEL: "loud",
      PDP_ENTRYPOINT: "data.mcp.authz",
      PDP_MAX_DEPTH: "1",
      PDP_PUBLIC_URL: "ftp://x",
    });
    assert.fail("expected config_invalid");
  } catch (error) {
    assert.ok(error instanceof StartupError);
    assert.equal(error.code, "config_invalid");
    const named = error.problems.map((p) => p.split("=")[0]);
    assert.deepEqual(named.sort(), [
      "LOG_LEVEL",
      "PDP_ENTRYPOINT",
      "PDP_MAX_DEPTH",
      "PDP_PUBLIC_URL",
      "PORT",
    ]);
  }
});

test("PDP_DECISION_LOG_MAX_RECORD_BYTES: 16 KiB by default, 1024 to 64 MiB", () => {
  assert.equal(loadConfig({}).observability.decisionLogMaxRecordBytes, 16384);
  assert.equal(
    loadConfig({ PDP_DECISION_LOG_MAX_RECORD_BYTES: "4096" }).observability
      .decisionLogMaxRecordBytes,
    4096,
  );
  for (const raw of ["1023", "67108865", "16k", "-1"]) {
    assert.throws(
      () => loadConfig({ PDP_DECISION_LOG_MAX_RECORD_BYTES: raw }),
      (error: unknown) =>
        error instanceof StartupError &&
        error.problems.length === 1 &&
        error.problems[0] ===
          `PDP_DECISION_LOG_MAX_RECORD_BYTES=${raw}: must be a whole number from 1024 to 67108864`,
      raw,
    );
  }
});

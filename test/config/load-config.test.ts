import assert from "node:assert/strict";
import { writeFileSync } from "node:fs";
import { join } from "node:path";
import { after, test } from "node:test";
import { ConfigError, embeddedBundlePath, loadConfig } from "../../src/config/index.ts";
import { StartupError } from "../../src/errors.ts";
import { scratchDir } from "../support/opa.ts";

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

/** Writes a PDP_CONFIG file (JSON is YAML too) and returns its path. */
function configFile(name: string, content: unknown): string {
  const file = join(scratch.dir, name);
  writeFileSync(file, JSON.stringify(content, null, 2));
  return file;
}

function refusal(env: Record<string, string>): ConfigError {
  try {
    loadConfig(env);
  } catch (error) {
    assert.ok(error instanceof ConfigError, String(error));
    assert.equal(error.code, "config_invalid");
    assert.equal(error.problems.length, error.details.length, "one line per problem");
    return error;
  }
  return assert.fail("expected config_invalid");
}

test("a file with 12 problems of every kind reports all 12 in one run", () => {
  const missing = join(scratch.dir, "nowhere");
  const key = "a".repeat(64);
  const file = configFile("twelve-problems.yaml", {
    server: { port: "http", headers_timeout_ms: 40000, request_timeout_ms: 30000 },
    policy: { data: `${missing}/data.yaml` },
    decision_log: { erase: ["/ok", "not-a-pointer"] },
    issuers: [{ issuer: "https://idp.example.com", jwks_file: `${missing}/jwks.json` }],
    callers: [
      { name: "pep", api_key_sha256: [key] },
      { name: "pep", api_key_sha256: [key.toUpperCase()] },
      { name: "mtls", mtls_subjects: ["gw.internal"] },
    ],
    tls: { cert_file: `${missing}/cert.pem`, key_file: `${missing}/key.pem` },
    forward_auth: { trusted_proxies: ["10.0.0.0/8", "everywhere"] },
    extra: true,
  });
  const error = refusal({ PDP_CONFIG: file, LOG_LEVEL: "loud" });
  assert.deepEqual(
    error.details.map((problem) => problem.path).sort(),
    [
      // The schema: types, unknown keys, one value's own checks, files that are not there.
      "LOG_LEVEL",
      "callers[1].api_key_sha256[0]",
      "callers[1].name",
      "decision_log.erase[1]",
      "extra",
      "forward_auth.trusted_proxies[1]",
      "issuers[0].jwks_file",
      "policy.data",
      "server.port",
      "tls.cert_file",
      "tls.key_file",
      // A rule across keys, still run on the valid keys of a section that failed. (The mTLS
      // caller's rule, tls.client_ca_file, waits for a tls section that passes.)
      "server.headers_timeout_ms",
    ].sort(),
  );
  assert.equal(error.details.length, 12);
  for (const line of error.problems) {
    assert.ok(line.startsWith(`PDP_CONFIG ${file}: `) || line.startsWith("LOG_LEVEL=loud: "), line);
  }
  assert.ok(
    error.problems.includes(
      `PDP_CONFIG ${file}: server.port: must be a whole number from 0 to 65535`,
    ),
  );
  assert.ok(
    error.problems.includes(
      `PDP_CONFIG ${file}: server.headers_timeout_ms: must not exceed server.request_timeout_ms (30000)`,
    ),
  );
  assert.ok(
    error.problems.includes(
      `PDP_CONFIG ${file}: tls.cert_file: ${missing}/cert.pem does not exist (ENOENT)`,
    ),
  );
});

test("every section can live in the file; each variable overrides its one key", () => {
  const data = existingFile("operator-data.yaml");
  const file = configFile("sections.yaml", {
    server: { host: "::1", port: 9000, max_body_bytes: 4096, probe_port: 9001 },
    policy: { data, entrypoint: "acme/allow", config_entrypoint: "" },
    limits: { max_evaluations: 10 },
    log: { level: "debug" },
    decision_log: { destination: "off", context: [], max_record_bytes: 2048 },
    metrics: { tool_labels: ["files/read_file"] },
  });
  const fromFile = loadConfig({ PDP_CONFIG: file });
  assert.equal(fromFile.host, "::1");
  assert.equal(fromFile.port, 9000);
  assert.equal(fromFile.publicUrl, "http://[::1]:9000");
  assert.equal(fromFile.limits.maxBodyBytes, 4096);
  assert.equal(fromFile.limits.maxEvaluations, 10);
  assert.equal(fromFile.transport.probePort, 9001);
  assert.equal(fromFile.policy.dataPath, data);
  assert.equal(fromFile.policy.entrypoint, "acme/allow");
  assert.equal(fromFile.policy.configEntrypoint, undefined);
  assert.equal(fromFile.logLevel, "debug");
  assert.equal(fromFile.observability.decisionLog, "off");
  assert.deepEqual(fromFile.observability.decisionLogContext, []);
  assert.equal(fromFile.observability.decisionLogMaxRecordBytes, 2048);
  assert.deepEqual(fromFile.observability.toolLabels, ["files/read_file"]);

  const overridden = loadConfig({
    PDP_CONFIG: file,
    PORT: "9100",
    LOG_LEVEL: "warn",
    PDP_DECISION_LOG_CONTEXT: "ip",
  });
  assert.equal(overridden.port, 9100);
  assert.equal(overridden.host, "::1", "keys without a variable set keep the file's value");
  assert.equal(overridden.logLevel, "warn");
  assert.deepEqual(overridden.observability.decisionLogContext, ["ip"]);
});

test("a variable is refused as its key in the file would be, and each is named by where it came from", () => {
  const file = configFile("port.yaml", { server: { port: "http" } });
  const fromFile = refusal({ PDP_CONFIG: file });
  const fromVariable = refusal({ PORT: "http" });
  assert.deepEqual(fromFile.details, [
    { path: "server.port", message: "must be a whole number from 0 to 65535" },
  ]);
  assert.deepEqual(fromVariable.details, [
    { path: "PORT", message: "must be a whole number from 0 to 65535" },
  ]);
  assert.deepEqual(fromVariable.problems, ["PORT=http: must be a whole number from 0 to 65535"]);
  // The variable wins over the file, so the file's wrong value is not a problem any more.
  assert.equal(loadConfig({ PDP_CONFIG: file, PORT: "9000" }).port, 9000);
  // A rule names the other key by its variable when that is where it came from.
  const timeouts = refusal({ PDP_HEADERS_TIMEOUT_MS: "40000" });
  assert.deepEqual(timeouts.problems, [
    "PDP_HEADERS_TIMEOUT_MS=40000: must not exceed PDP_REQUEST_TIMEOUT_MS (30000)",
  ]);
});

test("the bundle and the data must exist and be readable before anything is built", () => {
  const missing = join(scratch.dir, "missing");
  const error = refusal({ PDP_BUNDLE: `${missing}.tar.gz`, PDP_DATA: scratch.dir });
  assert.deepEqual([...error.problems].sort(), [
    `PDP_BUNDLE=${missing}.tar.gz: ${missing}.tar.gz does not exist (ENOENT)`,
    `PDP_DATA=${scratch.dir}: ${scratch.dir} is a directory, not a file`,
  ]);
  // A bundle may be a directory.
  assert.equal(loadConfig({ PDP_BUNDLE: scratch.dir }).policy.bundlePath, scratch.dir);
});

/** A PDP_CONFIG file with this YAML text. */
function yamlFile(text: string): string {
  const file = join(scratch.dir, `config-${String(Math.random()).slice(2)}.yaml`);
  writeFileSync(file, text);
  return file;
}

test("a YAML tag that builds a Map, Set, date or bytes is refused, never read as an empty section", () => {
  const sha = "b".repeat(64);
  // Each of these loaded as defaults before: `ops` open, the erase pointer dropped, no callers.
  for (const text of [
    `ops: !!omap\n  - open: false\n  - api_key_sha256: [${sha}]\n`,
    "ops: !!set\n  ? open\n",
    "decision_log: !!omap\n  - erase: [/subject/properties/email]\n",
    "!!omap\n- server: {host: 127.0.0.1}\n",
    "server:\n  public_url: !!binary aGVsbG8=\n",
  ]) {
    assert.throws(
      () => loadConfig({ PDP_CONFIG: yamlFile(text) }),
      (error: unknown) =>
        error instanceof ConfigError && /YAML tags are refused/.test(error.problems.join("\n")),
      text,
    );
  }
});

test("keys named like Object.prototype members are problems of the file, not a crash", () => {
  for (const text of [
    "server:\n  toString: 1\n",
    "limits:\n  constructor: 1\n",
    "forward_auth:\n  constructor: 1\n",
    "server:\n  __proto__: {port: 1}\n",
  ]) {
    assert.throws(() => loadConfig({ PDP_CONFIG: yamlFile(text) }), ConfigError, text);
  }
});

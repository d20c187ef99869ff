/**
 * Every file in examples/ loads, as written, in the shape the README promises.
 * The directory is listed, not named file by file: a new example without a
 * check here fails the first test, so none can escape.
 *
 * - operator-data.yaml: merged over the embedded bundle, accepted by the
 *   policy's own config check, and classifying the catalogued tools as the
 *   README says.
 * - pdp-config.yaml: validates with no problem and no warning (but for its
 *   TLS files, which live on the deployment host), is locked down
 *   (callers, ops key, mTLS) and holds no secret; and the real process
 *   (`node src/main.ts`) starts with it and answers as configured. Only what
 *   cannot exist on a test machine is substituted: the TLS files (a PKI
 *   generated for this run), the JWKS URL (a local JWKS endpoint, so tokens
 *   verify) and the two placeholder digests (keys made for this run).
 */
import assert from "node:assert/strict";
import { randomBytes } from "node:crypto";
import { readdirSync, readFileSync, writeFileSync } from "node:fs";
import { request } from "node:https";
import { join } from "node:path";
import { after, before, describe, test } from "node:test";
import { parse as parseYaml, stringify as toYaml } from "yaml";
import { digestApiKey } from "../src/auth/caller-authenticator.ts";
import { ConfigError, loadConfig, type AuthSettings } from "../src/config/index.ts";
import { generateTestPki, type CertificateFiles } from "./support/certs.ts";
import { startMain, waitUntil, type MainProcess } from "./support/main-process.ts";
import { JwksServer } from "./support/jwks-server.ts";
import { repoRoot, scratchDir } from "./support/opa.ts";
import { startPdp, postJson, type RunningPdp } from "./support/pdp.ts";
import { freePort } from "./support/ports.ts";
import { generateTestKey, mint, type TestKey } from "./support/tokens.ts";

type Json = Record<string, unknown>;

const examplesDir = join(repoRoot, "examples");
const operatorDataFile = join(examplesDir, "operator-data.yaml");
const pdpConfigFile = join(examplesDir, "pdp-config.yaml");

/** The examples this file checks; every file of examples/ must be one of them. */
const checked = ["operator-data.yaml", "pdp-config.yaml"];

test("every file in examples/ has a check here", () => {
  assert.deepEqual(readdirSync(examplesDir).sort(), [...checked].sort());
});

describe("examples/operator-data.yaml", () => {
  const noonUtcMs = Date.UTC(2026, 2, 10, 12, 0, 0);
  let pdp: RunningPdp | undefined;

  before(async () => {
    // buildApp runs the policy's config_errors over the merged data and refuses what it rejects.
    pdp = await startPdp({ env: { PDP_DATA: operatorDataFile }, clock: () => noonUtcMs });
  });

  after(async () => {
    await pdp?.close();
  });

  const decide = async (tool: string, scopes: string[], context: Json) => {
    if (pdp === undefined) throw new Error("the PDP did not start");
    const reply = await postJson(`${pdp.url}/access/v1/evaluation`, {
      subject: {
        type: "user",
        id: "alice",
        properties: { scopes, acr: "mfa", auth_time: noonUtcMs / 1000 - 60 },
      },
      action: { name: "tools/call" },
      resource: { type: "tool", id: tool },
      context,
    });
    assert.equal(reply.status, 200, JSON.stringify(reply.body));
    return reply.body as {
      decision: boolean;
      context: { reasons: { code: string }[]; risk: { class: string; source: string } };
    };
  };

  test("loads over the embedded bundle: the catalog classifies as the README says", async () => {
    const everything = ["mcp:read", "mcp:write", "mcp:admin"];
    const compliant = { device: { trust: "compliant" }, ip: "10.1.2.3" };
    const expected = {
      "files/read_file": "read",
      "files/write_file": "write",
      "files/delete_repo": "destructive",
      // Not catalogued: unknown_tool: destructive.
      "git/push": "destructive",
    };
    for (const [tool, riskClass] of Object.entries(expected)) {
      const decision = await decide(tool, everything, compliant);
      assert.equal(decision.context.risk.class, riskClass, tool);
      assert.equal(decision.decision, true, `${tool}: ${JSON.stringify(decision.context)}`);
    }
  });

  test("its requirements hold: writes only from 10.0.0.0/8 and managed devices, deletes need mcp:admin", async () => {
    const elsewhere = await decide("files/write_file", ["mcp:write"], {
      device: { trust: "managed" },
      ip: "192.0.2.1",
    });
    assert.equal(elsewhere.decision, false);
    assert.deepEqual(
      elsewhere.context.reasons.map((r) => r.code),
      ["network_denied"],
    );
    const unmanaged = await decide("files/write_file", ["mcp:write"], {
      device: { trust: "unmanaged" },
      ip: "10.1.2.3",
    });
    assert.deepEqual(
      unmanaged.context.reasons.map((r) => r.code),
      ["device_untrusted"],
    );
    const writer = await decide("files/delete_repo", ["mcp:read", "mcp:write"], {
      device: { trust: "compliant" },
      ip: "10.1.2.3",
    });
    assert.deepEqual(
      writer.context.reasons.map((r) => r.code),
      ["scope_missing"],
    );
  });

  test("the README's excerpt of it is the file's own", () => {
    const readme = readFileSync(join(repoRoot, "README.md"), "utf8");
    const section = readme.slice(readme.indexOf("### Tuning it: the operator data file"));
    const excerpt = /```yaml\n([\s\S]*?)```/.exec(section)?.[1];
    assert.ok(excerpt !== undefined, "README.md lost its operator-data excerpt");
    const example = parseYaml(readFileSync(operatorDataFile, "utf8")) as unknown;
    assertSubset(parseYaml(excerpt) as unknown, example, "README excerpt");
  });
});

/** Fails unless every key and value of `part` is in `whole` (lists and scalars compared whole). */
function assertSubset(part: unknown, whole: unknown, where: string): void {
  if (typeof part === "object" && part !== null && !Array.isArray(part)) {
    assert.ok(typeof whole === "object" && whole !== null && !Array.isArray(whole), where);
    for (const [key, value] of Object.entries(part)) {
      assertSubset(value, (whole as Json)[key], `${where}.${key}`);
    }
    return;
  }
  assert.deepEqual(part, whole, where);
}

describe("examples/pdp-config.yaml", () => {
  const text = readFileSync(pdpConfigFile, "utf8");
  const example = parseYaml(text) as Json;

  // The TLS files the example names exist only on a deployment host; the PKI of this run stands in.
  const pki = generateTestPki();
  const tlsFiles = {
    "/tls/cert_file": pki.server.certFile,
    "/tls/key_file": pki.server.keyFile,
    "/tls/client_ca_file": pki.ca.certFile,
  };
  const exampleScratch = scratchDir();
  after(() => {
    exampleScratch.remove();
  });
  const withTls = (): AuthSettings => {
    const file = join(exampleScratch.dir, "pdp-config-with-tls.yaml");
    writeFileSync(file, toYaml(substituted(example, tlsFiles)));
    return loadConfig({ PDP_CONFIG: file }).auth;
  };

  test("validates as written: no problem but the TLS files of the deployment host, no warning", () => {
    assert.throws(
      () => loadConfig({ PDP_CONFIG: pdpConfigFile }),
      (error: unknown) => {
        assert.ok(error instanceof ConfigError);
        assert.deepEqual(
          error.details.map((problem) => problem.path),
          ["tls.cert_file", "tls.key_file", "tls.client_ca_file"],
        );
        for (const problem of error.details)
          assert.match(problem.message, /^\/etc\/mcp-pdp\/tls\//);
        return true;
      },
    );
    const settings = withTls();
    assert.deepEqual(settings.warnings, []);
    assert.deepEqual(
      settings.servers.map((s) => [s.name, s.resource, s.enforcesMcpHeaders]),
      [
        ["files", "https://mcp.example.com/files", false],
        ["git", "https://mcp.example.com/git", false],
      ],
    );
  });

  test("is the locked-down shape: callers, an ops key, mTLS; and holds no secret", () => {
    const settings = withTls();
    assert.ok((settings.callers ?? []).length > 0, "callers configured");
    assert.equal(settings.ops.open, false);
    assert.ok(settings.ops.apiKeySha256.length > 0);
    assert.ok(settings.tls?.clientCaFile !== undefined, "client certificates required");
    assert.ok(
      settings.servers.every((s) => !s.enforcesMcpHeaders),
      "no server believes client headers",
    );
    // Digests only, each quoted (an unquoted all-digit digest is a YAML number).
    const digests = [...text.matchAll(/^\s*- ([^\n#]+?)\s*$/gm)]
      .map((m) => m[1] ?? "")
      .filter((value) => /^["']?[0-9a-fA-F]{64}["']?$/.test(value));
    assert.equal(digests.length, 2);
    for (const digest of digests) assert.match(digest, /^"[0-9a-f]{64}"$/);
    assert.doesNotMatch(text, /PRIVATE KEY|BEGIN CERTIFICATE|api_key:|password|secret:/i);
  });

  describe("the PDP starts with it", () => {
    const envoyCert = pki.issue("envoy", { commonName: "envoy.internal", usage: "client" });
    const scratch = scratchDir();
    const keys = {
      filesPep: randomBytes(32).toString("base64"),
      ops: randomBytes(32).toString("base64"),
    };
    let signingKey: TestKey | undefined;
    let jwks: JwksServer | undefined;
    let pdp: MainProcess | undefined;
    let port = 0;

    const send = (
      path: string,
      options: {
        client: CertificateFiles | undefined;
        headers?: Record<string, string>;
        body?: unknown;
      },
    ) => httpsJson(port, pki.ca.cert, path, options);

    before(async () => {
      signingKey = await generateTestKey("ES256");
      jwks = await JwksServer.start([signingKey.publicJwk]);
      const config = substituted(example, {
        "/issuers/0/jwks_uri": jwks.url,
        "/callers/1/api_key_sha256/0": digestApiKey(keys.filesPep).toString("hex"),
        "/ops/api_key_sha256/0": digestApiKey(keys.ops).toString("hex"),
        ...tlsFiles,
      });
      const configFile = join(scratch.dir, "pdp-config.yaml");
      writeFileSync(configFile, toYaml(config));
      port = await freePort();
      const started = startMain({
        PORT: String(port),
        // Stopped at teardown: without the 5 s readiness grace.
        PDP_DRAIN_DELAY_MS: "0",
        PDP_CONFIG: configFile,
        PDP_DATA: operatorDataFile,
      });
      pdp = started;
      await waitUntil(
        "the PDP ready with examples/pdp-config.yaml",
        async () => {
          const reply = await send("/ready", {
            client: pki.clients.stranger,
            headers: { "x-api-key": keys.ops },
          });
          return reply.status === 200;
        },
        20000,
        started,
      );
    });

    after(async () => {
      if (pdp !== undefined && !pdp.exited()) {
        pdp.child.kill("SIGTERM");
        await pdp.exit;
      }
      await jwks?.close();
      scratch.remove();
      pki.remove();
    });

    const token = (audience: string) => {
      if (signingKey === undefined) throw new Error("no signing key");
      const now = Math.floor(Date.now() / 1000);
      return mint(
        signingKey,
        {
          iss: "https://idp.example.com",
          sub: "alice",
          aud: audience,
          scope: "mcp:read",
          iat: now,
          exp: now + 300,
          auth_time: now - 60,
        },
        { header: { typ: "at+jwt" } },
      );
    };

    const readFile = (subject: Json) => ({
      subject,
      action: { name: "tools/call" },
      resource: { type: "tool", id: "files/read_file" },
      context: { device: { trust: "managed" } },
    });

    const codes = (body: unknown) =>
      ((body as { context?: { reasons?: { code: string }[] } }).context?.reasons ?? []).map(
        (r) => r.code,
      );

    test("mTLS: a client without a certificate gets no HTTP answer at all", async () => {
      await assert.rejects(send("/ready", { client: undefined }));
    });

    test("ops: /ready needs the ops key, even with a trusted certificate", async () => {
      const bare = await send("/ready", { client: pki.clients.stranger });
      assert.equal(bare.status, 401);
      assert.equal((bare.body as Json).code, "caller_unauthenticated");
    });

    test("files-pep (API key): a token for files is verified against files and allowed", async () => {
      const reply = await send("/access/v1/evaluation", {
        client: pki.clients.stranger,
        headers: { "x-api-key": keys.filesPep },
        body: readFile({
          type: "user",
          properties: { token: await token("https://mcp.example.com/files") },
        }),
      });
      assert.equal(reply.status, 200, JSON.stringify(reply.body));
      assert.equal((reply.body as Json).decision, true, JSON.stringify(reply.body));
    });

    test("files-pep: a token minted for git is refused on files (token_wrong_audience)", async () => {
      const reply = await send("/access/v1/evaluation", {
        client: pki.clients.stranger,
        headers: { "x-api-key": keys.filesPep },
        body: readFile({
          type: "user",
          properties: { token: await token("https://mcp.example.com/git") },
        }),
      });
      assert.equal(reply.status, 200, JSON.stringify(reply.body));
      assert.equal((reply.body as Json).decision, false);
      assert.deepEqual(codes(reply.body), ["token_wrong_audience"]);
    });

    test("files-pep may not assert subjects: 403 subject_assertion_forbidden", async () => {
      const reply = await send("/access/v1/evaluation", {
        client: pki.clients.stranger,
        headers: { "x-api-key": keys.filesPep },
        body: readFile({ type: "user", id: "alice", properties: { scopes: ["mcp:read"] } }),
      });
      assert.equal(reply.status, 403);
      assert.equal((reply.body as Json).code, "subject_assertion_forbidden");
    });

    test("mcp-gateway (certificate gateway.internal) asserts a verified subject: allowed", async () => {
      const reply = await send("/access/v1/evaluation", {
        client: pki.clients.gateway,
        body: readFile({
          type: "user",
          id: "alice",
          properties: { scopes: ["mcp:read"], auth_time: Math.floor(Date.now() / 1000) - 60 },
        }),
      });
      assert.equal(reply.status, 200, JSON.stringify(reply.body));
      assert.equal((reply.body as Json).decision, true, JSON.stringify(reply.body));
    });

    test("envoy (certificate envoy.internal) has forward-auth only: git's token binding and server_unknown", async () => {
      const forwardAuth = async (server: string, audience: string) =>
        send(`/forward-auth/${server}`, {
          client: envoyCert,
          headers: {
            authorization: `Bearer ${await token(audience)}`,
            "content-type": "application/json",
          },
          body: { jsonrpc: "2.0", id: 1, method: "tools/call", params: { name: "read_file" } },
        });
      const rpcReasons = (body: unknown) =>
        (body as { error?: { data?: { reasons?: string[] } } }).error?.data?.reasons;
      const wrongServer = await forwardAuth("git", "https://mcp.example.com/files");
      assert.equal(wrongServer.status, 401, JSON.stringify(wrongServer.body));
      assert.match(String(wrongServer.headers["www-authenticate"]), /invalid_token/);
      assert.deepEqual(rpcReasons(wrongServer.body), ["token_wrong_audience"]);
      const unknown = await forwardAuth("wiki", "https://mcp.example.com/files");
      assert.equal(unknown.status, 403, JSON.stringify(unknown.body));
      assert.deepEqual(rpcReasons(unknown.body), ["server_unknown"]);
      const authzen = await send("/access/v1/evaluation", {
        client: envoyCert,
        body: readFile({ type: "user", properties: { token: null } }),
      });
      assert.equal(authzen.status, 403);
      assert.equal((authzen.body as Json).code, "caller_forbidden");
    });
  });
});

/**
 * A deep copy of `document` with the values at these JSON pointers replaced.
 * A pointer that names nothing in the example fails: the substitutions follow
 * the example, and a change of its shape must show here.
 */
function substituted(document: Json, replacements: Record<string, unknown>): Json {
  const copy = structuredClone(document);
  for (const [pointer, value] of Object.entries(replacements)) {
    const path = pointer.split("/").slice(1);
    const last = path.pop();
    let node: unknown = copy;
    for (const segment of path) node = (node as Record<string, unknown> | undefined)?.[segment];
    assert.ok(
      typeof node === "object" && node !== null && last !== undefined && last in node,
      `examples/pdp-config.yaml has no ${pointer}`,
    );
    (node as Record<string, unknown>)[last] = value;
  }
  return copy;
}

/** One HTTPS request on its own connection, presenting `client` (or no certificate). */
function httpsJson(
  port: number,
  ca: string,
  path: string,
  options: {
    client: CertificateFiles | undefined;
    headers?: Record<string, string>;
    body?: unknown;
  },
): Promise<{
  status: number;
  headers: Record<string, string | string[] | undefined>;
  body: unknown;
}> {
  const payload = options.body === undefined ? undefined : JSON.stringify(options.body);
  return new Promise((resolve, reject) => {
    const req = request(
      {
        host: "127.0.0.1",
        port,
        path,
        method: payload === undefined ? "GET" : "POST",
        headers: {
          ...(payload === undefined ? {} : { "content-type": "application/json" }),
          ...options.headers,
        },
        ca,
        ...(options.client === undefined
          ? {}
          : { cert: options.client.cert, key: options.client.key }),
        agent: false,
        timeout: 10000,
      },
      (res) => {
        const chunks: Buffer[] = [];
        res.on("data", (chunk: Buffer) => chunks.push(chunk));
        res.on("end", () => {
          const text = Buffer.concat(chunks).toString("utf8");
          let body: unknown = text;
          try {
            body = text === "" ? undefined : JSON.parse(text);
          } catch {
            // not JSON: kept as text
          }
          resolve({ status: res.statusCode ?? 0, headers: res.headers, body });
        });
        res.on("error", reject);
      },
    );
    req.on("timeout", () => {
      req.destroy(new Error("request timed out"));
    });
    req.on("error", reject);
    req.end(payload);
  });
}

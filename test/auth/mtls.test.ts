/**
 * mTLS against the real process (`node src/main.ts`): PDP_CONFIG `tls` with a
 * client CA makes the PDP listen on HTTPS and require a client certificate
 * signed by that CA; `mtls_subjects` maps a certificate's CN or DNS SAN to a
 * caller. Every key and certificate is generated for this run.
 */
import { freePort } from "../support/ports.ts";
import assert from "node:assert/strict";
import { createHash, randomBytes } from "node:crypto";
import { writeFileSync } from "node:fs";
import { request } from "node:https";
import { join } from "node:path";
import { after, before, describe, test } from "node:test";
import { certificateNames, generateTestPki, type CertificateFiles } from "../support/certs.ts";
import { repoRoot, scratchDir } from "../support/opa.ts";
import { startMain, waitUntil, type MainProcess } from "../support/main-process.ts";

type Json = Record<string, unknown>;

interface Reply {
  status: number;
  headers: Record<string, string | string[] | undefined>;
  body: unknown;
}

interface ErrorBody {
  code: string;
  field?: string;
}

interface DecisionBody {
  decision: boolean;
  context: { reasons?: { code: string }[] };
}

const pki = generateTestPki();
const auditorCert = pki.issue("auditor", { commonName: "auditor.internal", usage: "client" });
const scratch = scratchDir();
const pepKey = randomBytes(24).toString("base64url");

const configFile = join(scratch.dir, "pdp-config.json");
writeFileSync(
  configFile,
  JSON.stringify({
    callers: [
      { name: "gateway", mtls_subjects: [certificateNames.gateway], assert_subject: true },
      // The DNS SAN only: the certificate's CN (mcp-files) is configured nowhere.
      { name: "files-server", mtls_subjects: [certificateNames.filesDnsSan] },
      { name: "auditor", mtls_subjects: ["auditor.internal"], permissions: [] },
      {
        name: "pep",
        api_key_sha256: [createHash("sha256").update(pepKey, "utf8").digest("hex")],
      },
    ],
    tls: {
      cert_file: pki.server.certFile,
      key_file: pki.server.keyFile,
      client_ca_file: pki.ca.certFile,
    },
  }),
);

const operatorData = join(repoRoot, "examples", "operator-data.yaml");

let pdp: MainProcess | undefined;
let port = 0;

interface RequestOptions {
  method?: string;
  headers?: Record<string, string>;
  body?: unknown;
  /** The client certificate to present; none when undefined. */
  client: CertificateFiles | undefined;
}

/** One HTTPS request on its own connection (no agent, so no session reuse between clients). */
function send(path: string, options: RequestOptions): Promise<Reply> {
  const payload = options.body === undefined ? undefined : JSON.stringify(options.body);
  return new Promise((resolve, reject) => {
    const req = request(
      {
        host: "127.0.0.1",
        port,
        path,
        method: options.method ?? (payload === undefined ? "GET" : "POST"),
        headers: {
          ...(payload === undefined ? {} : { "content-type": "application/json" }),
          ...options.headers,
        },
        ca: pki.ca.cert,
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
          resolve({
            status: res.statusCode ?? 0,
            headers: res.headers,
            body: text === "" ? undefined : JSON.parse(text),
          });
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

/** Resolves with the error of a request that got no HTTP answer; fails if one came. */
async function noAnswer(path: string, options: RequestOptions): Promise<Error> {
  try {
    const reply = await send(path, options);
    return assert.fail(`expected the handshake to fail, got HTTP ${reply.status}`);
  } catch (error) {
    if (error instanceof assert.AssertionError) throw error;
    assert.ok(error instanceof Error);
    return error;
  }
}

before(async () => {
  port = await freePort();
  const started = startMain({
    PORT: String(port),
    PDP_CONFIG: configFile,
    PDP_DATA: operatorData,
    PDP_DRAIN_DELAY_MS: "0",
  });
  pdp = started;
  await waitUntil(
    "the PDP ready over mTLS",
    async () => (await send("/ready", { client: pki.clients.gateway })).status === 200,
    20000,
    started,
  );
});

after(async () => {
  if (pdp !== undefined && !pdp.exited()) {
    pdp.child.kill("SIGTERM");
    await pdp.exit;
  }
  scratch.remove();
  pki.remove();
});

const evaluationPath = "/access/v1/evaluation";

function readCall(subject: Json): Json {
  return {
    subject,
    action: { name: "tools/call" },
    resource: { type: "tool", id: "files/read_file" },
    context: { device: { trust: "managed" } },
  };
}

/** A reader as a gateway asserts it: mcp:read, signed in five minutes ago (the process's clock). */
function assertedReader(): Json {
  return {
    type: "user",
    id: "alice",
    properties: { scopes: ["mcp:read"], auth_time: Math.floor(Date.now() / 1000) - 300 },
  };
}

const bareSubject = { type: "user", id: "alice" };

function reasonCodes(body: unknown): string[] {
  return ((body as DecisionBody).context.reasons ?? []).map((r) => r.code).sort();
}

describe("mTLS callers", () => {
  test("a trusted certificate whose CN is a configured caller: 200, and that caller's assert_subject applies", async () => {
    const reply = await send(evaluationPath, {
      client: pki.clients.gateway,
      body: readCall(assertedReader()),
    });
    assert.equal(reply.status, 200, JSON.stringify(reply.body));
    assert.equal((reply.body as DecisionBody).decision, true, JSON.stringify(reply.body));
    assert.deepEqual(reasonCodes(reply.body), []);
  });

  test("the configured DNS SAN identifies a caller (its CN is configured nowhere)", async () => {
    const bare = await send(evaluationPath, {
      client: pki.clients.files,
      body: readCall(bareSubject),
    });
    assert.equal(bare.status, 200, JSON.stringify(bare.body));
    assert.equal((bare.body as DecisionBody).decision, false);
    assert.deepEqual(reasonCodes(bare.body), ["token_missing"]);
    // Not an asserting caller: subject properties without a token are refused.
    const asserted = await send(evaluationPath, {
      client: pki.clients.files,
      body: readCall(assertedReader()),
    });
    assert.equal(asserted.status, 403, JSON.stringify(asserted.body));
    const error = asserted.body as ErrorBody;
    assert.equal(error.code, "subject_assertion_forbidden");
    assert.equal(error.field, "/subject/properties");
  });

  test("a certificate caller without the authzen permission → 403 caller_forbidden", async () => {
    const reply = await send(evaluationPath, { client: auditorCert, body: readCall(bareSubject) });
    assert.equal(reply.status, 403, JSON.stringify(reply.body));
    assert.equal((reply.body as ErrorBody).code, "caller_forbidden");
  });

  test("a trusted certificate naming no caller, without an API key → 401 caller_unauthenticated", async () => {
    const reply = await send(evaluationPath, {
      client: pki.clients.stranger,
      body: readCall(bareSubject),
    });
    assert.equal(reply.status, 401, JSON.stringify(reply.body));
    assert.equal((reply.body as ErrorBody).code, "caller_unauthenticated");
    assert.ok(typeof reply.headers["www-authenticate"] === "string");
  });

  test("a trusted certificate naming no caller, with a caller's API key → that caller", async () => {
    const reply = await send(evaluationPath, {
      client: pki.clients.stranger,
      headers: { "x-api-key": pepKey },
      body: readCall(bareSubject),
    });
    assert.equal(reply.status, 200, JSON.stringify(reply.body));
    assert.deepEqual(reasonCodes(reply.body), ["token_missing"]);
  });

  test("a certificate from an untrusted CA (even with a configured CN): the handshake fails", async () => {
    const error = await noAnswer(evaluationPath, {
      client: pki.clients.untrusted,
      body: readCall(assertedReader()),
    });
    assert.ok("code" in error, String(error));
  });

  test("no client certificate at all: the handshake fails", async () => {
    for (const path of [evaluationPath, "/ready", "/.well-known/authzen-configuration"]) {
      const error = await noAnswer(path, { client: undefined });
      assert.ok("code" in error, `${path}: ${String(error)}`);
    }
  });

  test("the server's certificate verifies only against the test CA", async () => {
    const error = await new Promise<Error>((resolve) => {
      const req = request(
        {
          host: "127.0.0.1",
          port,
          path: "/ready",
          ca: pki.untrustedCa.cert,
          cert: pki.clients.gateway.cert,
          key: pki.clients.gateway.key,
          agent: false,
        },
        () => {
          assert.fail("the request should not get a response");
        },
      );
      req.on("error", resolve);
      req.end();
    });
    assert.equal(typeof (error as Error & { code?: unknown }).code, "string", String(error));
  });

  test("plain HTTP to the TLS port gets no decision", async () => {
    let status: number | undefined;
    try {
      const response = await fetch(`http://127.0.0.1:${port}${evaluationPath}`, {
        method: "POST",
        headers: { "content-type": "application/json", "x-api-key": pepKey },
        body: JSON.stringify(readCall(bareSubject)),
      });
      status = response.status;
      await response.body?.cancel();
    } catch {
      status = undefined;
    }
    assert.notEqual(status, 200);
  });

  test("the service still answers after refused handshakes", async () => {
    const reply = await send("/health", { client: pki.clients.files });
    assert.equal(reply.status, 200, JSON.stringify(reply.body));
  });
});

describe("discovery and ops over mTLS", () => {
  test("/.well-known/authzen-configuration advertises https URLs", async () => {
    const reply = await send("/.well-known/authzen-configuration", {
      client: pki.clients.stranger,
    });
    assert.equal(reply.status, 200, JSON.stringify(reply.body));
    const base = `https://127.0.0.1:${port}`;
    assert.deepEqual(reply.body, {
      policy_decision_point: base,
      access_evaluation_endpoint: `${base}/access/v1/evaluation`,
      access_evaluations_endpoint: `${base}/access/v1/evaluations`,
      search_resource_endpoint: `${base}/access/v1/search/resource`,
      search_action_endpoint: `${base}/access/v1/search/action`,
      search_subject_endpoint: `${base}/access/v1/search/subject`,
      supported_obligations: ["step-up", "custom"],
    });
  });

  test("GET /ready and /health over mTLS work (ops open by default)", async () => {
    for (const path of ["/ready", "/health"]) {
      for (const client of [pki.clients.gateway, pki.clients.stranger]) {
        const reply = await send(path, { client });
        assert.equal(reply.status, 200, `${path} ${JSON.stringify(reply.body)}`);
      }
    }
    const ready = await send("/ready", { client: pki.clients.gateway });
    assert.equal((ready.body as { status: string }).status, "ready");
  });
});

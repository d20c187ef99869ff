/**
 * The hostile-case table: every attack and bad input found so far, as data
 * (test/hostile-cases/*.json: request → expected status and code), replayed
 * over real HTTP against a locked-down PDP (caller keys, ops keys, an issuer,
 * the servers registry, the example operator data). A case stays fixed because
 * it stays in the table; add one whenever something is found or fixed.
 */
import assert from "node:assert/strict";
import { createHash, randomBytes } from "node:crypto";
import { readdirSync, readFileSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { after, before, describe, test } from "node:test";
import { repoRoot, scratchDir } from "./support/opa.ts";
import { rawRequest } from "./observability/helpers.ts";
import { startPdp, type RunningPdp } from "./support/pdp.ts";
import { generateTestKey, mint, type TestKey } from "./support/tokens.ts";

type Json = Record<string, unknown>;

interface HostileCase {
  name: string;
  note: string;
  profile?: "locked" | "trusted-proxy";
  /** Claim overrides of the token `${token}` stands for (null removes a claim). */
  token?: Json;
  request: {
    method: string;
    path: string;
    /** A list is sent as repeated header lines. */
    headers?: Record<string, string | string[]>;
    body?: unknown;
    bodyText?: string;
    bodyBase64?: string;
  };
  expect: {
    status: number;
    code?: string;
    decision?: boolean;
    reasons?: string[];
    /** The JSON-RPC error code of a JSON-RPC answer. */
    json_rpc_code?: number;
    /** Response headers that must have exactly these values (null: absent). */
    headers?: Record<string, string | null>;
  };
}

const casesDir = join(repoRoot, "test", "hostile-cases");
const files = readdirSync(casesDir)
  .filter((file) => file.endsWith(".json"))
  .sort();

const noonUtcMs = Date.UTC(2026, 2, 10, 12, 0, 0);
const nowS = noonUtcMs / 1000;
const issuer = "https://idp.test";
const resources = {
  files: "https://mcp.test/files",
  git: "https://mcp.test/git",
  docs: "https://mcp.test/docs",
};

const scratch = scratchDir();
const keys = {
  pep: randomBytes(24).toString("base64url"),
  gateway: randomBytes(24).toString("base64url"),
  ops: randomBytes(24).toString("base64url"),
};
const sha256Hex = (text: string) => createHash("sha256").update(text).digest("hex");

let signingKey: TestKey;
const pdps = new Map<string, RunningPdp>();

function configFor(profile: string, jwksFile: string): Json {
  return {
    issuers: [{ issuer, jwks_file: jwksFile, algorithms: ["RS256"] }],
    servers: {
      // files: an MCP server that refuses Mcp-* headers disagreeing with the body (SEP-2243).
      files: { resource: resources.files, enforces_mcp_headers: true },
      // git: behind Envoy, so Envoy's partial-body signal counts, but only from a trusted proxy.
      git: { resource: resources.git, enforces_mcp_headers: true, proxy: "envoy" },
      // docs: speaks MCP 2026-07-28, so a request declaring it may be decided from its headers.
      docs: { resource: resources.docs, speaks_mcp_2026_07_28: true },
    },
    callers: [
      {
        name: "pep",
        api_key_sha256: [sha256Hex(keys.pep)],
        permissions: ["authzen", "forward_auth"],
      },
      {
        name: "gateway",
        api_key_sha256: [sha256Hex(keys.gateway)],
        permissions: ["authzen", "opa_data"],
        assert_subject: true,
      },
    ],
    ops: { open: false, api_key_sha256: [sha256Hex(keys.ops)] },
    forward_auth: {
      trusted_proxies: profile === "trusted-proxy" ? ["127.0.0.1/32"] : [],
      batch: "authorize_each",
      context_headers: { "x-device-trust": "device.trust" },
    },
  };
}

before(async () => {
  signingKey = await generateTestKey("RS256");
  const jwksFile = join(scratch.dir, "jwks.json");
  writeFileSync(jwksFile, JSON.stringify({ keys: [signingKey.publicJwk] }));
  for (const profile of ["locked", "trusted-proxy"]) {
    const configFile = join(scratch.dir, `${profile}.json`);
    writeFileSync(configFile, JSON.stringify(configFor(profile, jwksFile)));
    const pdp = await startPdp({
      env: {
        PDP_CONFIG: configFile,
        PDP_DATA: join(repoRoot, "examples", "operator-data.yaml"),
        PDP_MAX_EVALUATIONS: "64",
      },
      clock: () => noonUtcMs,
    });
    pdps.set(profile, pdp);
  }
});

after(async () => {
  for (const pdp of pdps.values()) await pdp.close();
  scratch.remove();
});

async function tokenFor(overrides: Json): Promise<string> {
  const claims: Json = {
    iss: issuer,
    sub: "user-1",
    aud: resources.files,
    scope: "mcp:read",
    iat: nowS - 60,
    exp: nowS + 600,
    auth_time: nowS - 300,
    ...overrides,
  };
  return mint(
    signingKey,
    Object.fromEntries(Object.entries(claims).filter(([, value]) => value !== null)),
  );
}

/** Replaces `${token}` in every string of a JSON value. */
function substitute(value: unknown, token: string): unknown {
  if (typeof value === "string") return value.replaceAll("${token}", token);
  if (Array.isArray(value)) return value.map((item) => substitute(item, token));
  if (typeof value === "object" && value !== null) {
    return Object.fromEntries(
      Object.entries(value).map(([key, item]) => [key, substitute(item, token)]),
    );
  }
  return value;
}

/** The reason codes of any decision shape the PDP answers with (a batch: of every answer in it). */
function reasonCodes(body: unknown): string[] {
  if (Array.isArray(body)) return body.flatMap((item: unknown) => reasonCodes(item));
  const shape = body as {
    context?: { reasons?: { code?: string }[] };
    reasons?: string[];
    error?: { data?: { reasons?: string[] } };
  };
  return [
    ...(shape.context?.reasons?.map((reason) => reason.code ?? "") ?? []),
    ...(shape.reasons ?? []),
    ...(shape.error?.data?.reasons ?? []),
  ];
}

for (const file of files) {
  const cases = JSON.parse(readFileSync(join(casesDir, file), "utf8")) as HostileCase[];
  describe(`hostile cases: ${file}`, () => {
    test("every case is named once and says why it matters", () => {
      const names = cases.map((c) => c.name);
      assert.equal(new Set(names).size, names.length, "duplicate case names");
      for (const c of cases) assert.ok(c.note.length > 10, `${c.name}: a note saying why`);
    });
    for (const hostile of cases) {
      test(`${hostile.name} → ${hostile.expect.status}${hostile.expect.code === undefined ? "" : ` ${hostile.expect.code}`}`, async () => {
        const pdp = pdps.get(hostile.profile ?? "locked");
        assert.ok(pdp !== undefined, `unknown profile ${hostile.profile ?? ""}`);
        const token = await tokenFor(hostile.token ?? {});
        // A list value stays a list: node:http sends it as repeated header lines.
        const headers = substitute(hostile.request.headers ?? {}, token) as Record<string, string>;
        // The OPA Data API serves asserting gateways only; every other API a PEP.
        const opaData = hostile.request.path.startsWith("/v1/data");
        if (!("x-api-key" in headers)) headers["x-api-key"] = opaData ? keys.gateway : keys.pep;
        if (headers["x-api-key"] === "") delete headers["x-api-key"];
        if (headers["x-api-key"] === "${gateway}") headers["x-api-key"] = keys.gateway;
        if (headers["x-api-key"] === "${pep}") headers["x-api-key"] = keys.pep;
        if (headers["x-api-key"] === "${ops}") headers["x-api-key"] = keys.ops;
        const { body, bodyText, bodyBase64 } = hostile.request;
        const payload =
          bodyBase64 !== undefined
            ? Buffer.from(bodyBase64, "base64")
            : bodyText !== undefined
              ? Buffer.from(substitute(bodyText, token) as string, "utf8")
              : body !== undefined
                ? Buffer.from(JSON.stringify(substitute(body, token)), "utf8")
                : undefined;
        // The path goes out exactly as the table writes it (node:http, not fetch).
        const response = await rawRequest(pdp.url, {
          method: hostile.request.method,
          path: hostile.request.path,
          headers,
          ...(payload === undefined ? {} : { body: payload }),
        });
        const text = response.text;
        let answer: unknown = text;
        try {
          answer = JSON.parse(text) as unknown;
        } catch {
          // Not JSON: compared as text below, which fails any code expectation.
        }
        const { expect } = hostile;
        const context = `${hostile.name}: ${text.slice(0, 400)}`;
        assert.equal(response.status, expect.status, context);
        if (expect.code !== undefined) {
          assert.equal((answer as { code?: unknown }).code, expect.code, context);
        }
        if (expect.json_rpc_code !== undefined) {
          const error = (answer as { error?: { code?: unknown } }).error;
          assert.equal(error?.code, expect.json_rpc_code, context);
        }
        if (expect.decision !== undefined) {
          assert.equal((answer as { decision?: unknown }).decision, expect.decision, context);
        }
        for (const reason of expect.reasons ?? []) {
          assert.ok(reasonCodes(answer).includes(reason), `${context}: reason ${reason}`);
        }
        for (const [name, value] of Object.entries(expect.headers ?? {})) {
          const actual = response.headers[name.toLowerCase()];
          assert.equal(
            Array.isArray(actual) ? actual.join(", ") : (actual ?? null),
            value,
            `${context}: header ${name}`,
          );
        }
        // Whatever the attack, the process still answers.
        const health = await fetch(`${pdp.url}/health`, { headers: { "x-api-key": keys.ops } });
        assert.equal(health.status, 200);
      });
    }
  });
}

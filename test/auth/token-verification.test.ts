/**
 * Bearer-token verification end to end: tokens travel in
 * subject.properties.token over real HTTP to the AuthZEN endpoints, keys come
 * from a real JWKS server on loopback, and the default policy (with
 * examples/operator-data.yaml) or an echo policy decides. The PDP's clock is
 * frozen at 2025-11-26T10:00:00Z and every token is minted relative to it;
 * JWKS cooldowns and refreshes run on the same clock, so tests move it
 * rather than sleep.
 */
import assert from "node:assert/strict";
import { randomUUID } from "node:crypto";
import { writeFileSync } from "node:fs";
import { join } from "node:path";
import { performance } from "node:perf_hooks";
import { after, before, beforeEach, describe, test } from "node:test";
import { setTimeout as sleep } from "node:timers/promises";
import { fileURLToPath } from "node:url";
import { SignJWT, type JWK } from "jose";
import type { TokenErrorCode } from "../../src/errors.ts";
import { JwksServer } from "../support/jwks-server.ts";
import { buildWasmBundle, scratchDir } from "../support/opa.ts";
import { postJson, startPdp, type RunningPdp } from "../support/pdp.ts";
import {
  b64json,
  encryptedToken,
  generateTestKey,
  handBuilt,
  mint,
  publicPem,
  signRaw,
  signaturePart,
  signingAlgs,
  type SigningAlg,
  type TestKey,
} from "../support/tokens.ts";

type Json = Record<string, unknown>;

const operatorData = fileURLToPath(new URL("../../examples/operator-data.yaml", import.meta.url));
const issuer = "https://idp.example.com";
/** A second issuer (local JWKS file, ES256 only) that requires typ at+jwt. */
const typedIssuer = "https://typed.example.com";
/** A third issuer (local JWKS file, RS256) with max_token_bytes 1024. */
const smallIssuer = "https://small.example.com";
const audience = "https://mcp.example.com/files";
/** A second registered server of the same issuer: its tokens must not open `files`. */
const otherResource = "https://mcp.example.com/other";
const tenUtcMs = Date.UTC(2025, 10, 26, 10, 0, 0);
/** Just past jwks_cooldown_s (1 s): once the clock moved this far, an unknown kid refetches. */
const pastCooldownMs = 1150;

/** The PDP's clock: the policy's and the token checks'. Reset before every test. */
let nowMs = tenUtcMs;
const clock = () => nowMs;
const nowS = () => Math.floor(nowMs / 1000);
/**
 * Moves the PDP's clock (JWKS cooldowns and refreshes run on it) instead of
 * sleeping: the cooldown passes at once, and no test waits for wall time.
 */
function advanceClock(ms: number): void {
  nowMs += ms;
}

/** Default access-token claims for alice, read scope, signed in 5 minutes ago. */
function claims(overrides: Json = {}): Json {
  const now = nowS();
  return {
    iss: issuer,
    sub: "alice",
    aud: audience,
    iat: now - 60,
    exp: now + 600,
    auth_time: now - 300,
    scope: "mcp:read",
    jti: randomUUID(),
    ...overrides,
  };
}

// ---------------------------------------------------------------- resources

const scratch = scratchDir();
const closers: (() => Promise<void>)[] = [];
/** Every PDP started in this file, for the log search at the end. */
const allPdps: RunningPdp[] = [];
/** Every token sent to a PDP in this file. */
const sentTokens = new Set<string>();
let configCount = 0;

/** The protected servers of every PDP here: tokens are bound to one of them. */
const servers = {
  files: { resource: audience },
  other: { resource: otherResource },
};

function writeConfig(config: Json): string {
  configCount += 1;
  const path = join(scratch.dir, `pdp-config-${configCount}.json`);
  writeFileSync(path, JSON.stringify({ servers, ...config }, null, 2));
  return path;
}

function writeJwksFile(keys: JWK[]): string {
  configCount += 1;
  const path = join(scratch.dir, `jwks-${configCount}.json`);
  writeFileSync(path, JSON.stringify({ keys }));
  return path;
}

/** The main issuer, on a remote JWKS: short cooldown and timeout so tests can wait them out. */
function mainIssuer(jwksUrl: string, extra: Json = {}): Json {
  return {
    issuer,
    jwks_uri: jwksUrl,
    // Both servers: the case of one issuer minting for two resources.
    audiences: [audience, otherResource],
    jwks_cooldown_s: 1,
    jwks_timeout_ms: 200,
    subject_type: { claim: "pdp_subject_type" },
    ...extra,
  };
}

async function startTrackedPdp(config: Json, env: Record<string, string> = {}) {
  const pdp = await startPdp({
    env: { PDP_CONFIG: writeConfig(config), PDP_DATA: operatorData, LOG_LEVEL: "debug", ...env },
    clock,
  });
  allPdps.push(pdp);
  closers.push(() => pdp.close());
  return pdp;
}

async function startJwks(keys: JWK[]): Promise<JwksServer> {
  const server = await JwksServer.start(keys);
  closers.push(() => server.close());
  return server;
}

interface Stack {
  jwks: JwksServer;
  pdp: RunningPdp;
}

/** A JWKS server and a PDP trusting it alone, for tests that steer the JWKS. */
async function startStack(
  keys: JWK[],
  options: { issuer?: Json; tokenCache?: number } = {},
): Promise<Stack> {
  const jwks = await startJwks(keys);
  const pdp = await startTrackedPdp({
    issuers: [mainIssuer(jwks.url, options.issuer)],
    token_cache: { max_entries: options.tokenCache ?? 0 },
  });
  return { jwks, pdp };
}

// ---------------------------------------------------------------- requests

function tokenSubject(token: string, extra: Json = {}, type = "user"): Json {
  sentTokens.add(token);
  return { type, properties: { ...extra, token } };
}

function toolCall(subject: Json, tool = "files/read_file", trust = "managed"): Json {
  return {
    subject,
    action: { name: "tools/call" },
    resource: { type: "tool", id: tool },
    context: { device: { trust } },
  };
}

function readCall(token: string): Json {
  return toolCall(tokenSubject(token));
}

interface Reason {
  code: string;
  admin: string;
  user: string;
}

interface DecisionBody {
  decision: boolean;
  context: { reasons: Reason[]; obligations: Json; reason_admin?: { en: string } };
}

interface BatchBody {
  evaluations: { decision: boolean; context: Json }[];
}

/** The parts of a token long enough that finding them somewhere is not a coincidence. */
function secretParts(token: string): string[] {
  const parts: string[] = [];
  if (token.length >= 20) parts.push(token);
  const signature = signaturePart(token);
  if (signature.length >= 16) parts.push(signature);
  return parts;
}

function assertNoTokenIn(text: string, where: string): void {
  for (const token of sentTokens) {
    for (const part of secretParts(token)) {
      assert.ok(!text.includes(part), `${where} contains a token (or its signature)`);
    }
  }
}

async function evaluate(pdp: RunningPdp, body: Json): Promise<DecisionBody> {
  const response = await postJson(`${pdp.url}/access/v1/evaluation`, body);
  assert.equal(response.status, 200, JSON.stringify(response.body));
  assertNoTokenIn(JSON.stringify(response.body), "a decision response");
  return response.body as DecisionBody;
}

async function evaluateBatch(pdp: RunningPdp, body: Json): Promise<BatchBody> {
  const response = await postJson(`${pdp.url}/access/v1/evaluations`, body);
  assert.equal(response.status, 200, JSON.stringify(response.body));
  assertNoTokenIn(JSON.stringify(response.body), "a batch response");
  return response.body as BatchBody;
}

function outcome(body: DecisionBody): { decision: boolean; codes: string[] } {
  return { decision: body.decision, codes: body.context.reasons.map((r) => r.code).sort() };
}

async function assertAllowed(pdp: RunningPdp, token: string, message?: string): Promise<void> {
  assert.deepEqual(
    outcome(await evaluate(pdp, readCall(token))),
    { decision: true, codes: [] },
    message,
  );
}

async function assertDenied(
  pdp: RunningPdp,
  token: string,
  code: TokenErrorCode,
  message?: string,
): Promise<void> {
  assert.deepEqual(
    outcome(await evaluate(pdp, readCall(token))),
    { decision: false, codes: [code] },
    message,
  );
}

/** The code a read call with `token` is denied for (fails if it is allowed or has several). */
async function deniedCode(pdp: RunningPdp, token: string): Promise<string> {
  const result = outcome(await evaluate(pdp, readCall(token)));
  assert.equal(result.decision, false, "denied");
  assert.equal(result.codes.length, 1, `exactly one reason, got ${result.codes.join(", ")}`);
  return result.codes[0] ?? "";
}

// ---------------------------------------------------------------- the shared setup

/** An echo policy: allows authenticated subjects and returns the subject it saw. */
const echoPolicy = `package echo

import rego.v1

default allow := false

allow if input.subject.properties.authenticated == true

decision := {"allow": allow, "reasons": reasons, "obligations": {"subject": input.subject}}

reasons := [] if allow

reasons := [object.get(input.subject.properties, ["token_error", "code"], "token_missing")] if not allow
`;

/** One key per algorithm, published by the main JWKS. */
const published = {} as Record<SigningAlg, TestKey>;
/** One key per algorithm, never published anywhere the PDP looks. */
const rogue = {} as Record<SigningAlg, TestKey>;
let typedKey: TestKey;
let smallKey: TestKey;
let jwks: JwksServer;
/** The attacker's key server: jku/x5u headers point here; it must never be contacted. */
let evil: JwksServer;
let pdp: RunningPdp;
let echoPdp: RunningPdp;

before(async () => {
  await Promise.all(
    signingAlgs.map(async (alg) => {
      published[alg] = await generateTestKey(alg);
      rogue[alg] = await generateTestKey(alg);
    }),
  );
  typedKey = await generateTestKey("ES256");
  smallKey = await generateTestKey("RS256");
  jwks = await startJwks(signingAlgs.map((alg) => published[alg].publicJwk));
  evil = await startJwks(signingAlgs.map((alg) => rogue[alg].publicJwk));
  const config = {
    issuers: [
      mainIssuer(jwks.url),
      {
        issuer: typedIssuer,
        jwks_file: writeJwksFile([typedKey.publicJwk]),
        audiences: [audience],
        algorithms: ["ES256"],
        required_typ: "at+jwt",
      },
      {
        issuer: smallIssuer,
        jwks_file: writeJwksFile([smallKey.publicJwk]),
        audiences: [audience],
        max_token_bytes: 1024,
      },
    ],
  };
  pdp = await startTrackedPdp(config);
  const bundle = buildWasmBundle(scratch.dir, { "echo.rego": echoPolicy }, ["echo/decision"]);
  echoPdp = await startTrackedPdp(config, { PDP_BUNDLE: bundle, PDP_ENTRYPOINT: "echo/decision" });
});

after(async () => {
  for (const close of closers.reverse()) await close();
  scratch.remove();
});

beforeEach(() => {
  nowMs = tenUtcMs;
});

// ---------------------------------------------------------------- valid tokens

describe("valid tokens", () => {
  for (const alg of signingAlgs) {
    test(`a ${alg} token from the trusted issuer is allowed to read`, async () => {
      await assertAllowed(pdp, await mint(published[alg], claims()));
    });
  }

  test("aud may be an array that includes this resource", async () => {
    const token = await mint(
      published.RS256,
      claims({ aud: ["https://mcp.example.com/other", audience] }),
    );
    await assertAllowed(pdp, token);
  });

  test("scopes in an scp array are honoured", async () => {
    const token = await mint(published.ES256, claims({ scope: undefined, scp: ["mcp:read"] }));
    await assertAllowed(pdp, token);
  });

  test("the policy sees the token's scopes, not the ones sent beside it", async () => {
    const token = await mint(published.RS256, claims({ scope: "mcp:write" }));
    const forged = {
      scopes: ["mcp:read", "mcp:admin"],
      scope: "mcp:read",
      authenticated: true,
      acr: "mfa",
    };
    const body = await evaluate(pdp, toolCall(tokenSubject(token, forged)));
    assert.deepEqual(outcome(body), { decision: false, codes: ["scope_missing"] });
    assert.deepEqual(body.context.obligations, { step_up: { scopes: ["mcp:read"] } });
  });

  test("auth_time from the token, against the frozen clock, drives auth_too_old", async () => {
    const twoDays = 2 * 86400;
    const token = await mint(published.EdDSA, claims({ auth_time: nowS() - twoDays }));
    const body = await evaluate(pdp, readCall(token));
    assert.deepEqual(outcome(body), { decision: false, codes: ["auth_too_old"] });
    assert.deepEqual(body.context.obligations, { step_up: { max_age: 86400 } });
  });

  test("a destructive call shows the step-up the token's subject lacks", async () => {
    const token = await mint(published.PS256, claims());
    const body = await evaluate(
      pdp,
      toolCall(tokenSubject(token), "files/delete_file", "compliant"),
    );
    assert.deepEqual(outcome(body), {
      decision: false,
      codes: ["acr_insufficient", "scope_missing"],
    });
    assert.deepEqual(body.context.obligations, {
      step_up: { scopes: ["mcp:admin"], acr_values: ["mfa"] },
    });
  });

  test("an admin token with acr mfa and a fresh login may delete", async () => {
    const token = await mint(published.ES256, claims({ scope: "mcp:admin", acr: "mfa" }));
    const body = await evaluate(
      pdp,
      toolCall(tokenSubject(token), "files/delete_file", "compliant"),
    );
    assert.deepEqual(outcome(body), { decision: true, codes: [] });
  });

  test("the typed issuer accepts typ at+jwt and application/at+jwt", async () => {
    for (const typ of ["at+jwt", "application/at+jwt", "AT+JWT"]) {
      const token = await mint(typedKey, claims({ iss: typedIssuer }), { header: { typ } });
      await assertAllowed(pdp, token, typ);
    }
  });
});

describe("the subject the policy sees (echo policy)", () => {
  async function echoedSubject(subject: Json): Promise<Json> {
    const body = await evaluate(echoPdp, toolCall(subject));
    return body.context.obligations.subject as Json;
  }

  test("is rebuilt from the verified claims alone; the token and forged fields are gone", async () => {
    const tokenClaims = claims({
      scope: "mcp:read mcp:write",
      client_id: "mcp-client",
      acr: "mfa",
      amr: ["pwd", "otp"],
    });
    const token = await mint(published.RS256, tokenClaims);
    const subject = await echoedSubject({
      ...tokenSubject(token, { scopes: ["mcp:admin"], authenticated: true, auth_age_s: 1 }),
      type: "admin",
      id: "mallory",
    });
    assert.deepEqual(subject, {
      type: "user",
      id: "alice",
      properties: {
        authenticated: true,
        authentication: "token",
        issuer,
        scopes: ["mcp:read", "mcp:write"],
        claims: tokenClaims,
        client_id: "mcp-client",
        acr: "mfa",
        amr: ["pwd", "otp"],
        auth_time: nowS() - 300,
        auth_age_s: 300,
      },
    });
  });

  test("a client-credentials token (sub == client_id or azp) is a service", async () => {
    for (const clientClaim of ["client_id", "azp"]) {
      const token = await mint(
        published.ES256,
        claims({ sub: "svc-reporting", [clientClaim]: "svc-reporting", auth_time: undefined }),
      );
      const subject = await echoedSubject(tokenSubject(token));
      assert.equal(subject.type, "service", clientClaim);
      assert.equal(subject.id, "svc-reporting");
      assert.equal((subject.properties as Json).client_id, "svc-reporting");
    }
  });

  test("a user token through a client stays a user; a type claim, when configured, wins", async () => {
    const viaClient = await mint(published.ES256, claims({ client_id: "mcp-client" }));
    assert.equal((await echoedSubject(tokenSubject(viaClient))).type, "user");
    const typed = await mint(
      published.ES256,
      claims({ client_id: "alice", pdp_subject_type: "agent" }),
    );
    assert.equal((await echoedSubject(tokenSubject(typed))).type, "agent");
  });

  test("scp as an array or a string gives the scopes", async () => {
    for (const scp of [["mcp:read", "mcp:write"], "mcp:read mcp:write"]) {
      const token = await mint(published.EdDSA, claims({ scope: undefined, scp }));
      const subject = await echoedSubject(tokenSubject(token));
      assert.deepEqual((subject.properties as Json).scopes, ["mcp:read", "mcp:write"]);
    }
  });

  test("a failed token leaves an anonymous subject with only the error", async () => {
    const token = await mint(published.RS256, claims({ exp: nowS() - 3600, iat: nowS() - 7200 }));
    const subject = await echoedSubject({
      ...tokenSubject(token, { scopes: ["mcp:admin"], acr: "mfa", auth_time: nowS() }),
      id: "mallory",
    });
    assert.equal(subject.type, "user");
    assert.equal(subject.id, "");
    const properties = subject.properties as Json;
    assert.deepEqual(Object.keys(properties).sort(), ["authenticated", "token_error"]);
    assert.equal(properties.authenticated, false);
    assert.equal((properties.token_error as Json).code, "token_expired");
  });
});

// ---------------------------------------------------------------- hostile tokens

describe("hostile tokens are denied with the exact reason", () => {
  describe("algorithm attacks", () => {
    test("alg none with an empty signature: malformed, as every token with an empty segment", async () => {
      await assertDenied(pdp, handBuilt({ alg: "none", typ: "JWT" }, claims()), "token_malformed");
    });

    test("alg none with a real signature appended", async () => {
      const real = await mint(published.RS256, claims());
      await assertDenied(
        pdp,
        handBuilt({ alg: "none", typ: "JWT" }, claims(), signaturePart(real)),
        "token_alg_not_allowed",
      );
    });

    test("alg none spelt None, NONE, nOnE", async () => {
      const signature = signaturePart(await mint(published.RS256, claims()));
      for (const alg of ["None", "NONE", "nOnE"]) {
        await assertDenied(
          pdp,
          handBuilt({ alg }, claims(), signature),
          "token_alg_not_allowed",
          alg,
        );
      }
    });

    test("alg none without the trailing dot is not even a compact JWS", async () => {
      const token = `${b64json({ alg: "none" })}.${b64json(claims())}`;
      await assertDenied(pdp, token, "token_malformed");
    });

    test("no alg header at all", async () => {
      await assertDenied(
        pdp,
        await signRaw(published.RS256, { kid: published.RS256.kid }, claims()),
        "token_alg_not_allowed",
      );
    });

    test("HS256 keyed with the issuer's RSA public key (PEM) — key confusion", async () => {
      const secret = new TextEncoder().encode(await publicPem(published.RS256));
      const token = await new SignJWT(claims())
        .setProtectedHeader({ alg: "HS256", kid: published.RS256.kid, typ: "JWT" })
        .sign(secret);
      await assertDenied(pdp, token, "token_alg_not_allowed");
    });

    test("HS256 keyed with the issuer's public JWK bytes", async () => {
      const secret = new TextEncoder().encode(JSON.stringify(published.RS256.publicJwk));
      const token = await new SignJWT(claims())
        .setProtectedHeader({ alg: "HS256", kid: published.RS256.kid, typ: "JWT" })
        .sign(secret);
      await assertDenied(pdp, token, "token_alg_not_allowed");
    });

    test("an alg the issuer does not allow (RS256 for an ES256-only issuer)", async () => {
      const token = await mint(published.RS256, claims({ iss: typedIssuer }), {
        header: { typ: "at+jwt" },
      });
      await assertDenied(pdp, token, "token_alg_not_allowed");
    });

    test("alg switched to PS256 under an RS256 key's kid", async () => {
      const real = await mint(published.RS256, claims());
      const [, payload, signature] = real.split(".");
      const header = b64json({ alg: "PS256", kid: published.RS256.kid, typ: "JWT" });
      await assertDenied(pdp, `${header}.${payload ?? ""}.${signature ?? ""}`, "token_unknown_key");
    });

    test("alg switched to ES256 under an RSA key's kid", async () => {
      const forged = await signRaw(
        rogue.ES256,
        { alg: "ES256", kid: published.RS256.kid, typ: "JWT" },
        claims(),
      );
      await assertDenied(pdp, forged, "token_unknown_key");
    });
  });

  describe("key selection attacks", () => {
    test("an unknown kid", async () => {
      const token = await mint(rogue.RS256, claims(), { header: { kid: "nobody-knows-me" } });
      await assertDenied(pdp, token, "token_unknown_key");
    });

    test("a published key's signature under an unknown kid", async () => {
      const token = await mint(published.RS256, claims(), { header: { kid: "not-published" } });
      await assertDenied(pdp, token, "token_unknown_key");
    });

    for (const kid of [
      "../../etc/passwd",
      "' OR '1'='1",
      "/dev/null",
      "file:///etc/passwd",
      "%2e%2e%2f%2e%2e%2fetc%2fpasswd",
      "",
    ]) {
      test(`a kid of ${JSON.stringify(kid)}`, async () => {
        const token = await mint(rogue.RS256, claims(), { header: { kid } });
        await assertDenied(pdp, token, "token_unknown_key");
      });
    }

    test("a kid that is not a string", async () => {
      for (const kid of [42, { $ne: null }, [published.RS256.kid]]) {
        const token = await signRaw(rogue.RS256, { alg: "RS256", kid }, claims());
        await assertDenied(pdp, token, "token_unknown_key", JSON.stringify(kid));
      }
    });

    test("a known kid, signed by a key the JWKS does not have", async () => {
      for (const alg of signingAlgs) {
        const token = await mint(rogue[alg], claims(), { header: { kid: published[alg].kid } });
        await assertDenied(pdp, token, "token_bad_signature", alg);
      }
    });

    test("a key trusted for one issuer cannot sign for another", async () => {
      // small.example.com's keys are a local file holding smallKey only.
      const token = await mint(published.RS256, claims({ iss: smallIssuer }));
      await assertDenied(pdp, token, "token_unknown_key");
    });

    const embedded: [string, (key: TestKey) => Json][] = [
      ["jku", () => ({ jku: evil.url })],
      ["x5u", () => ({ x5u: `${evil.origin}/cert.pem` })],
      ["jwk", (key) => ({ jwk: key.publicJwk })],
      ["x5c", () => ({ x5c: ["MIIBIjANBgkqhkiG9w0BAQEFAAOCAQ8AMIIBCgKCAQEA"] })],
    ];
    for (const [name, extra] of embedded) {
      for (const kid of ["rogue", "published", "none"] as const) {
        test(`a ${name} header naming the attacker's key (kid: ${kid})`, async () => {
          const key = rogue.RS256;
          const header: Json = { ...extra(key) };
          header.kid =
            kid === "rogue" ? key.kid : kid === "published" ? published.RS256.kid : undefined;
          const token = await mint(key, claims(), { header });
          const requestsBefore = evil.requests;
          const code = await deniedCode(pdp, token);
          assert.ok(
            code === "token_unknown_key" || code === "token_bad_signature",
            `denied for an unknown key or a bad signature, got ${code}`,
          );
          // Which one is deterministic: an unknown kid finds no key; the issuer's kid (or none,
          // with one RS256 key published) finds the issuer's key, which does not verify.
          assert.equal(code, kid === "rogue" ? "token_unknown_key" : "token_bad_signature");
          assert.equal(evil.requests, requestsBefore, "the attacker's server was not asked");
          assert.equal(evil.connections, 0, "nobody connected to the attacker's server");
        });
      }
    }
  });

  describe("header attacks", () => {
    test("an unknown crit extension", async () => {
      const token = await mint(published.RS256, claims(), {
        header: { crit: ["x-foo"], "x-foo": "bar" },
        crit: { "x-foo": true },
      });
      await assertDenied(pdp, token, "token_crit_unsupported");
    });

    test("crit naming an extension that is absent", async () => {
      const token = await signRaw(
        published.ES256,
        { alg: "ES256", kid: published.ES256.kid, crit: ["x-absent"] },
        claims(),
      );
      await assertDenied(pdp, token, "token_crit_unsupported");
    });

    test("crit that is empty or not a list", async () => {
      for (const crit of [[], "x-foo", [""]]) {
        const token = await signRaw(
          published.ES256,
          { alg: "ES256", kid: published.ES256.kid, crit, "x-foo": 1 },
          claims(),
        );
        await assertDenied(pdp, token, "token_crit_unsupported", JSON.stringify(crit));
      }
    });

    test("typ other than at+jwt where the issuer requires it", async () => {
      for (const typ of ["JWT", "jwt", "at+jwt+x", "application/jwt"]) {
        const token = await mint(typedKey, claims({ iss: typedIssuer }), { header: { typ } });
        await assertDenied(pdp, token, "token_wrong_type", typ);
      }
    });

    test("no typ where the issuer requires at+jwt", async () => {
      const token = await mint(typedKey, claims({ iss: typedIssuer }), {
        header: { typ: undefined },
      });
      await assertDenied(pdp, token, "token_wrong_type");
    });
  });

  describe("time claims (clock tolerance 30 s)", () => {
    test("expired an hour ago", async () => {
      const token = await mint(published.RS256, claims({ iat: nowS() - 7200, exp: nowS() - 3600 }));
      await assertDenied(pdp, token, "token_expired");
    });

    test("exp at the edge of the tolerance: 29 s ago passes, 30 s ago is expired", async () => {
      await assertAllowed(pdp, await mint(published.RS256, claims({ exp: nowS() - 29 })));
      await assertDenied(
        pdp,
        await mint(published.RS256, claims({ exp: nowS() - 30 })),
        "token_expired",
      );
    });

    test("nbf in the future", async () => {
      const token = await mint(published.ES256, claims({ nbf: nowS() + 3600 }));
      await assertDenied(pdp, token, "token_not_yet_valid");
    });

    test("nbf at the edge of the tolerance: +30 s passes, +31 s is not yet valid", async () => {
      await assertAllowed(pdp, await mint(published.ES256, claims({ nbf: nowS() + 30 })));
      await assertDenied(
        pdp,
        await mint(published.ES256, claims({ nbf: nowS() + 31 })),
        "token_not_yet_valid",
      );
    });

    test("iat in the future", async () => {
      const token = await mint(published.EdDSA, claims({ iat: nowS() + 3600 }));
      await assertDenied(pdp, token, "token_issued_in_future");
    });

    test("iat at the edge of the tolerance: +30 s passes, +31 s is in the future", async () => {
      await assertAllowed(pdp, await mint(published.EdDSA, claims({ iat: nowS() + 30 })));
      await assertDenied(
        pdp,
        await mint(published.EdDSA, claims({ iat: nowS() + 31 })),
        "token_issued_in_future",
      );
    });
  });

  describe("required and registered claims", () => {
    test("no exp", async () => {
      const token = await mint(published.RS256, claims({ exp: undefined }));
      await assertDenied(pdp, token, "token_claim_missing");
    });

    test("no sub", async () => {
      const token = await mint(published.RS256, claims({ sub: undefined }));
      await assertDenied(pdp, token, "token_claim_missing");
    });

    test("an empty or non-string sub", async () => {
      for (const sub of ["", 42, ["alice"]]) {
        const token = await mint(published.RS256, claims({ sub }));
        await assertDenied(pdp, token, "token_claim_invalid", JSON.stringify(sub));
      }
    });

    test("exp that is not a number", async () => {
      const token = await mint(published.RS256, claims({ exp: String(nowS() + 600) }));
      await assertDenied(pdp, token, "token_claim_invalid");
    });

    test("an untrusted iss", async () => {
      for (const iss of ["https://evil.example.com", `${issuer}/`, "HTTPS://IDP.EXAMPLE.COM"]) {
        const token = await mint(published.RS256, claims({ iss }));
        await assertDenied(pdp, token, "token_wrong_issuer", iss);
      }
    });

    test("no iss, or iss that is not a string", async () => {
      for (const iss of [undefined, 42, [issuer]]) {
        const token = await mint(published.RS256, claims({ iss }));
        await assertDenied(pdp, token, "token_wrong_issuer", JSON.stringify(iss));
      }
    });

    test("no aud", async () => {
      const token = await mint(published.RS256, claims({ aud: undefined }));
      await assertDenied(pdp, token, "token_wrong_audience");
    });

    test("a wrong aud", async () => {
      for (const aud of [
        "https://mcp.example.com",
        `${audience}/`,
        "https://MCP.EXAMPLE.COM/files",
        "files",
      ]) {
        const token = await mint(published.RS256, claims({ aud }));
        await assertDenied(pdp, token, "token_wrong_audience", aud);
      }
    });

    test("aud an array without this resource", async () => {
      const token = await mint(
        published.RS256,
        claims({ aud: ["https://mcp.example.com/other", "https://api.example.com"] }),
      );
      await assertDenied(pdp, token, "token_wrong_audience");
    });

    test("a token issued for another registered MCP server of the same issuer (passthrough)", async () => {
      const token = await mint(published.ES256, claims({ aud: otherResource }));
      await assertDenied(pdp, token, "token_wrong_audience");
      // The same token is good where it belongs: the refusal is the binding, not the token.
      const onOther = await postJson(
        `${pdp.url}/access/v1/evaluation`,
        toolCall(tokenSubject(token), "other/read_file"),
      );
      const otherCodes = (onOther.body as { context: { reasons: Reason[] } }).context.reasons.map(
        (r) => r.code,
      );
      assert.ok(!otherCodes.some((code) => code.startsWith("token_")), otherCodes.join(","));
    });

    test("a token for a server outside the registry is server_unknown, whatever its aud", async () => {
      for (const aud of [audience, "https://mcp.example.com/nope"]) {
        const token = await mint(published.RS256, claims({ aud }));
        const response = await postJson(
          `${pdp.url}/access/v1/evaluation`,
          toolCall(tokenSubject(token), "nope/read_file"),
        );
        assert.equal((response.body as { decision: boolean }).decision, false);
        const reasons = (response.body as { context: { reasons: Reason[] } }).context.reasons;
        assert.deepEqual(
          reasons.map((r) => r.code),
          ["server_unknown"],
        );
      }
    });
  });

  describe("tampering and garbage", () => {
    test("claims changed after signing (scope raised to mcp:admin)", async () => {
      const real = await mint(published.RS256, claims());
      const [header, , signature] = real.split(".");
      const forged = `${header ?? ""}.${b64json(claims({ scope: "mcp:admin" }))}.${signature ?? ""}`;
      await assertDenied(pdp, forged, "token_bad_signature");
    });

    test("a signature truncated by 2 characters (still canonical base64url) does not verify", async () => {
      // 342 characters of RS256 signature → 340: decodes to 255 bytes, which fail verification.
      // (Other cuts leave a last character whose unused bits are set: non-canonical, malformed.)
      const real = await mint(published.RS256, claims());
      await assertDenied(pdp, real.slice(0, -2), "token_bad_signature");
    });

    test("a signature truncated by 1 character is not base64url at all", async () => {
      // 341 characters leave a lone sextet: the signature cannot be decoded, so it is malformed.
      const real = await mint(published.RS256, claims());
      assert.equal(signaturePart(real).length % 4, 2);
      await assertDenied(pdp, real.slice(0, -1), "token_malformed");
    });

    test("one signature character changed", async () => {
      for (const alg of signingAlgs) {
        const real = await mint(published[alg], claims());
        const at = real.length - 10;
        const swapped = real[at] === "A" ? "B" : "A";
        const forged = `${real.slice(0, at)}${swapped}${real.slice(at + 1)}`;
        await assertDenied(pdp, forged, "token_bad_signature", alg);
      }
    });

    test("an empty signature on a real header and payload is malformed", async () => {
      const real = await mint(published.RS256, claims());
      await assertDenied(pdp, `${real.slice(0, real.lastIndexOf("."))}.`, "token_malformed");
    });

    test("garbage", async () => {
      for (const garbage of [
        "abc",
        "a.b.c",
        "...",
        "a.b",
        "a.b.c.d",
        "a.b.c.d.e.f",
        `${b64json([1, 2])}.${b64json(claims())}.sig`,
        `${b64json({ alg: "RS256" })}.${b64json("just a string")}.sig`,
        `${b64json({ alg: "RS256" })}.not*base64.sig`,
        `not json.${b64json(claims())}.sig`,
      ]) {
        await assertDenied(pdp, garbage, "token_malformed", garbage);
      }
    });

    test("a JWE (five parts) is refused as encrypted", async () => {
      const token = await encryptedToken(claims());
      assert.equal(token.split(".").length, 5);
      await assertDenied(pdp, token, "token_encrypted");
    });

    test("longer than the issuer's max_token_bytes (1024): the limit is exact", async () => {
      const sized = async (pad: number) =>
        mint(smallKey, claims({ iss: smallIssuer, pad: "x".repeat(pad) }));
      let pad = 0;
      let fits = await sized(pad);
      for (;;) {
        const next = await sized(pad + 1);
        if (next.length > 1024) {
          assert.ok(fits.length <= 1024 && fits.length >= 1020, `${fits.length} fits`);
          await assertAllowed(pdp, fits, `${fits.length} bytes`);
          await assertDenied(pdp, next, "token_too_large", `${next.length} bytes`);
          break;
        }
        pad += 1;
        fits = next;
      }
    });

    test("longer than every issuer's limit (8192) is refused before parsing", async () => {
      const token = await mint(published.RS256, claims({ pad: "x".repeat(8192) }));
      await assertDenied(pdp, token, "token_too_large");
      await assertDenied(pdp, "a".repeat(9000), "token_too_large");
    });
  });

  test("the attacker's key server was never contacted by any test above", () => {
    assert.equal(evil.connections, 0);
    assert.equal(evil.requests, 0);
  });
});

// ---------------------------------------------------------------- JWKS behaviour

describe("JWKS behaviour (cooldown 1 s, timeout 200 ms, token cache off)", () => {
  for (const outage of ["status-503", "destroy-socket"] as const) {
    test(`outage (${outage}): cached keys keep verifying; an unknown kid is jwks_unavailable`, async () => {
      const k1 = await generateTestKey("RS256");
      const k2 = await generateTestKey("ES256");
      const { jwks: server, pdp: stackPdp } = await startStack([k1.publicJwk]);
      await assertAllowed(stackPdp, await mint(k1, claims()));
      assert.equal(server.jwksRequests, 1, "the keys were fetched once");

      server.outage = outage;
      await assertAllowed(stackPdp, await mint(k1, claims()), "cached key during the outage");
      assert.equal(server.jwksRequests, 1, "a cached kid does not refetch");

      advanceClock(pastCooldownMs);
      await assertDenied(stackPdp, await mint(k2, claims()), "jwks_unavailable");
      assert.equal(server.jwksRequests, 2, "the unknown kid tried a refetch");
      await assertAllowed(stackPdp, await mint(k1, claims()), "still cached after the failure");
      assert.ok(
        stackPdp.logs.some((line) => line.message === "JWKS fetch failed" && line.level === "warn"),
        "the failed fetch is logged",
      );
    });
  }

  test("during an outage, unknown kids refetch at most once per cooldown", async () => {
    const k1 = await generateTestKey("RS256");
    const { jwks: server, pdp: stackPdp } = await startStack([k1.publicJwk]);
    await assertAllowed(stackPdp, await mint(k1, claims()));
    server.outage = "status-503";
    advanceClock(pastCooldownMs);
    const before = server.jwksRequests;
    const started = performance.now();
    for (let i = 0; i < 4; i += 1) {
      const unknown = await mint(k1, claims(), { header: { kid: `unknown-${i}` } });
      await assertDenied(stackPdp, unknown, "jwks_unavailable", `request ${i}`);
    }
    const elapsed = performance.now() - started;
    assert.ok(elapsed < 1000, `the four requests ran within one cooldown (${elapsed} ms)`);
    assert.ok(
      server.jwksRequests - before <= 1,
      `README: "an unknown kid refetches at most once per jwks_cooldown_s"; got ${server.jwksRequests - before} fetches`,
    );
  });

  test("recovery: once the JWKS answers again, a new kid is accepted", async () => {
    const k1 = await generateTestKey("RS256");
    const k2 = await generateTestKey("EdDSA");
    const { jwks: server, pdp: stackPdp } = await startStack([k1.publicJwk]);
    await assertAllowed(stackPdp, await mint(k1, claims()));
    server.outage = "status-503";
    server.keys = [k1.publicJwk, k2.publicJwk];
    advanceClock(pastCooldownMs);
    await assertDenied(stackPdp, await mint(k2, claims()), "jwks_unavailable");

    server.outage = "none";
    advanceClock(pastCooldownMs);
    await assertAllowed(stackPdp, await mint(k2, claims()), "the new key after recovery");
    await assertAllowed(stackPdp, await mint(k1, claims()), "the old key is still published");
  });

  test("rotation: the new key is accepted and the old key's fresh tokens stop, without restart", async () => {
    const oldKey = await generateTestKey("RS256");
    const newKey = await generateTestKey("RS256");
    const { jwks: server, pdp: stackPdp } = await startStack([oldKey.publicJwk]);
    await assertAllowed(stackPdp, await mint(oldKey, claims()));

    server.keys = [newKey.publicJwk];
    advanceClock(pastCooldownMs);
    // The unknown kid forces the refetch (background refresh is tested separately).
    await assertAllowed(stackPdp, await mint(newKey, claims()), "the new key");
    const fetches = server.jwksRequests;
    await assertDenied(stackPdp, await mint(oldKey, claims()), "token_unknown_key");
    assert.equal(server.jwksRequests, fetches, "within the cooldown: no refetch");

    advanceClock(pastCooldownMs);
    await assertDenied(stackPdp, await mint(oldKey, claims()), "token_unknown_key");
    assert.equal(server.jwksRequests, fetches + 1, "after the cooldown: refetched, still absent");
    await assertAllowed(stackPdp, await mint(newKey, claims()), "the new key still verifies");
  });

  test("background refresh (jwks_refresh_s 10) drops a removed key without any unknown kid", async () => {
    const oldKey = await generateTestKey("ES256");
    const newKey = await generateTestKey("ES256");
    const { jwks: server, pdp: stackPdp } = await startStack([oldKey.publicJwk, newKey.publicJwk], {
      issuer: { jwks_refresh_s: 10 },
    });
    await assertAllowed(stackPdp, await mint(oldKey, claims()));
    await assertAllowed(stackPdp, await mint(newKey, claims()));
    assert.equal(server.jwksRequests, 1);

    server.keys = [newKey.publicJwk];
    advanceClock(9_000);
    await assertAllowed(stackPdp, await mint(newKey, claims()), "9 s after the fetch");
    assert.equal(server.jwksRequests, 1, "no refresh before jwks_refresh_s");
    advanceClock(1_300);
    // This request (a known kid) starts the background refetch, but is verified with the keys in
    // hand: it uses the key present in both sets, as an old-key token would race the refetch.
    const trigger = await evaluate(stackPdp, readCall(await mint(newKey, claims())));
    assert.equal(trigger.decision, true, "the new key verifies either way");
    const fetches = () => server.jwksRequests;
    for (let i = 0; i < 50 && fetches() < 2; i += 1) await sleep(20);
    assert.equal(server.jwksRequests, 2, "a background refetch happened");
    await sleep(100);
    await assertDenied(stackPdp, await mint(oldKey, claims()), "token_unknown_key");
    await assertAllowed(stackPdp, await mint(newKey, claims()));
  });

  test("a JWKS slower than jwks_timeout_ms: an unknown kid is jwks_unavailable, promptly", async () => {
    const k1 = await generateTestKey("RS256");
    const k2 = await generateTestKey("RS256");
    const { jwks: server, pdp: stackPdp } = await startStack([k1.publicJwk]);
    await assertAllowed(stackPdp, await mint(k1, claims()));
    server.delayMs = 5000;
    server.keys = [k1.publicJwk, k2.publicJwk];
    advanceClock(pastCooldownMs);

    let started = performance.now();
    await assertDenied(stackPdp, await mint(k2, claims()), "jwks_unavailable");
    let elapsed = performance.now() - started;
    assert.ok(elapsed < 2000, `answered in ${Math.round(elapsed)} ms`);
    assert.ok(elapsed >= 150, `waited for the timeout (${Math.round(elapsed)} ms)`);

    started = performance.now();
    await assertAllowed(stackPdp, await mint(k1, claims()), "a cached kid is not held up");
    elapsed = performance.now() - started;
    assert.ok(elapsed < 1000, `answered in ${Math.round(elapsed)} ms`);
  });

  test("a JWKS slow from the start: the first token is jwks_unavailable, promptly", async () => {
    const k1 = await generateTestKey("PS256");
    const jwksServer = await startJwks([k1.publicJwk]);
    jwksServer.delayMs = 5000;
    const stackPdp = await startTrackedPdp({
      issuers: [mainIssuer(jwksServer.url)],
      token_cache: { max_entries: 0 },
    });
    const started = performance.now();
    await assertDenied(stackPdp, await mint(k1, claims()), "jwks_unavailable");
    const elapsed = performance.now() - started;
    assert.ok(elapsed < 2000, `answered in ${Math.round(elapsed)} ms`);

    jwksServer.delayMs = 0;
    // A failed fetch starts the cooldown too: within it the PDP does not ask again.
    await assertDenied(
      stackPdp,
      await mint(k1, claims()),
      "jwks_unavailable",
      "within the cooldown",
    );
    advanceClock(pastCooldownMs);
    await assertAllowed(stackPdp, await mint(k1, claims()), "fetched once the cooldown passed");
  });

  test("a JWKS down from the start: jwks_unavailable, never an allow or a 500", async () => {
    const k1 = await generateTestKey("ES256");
    for (const outage of ["status-503", "destroy-socket"] as const) {
      const jwksServer = await startJwks([k1.publicJwk]);
      jwksServer.outage = outage;
      const stackPdp = await startTrackedPdp({ issuers: [mainIssuer(jwksServer.url)] });
      await assertDenied(stackPdp, await mint(k1, claims()), "jwks_unavailable", outage);
    }
  });
});

// ---------------------------------------------------------------- the token cache

describe("the token cache", () => {
  /** Withdraws `oldKey` from the JWKS and makes the PDP refetch (via an unknown kid). */
  async function withdraw(stack: Stack, oldKey: TestKey, newKey: TestKey): Promise<void> {
    stack.jwks.keys = [newKey.publicJwk];
    advanceClock(pastCooldownMs);
    await assertAllowed(stack.pdp, await mint(newKey, claims()), "the refetch happened");
    await assertDenied(
      stack.pdp,
      await mint(oldKey, claims()),
      "token_unknown_key",
      "the PDP no longer holds the old key",
    );
  }

  test("max_entries > 0: a repeated token is verified once (it outlives its key's withdrawal)", async () => {
    const oldKey = await generateTestKey("RS256");
    const newKey = await generateTestKey("RS256");
    const stack = await startStack([oldKey.publicJwk], { tokenCache: 100 });
    const token = await mint(oldKey, claims());
    await assertAllowed(stack.pdp, token);
    await withdraw(stack, oldKey, newKey);
    // Documented: a cached verification stands until exp (set max_entries: 0 to avoid it).
    await assertAllowed(stack.pdp, token, "served from the cache, not verified again");
  });

  test("max_entries 0: the same token is verified every time", async () => {
    const oldKey = await generateTestKey("RS256");
    const newKey = await generateTestKey("RS256");
    const stack = await startStack([oldKey.publicJwk], { tokenCache: 0 });
    const token = await mint(oldKey, claims());
    await assertAllowed(stack.pdp, token);
    await withdraw(stack, oldKey, newKey);
    await assertDenied(stack.pdp, token, "token_unknown_key");
  });

  for (const [cache, tolerance] of [
    [100, 0],
    [100, 30],
    [0, 30],
  ] as const) {
    test(`never past exp (cache ${cache}, clock tolerance ${tolerance} s)`, async () => {
      const key = await generateTestKey("ES256");
      const stack = await startStack([key.publicJwk], {
        tokenCache: cache,
        issuer: { clock_tolerance_s: tolerance },
      });
      const exp = nowS() + 60;
      const token = await mint(key, claims({ exp }));
      await assertAllowed(stack.pdp, token);
      await assertAllowed(stack.pdp, token, "repeated");
      nowMs = (exp + tolerance - 1) * 1000;
      await assertAllowed(stack.pdp, token, "one second before exp + tolerance");
      nowMs = (exp + tolerance) * 1000;
      await assertDenied(stack.pdp, token, "token_expired", "at exp + tolerance");
      nowMs = (exp + 3600) * 1000;
      await assertDenied(stack.pdp, token, "token_expired", "an hour later");
    });
  }

  test("a cached token does not vouch for a tampered copy", async () => {
    const key = await generateTestKey("RS256");
    const stack = await startStack([key.publicJwk], { tokenCache: 100 });
    const token = await mint(key, claims());
    await assertAllowed(stack.pdp, token);
    const [header, , signature] = token.split(".");
    const raised = `${header ?? ""}.${b64json(claims({ scope: "mcp:admin" }))}.${signature ?? ""}`;
    await assertDenied(stack.pdp, raised, "token_bad_signature");
    await assertDenied(stack.pdp, token.slice(0, -2), "token_bad_signature");
    await assertAllowed(stack.pdp, token, "the original is still fine");
  });
});

// ---------------------------------------------------------------- batch

describe("batch: /access/v1/evaluations", () => {
  const items = [
    { resource: { type: "tool", id: "files/read_file" } },
    {
      resource: { type: "tool", id: "files/write_file" },
      context: { device: { trust: "managed" } },
    },
    {
      resource: { type: "tool", id: "files/delete_file" },
      context: { device: { trust: "compliant" } },
    },
  ];

  function envelope(subject: Json): Json {
    return {
      subject,
      action: { name: "tools/call" },
      context: { device: { trust: "managed" } },
      evaluations: items,
      options: { include_context: true },
    };
  }

  test("a token in the top-level subject decides every item for the verified subject", async () => {
    const token = await mint(published.RS256, claims({ scope: "mcp:read mcp:write" }));
    const body = await evaluateBatch(pdp, envelope(tokenSubject(token, { scopes: ["mcp:admin"] })));
    assert.equal(body.evaluations.length, 3);
    const results = body.evaluations.map((e) => outcome(e as unknown as DecisionBody));
    assert.deepEqual(results, [
      { decision: true, codes: [] },
      // write needs a 10.0.0.0/8 address; the scope is there.
      { decision: false, codes: ["network_denied"] },
      // the forged mcp:admin beside the token is ignored.
      { decision: false, codes: ["acr_insufficient", "scope_missing"] },
    ]);
  });

  test("every item sees the same verified subject (echo policy)", async () => {
    const tokenClaims = claims({ sub: "bob", scope: "mcp:read" });
    const token = await mint(published.ES256, tokenClaims);
    const body = await evaluateBatch(echoPdp, envelope(tokenSubject(token)));
    assert.equal(body.evaluations.length, 3);
    const subjects = body.evaluations.map(
      (e) => (e.context as { obligations: { subject: Json } }).obligations.subject,
    );
    for (const subject of subjects) {
      assert.equal(subject.id, "bob");
      assert.deepEqual((subject.properties as Json).claims, tokenClaims);
      assert.deepEqual(subject, subjects[0]);
    }
  });

  test("a hostile token in the top-level subject denies every item with its code", async () => {
    const token = await mint(rogue.RS256, claims(), { header: { kid: published.RS256.kid } });
    const body = await evaluateBatch(pdp, envelope(tokenSubject(token)));
    assert.deepEqual(
      body.evaluations.map((e) => outcome(e as unknown as DecisionBody)),
      items.map(() => ({ decision: false, codes: ["token_bad_signature"] })),
    );
  });

  test("items may carry their own tokens, each verified on its own", async () => {
    const alice = await mint(published.EdDSA, claims());
    const expired = await mint(published.EdDSA, claims({ sub: "carol", exp: nowS() - 3600 }));
    const bob = await mint(published.PS256, claims({ sub: "bob" }));
    const read = { type: "tool", id: "files/read_file" };
    const body = await evaluateBatch(echoPdp, {
      action: { name: "tools/call" },
      resource: read,
      evaluations: [
        { subject: tokenSubject(alice) },
        { subject: tokenSubject(expired) },
        { subject: tokenSubject(bob) },
      ],
      options: { include_context: true },
    });
    const seen = body.evaluations.map((e) => ({
      decision: e.decision,
      id: (e.context as { obligations: { subject: Json } }).obligations.subject.id,
    }));
    assert.deepEqual(seen, [
      { decision: true, id: "alice" },
      { decision: false, id: "" },
      { decision: true, id: "bob" },
    ]);
  });
});

// ---------------------------------------------------------------- secrecy

describe("tokens never reach a log", () => {
  test("a mix of decisions at LOG_LEVEL debug leaves no token (or signature) in any log line", async () => {
    const k1 = await generateTestKey("RS256");
    const stack = await startStack([k1.publicJwk], { tokenCache: 10 });
    const good = await mint(k1, claims());
    const goodPublished = await mint(published.ES256, claims());
    const hostile = [
      await mint(k1, claims({ exp: nowS() - 3600 })),
      await mint(k1, claims({ aud: "https://mcp.example.com/other" })),
      await mint(rogue.RS256, claims(), { header: { kid: k1.kid } }),
      await mint(rogue.RS256, claims(), { header: { kid: "unknown", jku: evil.url } }),
      handBuilt({ alg: "none" }, claims(), signaturePart(good)),
      (await mint(k1, claims())).slice(0, -4),
      await encryptedToken(claims()),
    ];

    for (const target of [stack.pdp, pdp, echoPdp]) {
      const validToken = target === stack.pdp ? good : goodPublished;
      assert.equal((await evaluate(target, readCall(validToken))).decision, true);
      for (const token of hostile) {
        assert.equal((await evaluate(target, readCall(token))).decision, false);
      }
      const batch = await evaluateBatch(target, {
        subject: tokenSubject(validToken),
        action: { name: "tools/call" },
        resource: { type: "tool", id: "files/read_file" },
        context: { device: { trust: "managed" } },
        evaluations: [
          {},
          { subject: tokenSubject(hostile[0] ?? "") },
          { resource: { type: "tool" } },
          { subject: tokenSubject(hostile[2] ?? "") },
        ],
      });
      assert.deepEqual(
        batch.evaluations.map((e) => e.decision),
        [true, false, false, false],
      );
      // A request the API refuses (400) with a token inside.
      const refused = await postJson(`${target.url}/access/v1/evaluation`, {
        subject: tokenSubject(validToken),
        action: { name: 42 },
        resource: { type: "tool", id: "files/read_file" },
      });
      assert.equal(refused.status, 400);
      assertNoTokenIn(JSON.stringify(refused.body), "a 400 response");
    }

    // The JWKS goes down: fetch failures are logged (at warn) beside the token failures.
    stack.jwks.outage = "destroy-socket";
    advanceClock(pastCooldownMs);
    const during = await mint(k1, claims(), { header: { kid: "rotated-in" } });
    await assertDenied(stack.pdp, during, "jwks_unavailable");
    await assertAllowed(stack.pdp, good, "cached");

    const lines = allPdps.flatMap((running) => running.logs);
    assert.ok(
      lines.some((line) => line.level === "debug" && line.message === "token rejected"),
      "debug lines about rejected tokens were captured",
    );
    assert.ok(lines.some((line) => line.message === "JWKS fetch failed"));
    for (const line of lines) assertNoTokenIn(JSON.stringify(line), "a log line");
    assert.ok(sentTokens.size > 100, `searched for ${sentTokens.size} tokens`);
  });
});

/**
 * The JWKS refetch cooldown holds for every failed fetch, including a 200
 * whose body is unusable: HTML, JSON without `keys`, keys that do not import,
 * a body over the size bound. Before, such an answer counted as a success for
 * the cooldown and a stream of unknown kids refetched on every token (40
 * fetches in 0.2 s). A real JWKS server on loopback counts the fetches; the
 * key source's clock is injected, so the cooldown passes without sleeping.
 */
import assert from "node:assert/strict";
import { writeFileSync } from "node:fs";
import { join } from "node:path";
import { after, describe, test } from "node:test";
import { fileURLToPath } from "node:url";
import type { JWK } from "jose";
import { asymmetricAlgorithms } from "../../src/config/index.ts";
import { maxJwksBytes, RemoteJwksKeySource } from "../../src/auth/key-sources.ts";
import { JwksServer } from "../support/jwks-server.ts";
import { scratchDir } from "../support/opa.ts";
import { postJson, startPdp } from "../support/pdp.ts";
import { generateTestKey, mint, type TestKey } from "../support/tokens.ts";
import { scrape, total } from "../observability/helpers.ts";

const scratch = scratchDir();
const closers: (() => Promise<void>)[] = [];
after(async () => {
  for (const close of closers) await close();
  scratch.remove();
});

async function startJwks(keys: JWK[] = []): Promise<JwksServer> {
  const server = await JwksServer.start(keys);
  closers.push(() => server.close());
  return server;
}

const cooldownMs = 30_000;

/** A key source on `server` whose clock the test moves; `fetches` hears every fetch's outcome. */
function sourceFor(server: JwksServer): {
  source: RemoteJwksKeySource;
  clock: { now: number };
  outcomes: (string | undefined)[];
} {
  const clock = { now: 1_000_000 };
  const outcomes: (string | undefined)[] = [];
  const source = new RemoteJwksKeySource({
    url: new URL(server.url),
    timeoutMs: 2000,
    cooldownMs,
    refreshMs: 600_000,
    algorithms: asymmetricAlgorithms,
    now: () => clock.now,
    onFetch: (error) => outcomes.push(error instanceof Error ? error.message : undefined),
  });
  return { source, clock, outcomes };
}

/** Asks for the key of `kid` (RS256) and returns the token error it was classified as. */
async function lookupFailure(source: RemoteJwksKeySource, kid: string): Promise<string> {
  try {
    await source.getKey({ alg: "RS256", kid }, { payload: "", signature: "" });
  } catch (error) {
    const classified = source.classify(error);
    assert.ok(classified !== undefined, `unclassified: ${String(error)}`);
    return classified.code;
  }
  return assert.fail(`a key was found for ${kid}`);
}

/** Keys in form that no algorithm imports: an RSA key without `n`, an EC point off the curve. */
const zeros = Buffer.alloc(32).toString("base64url");
const importless = JSON.stringify({
  keys: [
    { kty: "RSA", kid: "broken", alg: "RS256", use: "sig", e: "AQAB" },
    { kty: "EC", kid: "off-curve", crv: "P-256", use: "sig", x: zeros, y: zeros },
  ],
});
/** Valid JSON, a valid key set in form, one byte over the bound. */
function oversized(key: JWK): string {
  const text = JSON.stringify({ keys: [key], pad: "" });
  return text.replace('"pad":""', `"pad":"${"p".repeat(maxJwksBytes - text.length + 1)}"`);
}

const unusable: { name: string; answer: (key: JWK) => JwksServer["answer"] }[] = [
  {
    name: "200 with an HTML page",
    answer: () => ({ status: 200, contentType: "text/html", body: "<html>login</html>" }),
  },
  {
    name: "200 with JSON without keys",
    answer: () => ({ status: 200, contentType: "application/json", body: '{"issuer":"x"}' }),
  },
  {
    name: "200 with keys that is not a list",
    answer: () => ({ status: 200, contentType: "application/json", body: '{"keys":"k1"}' }),
  },
  {
    name: "200 with keys that do not import",
    answer: () => ({ status: 200, contentType: "application/json", body: importless }),
  },
  {
    name: `200 with a body over ${maxJwksBytes} bytes`,
    answer: (key) => ({ status: 200, contentType: "application/json", body: oversized(key) }),
  },
  {
    name: "302 to somewhere else",
    answer: () => ({ status: 302, contentType: "text/plain", body: "moved" }),
  },
];

describe("key source: one fetch per cooldown whatever the endpoint answers", () => {
  for (const kind of unusable) {
    test(`${kind.name}: 40 unknown kids, one fetch; the keys in hand keep verifying`, async () => {
      const good = await generateTestKey("RS256");
      const server = await startJwks([good.publicJwk]);
      const { source, clock, outcomes } = sourceFor(server);
      assert.ok(await source.getKey({ alg: "RS256", kid: good.kid }, undefined as never));
      assert.equal(server.jwksRequests, 1);

      server.answer = kind.answer(good.publicJwk);
      clock.now += cooldownMs;
      const codes = await Promise.all(
        Array.from({ length: 20 }, (_, i) => lookupFailure(source, `unknown-${i}`)),
      );
      for (let i = 20; i < 40; i++) codes.push(await lookupFailure(source, `unknown-${i}`));
      assert.equal(server.jwksRequests, 2, "one fetch for 40 unknown kids");
      assert.deepEqual(new Set(codes), new Set(["jwks_unavailable"]));
      assert.equal(outcomes.length, 2);
      assert.equal(outcomes[0], undefined, "the first fetch succeeded");
      assert.ok(outcomes[1] !== undefined, "the second is reported as a failure");

      // The key fetched before still verifies, with no fetch.
      assert.ok(await source.getKey({ alg: "RS256", kid: good.kid }, undefined as never));
      assert.equal(server.jwksRequests, 2);

      clock.now += cooldownMs - 1;
      assert.equal(await lookupFailure(source, "unknown-late"), "jwks_unavailable");
      assert.equal(server.jwksRequests, 2, "1 ms before the cooldown ends: no fetch");
      clock.now += 1;
      assert.equal(await lookupFailure(source, "unknown-later"), "jwks_unavailable");
      assert.equal(server.jwksRequests, 3, "once the cooldown is over: one more");
    });
  }

  test("unusable from the first fetch: no key at all, still one fetch per cooldown", async () => {
    const server = await startJwks();
    server.answer = { status: 200, contentType: "text/html", body: "<html>maintenance</html>" };
    const { source, clock } = sourceFor(server);
    const codes = await Promise.all(
      Array.from({ length: 40 }, (_, i) => lookupFailure(source, `kid-${i}`)),
    );
    assert.deepEqual(new Set(codes), new Set(["jwks_unavailable"]));
    assert.equal(server.jwksRequests, 1);
    clock.now += cooldownMs;
    server.answer = undefined;
    const key = await generateTestKey("RS256");
    server.keys = [key.publicJwk];
    assert.ok(await source.getKey({ alg: "RS256", kid: key.kid }, undefined as never));
    assert.equal(server.jwksRequests, 2, "after the cooldown the endpoint is asked again");
  });

  test("a set where some keys import and some do not: the good ones are used", async () => {
    const good = await generateTestKey("ES256");
    const server = await startJwks();
    const broken = JSON.parse(importless) as { keys: JWK[] };
    server.answer = {
      status: 200,
      contentType: "application/json",
      body: JSON.stringify({ keys: [...broken.keys, good.publicJwk] }),
    };
    const { source, outcomes } = sourceFor(server);
    assert.ok(await source.getKey({ alg: "ES256", kid: good.kid }, undefined as never));
    assert.deepEqual(outcomes, [undefined], "a success");
    assert.equal(await lookupFailure(source, "broken"), "token_unknown_key");
  });

  test("a success starts the cooldown too: a known-bad kid does not refetch until it ends", async () => {
    const good = await generateTestKey("RS256");
    const server = await startJwks([good.publicJwk]);
    const { source, clock } = sourceFor(server);
    for (let i = 0; i < 40; i++) {
      assert.equal(await lookupFailure(source, `unknown-${i}`), "token_unknown_key");
    }
    assert.equal(server.jwksRequests, 1);
    clock.now += cooldownMs;
    assert.equal(await lookupFailure(source, "unknown-after"), "token_unknown_key");
    assert.equal(server.jwksRequests, 2);
  });
});

// ---------------------------------------------------------------- the PDP

describe("the PDP: 40 tokens with unknown kids against a JWKS that answers HTML", () => {
  test("one JWKS fetch, 40 jwks_unavailable denials, one failure counted", async () => {
    const operatorData = fileURLToPath(
      new URL("../../examples/operator-data.yaml", import.meta.url),
    );
    const issuer = "https://idp.example.com";
    const audience = "https://mcp.example.com/files";
    const nowMs = Date.UTC(2026, 2, 10, 12, 0, 0);
    const server = await startJwks();
    server.answer = { status: 200, contentType: "text/html", body: "<html>sign in</html>" };
    const config = join(scratch.dir, "pdp-config.json");
    writeFileSync(
      config,
      JSON.stringify({
        issuers: [{ issuer, jwks_uri: server.url, audiences: [audience], jwks_cooldown_s: 30 }],
        servers: { files: { resource: audience } },
        token_cache: { max_entries: 0 },
      }),
    );
    const pdp = await startPdp({
      env: { PDP_CONFIG: config, PDP_DATA: operatorData },
      clock: () => nowMs,
    });
    closers.push(() => pdp.close());
    const signer: TestKey = await generateTestKey("RS256");
    const nowS = nowMs / 1000;
    const started = performance.now();
    const answers = await Promise.all(
      Array.from({ length: 40 }, async (_, i) => {
        const token = await mint(
          signer,
          { iss: issuer, sub: "alice", aud: audience, iat: nowS, exp: nowS + 600 },
          { header: { kid: `unknown-${i}` } },
        );
        return postJson(`${pdp.url}/access/v1/evaluation`, {
          subject: { type: "user", id: "alice", properties: { token } },
          action: { name: "ping" },
          resource: { type: "mcp_server", id: "files" },
        });
      }),
    );
    const ms = performance.now() - started;
    for (const answer of answers) {
      assert.equal(answer.status, 200);
      const body = answer.body as { decision: boolean; context: { reasons: { code: string }[] } };
      assert.equal(body.decision, false);
      assert.ok(body.context.reasons.some((r) => r.code === "jwks_unavailable"));
    }
    assert.equal(server.jwksRequests, 1, `${server.jwksRequests} fetches in ${Math.round(ms)} ms`);
    const { exposition } = await scrape(pdp.url);
    assert.equal(
      total(exposition, "mcp_pdp_jwks_fetches_total", { issuer, outcome: "failure" }),
      1,
    );
    assert.equal(
      total(exposition, "mcp_pdp_jwks_fetches_total", { issuer, outcome: "success" }),
      0,
    );
  });
});

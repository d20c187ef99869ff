/**
 * Token verification on the decision path, per signing algorithm:
 *   4. in-process: JwtTokenVerifier.verify with a fresh token per call (cache
 *      on, every token new), the same token again (cache hit), and the same
 *      token with the cache off;
 *   5. HTTP: the PDP as a child process trusting the bench's issuer, requests
 *      carrying subject.properties.token, at saturation with autocannon.
 *
 * Keys are generated here with jose and published by a JWKS server on
 * 127.0.0.1 that this module starts and stops; the PDP (and the in-process
 * verifiers, built from the same PDP_CONFIG file) fetch them with jwks_uri.
 * Every token is minted before any timing starts, so signing is never timed.
 */
import { writeFileSync } from "node:fs";
import { createServer, type Server as HttpServer } from "node:http";
import type { AddressInfo } from "node:net";
import { join } from "node:path";
import { SignJWT, exportJWK, generateKeyPair, type CryptoKey, type JWK } from "jose";
import { loadConfig } from "../src/config/index.ts";
import { ServerRegistry } from "../src/auth/servers.ts";
import type { Caller } from "../src/auth/caller.ts";
import { buildIssuerPolicies } from "../src/auth/issuer-policies.ts";
import { JwtTokenVerifier } from "../src/auth/jwt-verifier.ts";
import { SubjectResolver } from "../src/auth/subject-resolver.ts";
import type { AccessRequest } from "../src/decision/decision.ts";
import type { PolicyDecisionEngine } from "../src/decision/decision-engine.ts";
import { runLoad, type LoadResult, type LoadSpec } from "./load.ts";
import {
  coreBusySeconds,
  freePort,
  setOwnAffinity,
  startServer,
  stopServer,
  waitReady,
  type Server,
} from "./processes.ts";
import {
  fixed,
  heading,
  latencyCells,
  percent,
  ratio,
  SampleBuffer,
  table,
  whole,
  type Percentiles,
} from "./report.ts";
import type { Workload } from "./workload.ts";

export const tokenAlgs = ["RS256", "PS256", "ES256", "EdDSA"] as const;
type Alg = (typeof tokenAlgs)[number];

/** Loop sizes and run lengths; every token needed is minted before timing. */
const sizes = {
  inProcessWarmup: 500,
  inProcessFresh: 5_000,
  inProcessRepeated: 20_000,
  inProcessNoCache: 5_000,
  inProcessMaxMs: 10_000,
  httpWarmupS: 2,
  httpS: 5,
  connections: 32,
  /** The algorithm whose repeated token is also run against a PDP with the cache off. */
  noCacheAlg: "RS256" as Alg,
  /** The PDP's default token_cache.max_entries. */
  cacheEntries: loadConfig({}).auth.tokenCacheEntries,
  /** HTTP pool: (httpS + 1) s at the estimated fresh-token rate, times this. */
  poolMargin: 1.1,
  /** Share of the in-process verification time the estimate adds to a no-token request. */
  verifyShare: 0.5,
};

const issuerName = "https://idp.bench.test";
/** The protected resource the tokens are for (RFC 8707). */
const audience = "https://mcp.example.com/files";
const evaluationPath = "/access/v1/evaluation";
/** The start of a response the PDP allowed (lean listener: JSON.stringify of {decision, context}). */
const allowedPrefix = '{"decision":true';
const isAllowed = (body: string): boolean => body.startsWith(allowedPrefix);

export interface TokenBenchContext {
  root: string;
  scratch: string;
  operatorData: string;
  pinning: { server: number; generator: number; all: string } | undefined;
  engine: PolicyDecisionEngine;
  /** The typical allowed request: its asserted subject properties become the token's claims. */
  allowed: Workload;
  /** The PDP's saturation run without a token (section 2), for the ratios. */
  baseline: LoadResult | undefined;
  baselineDurationS: number;
  print: (text?: string) => void;
}

interface SigningKey {
  alg: Alg;
  kid: string;
  privateKey: CryptoKey;
  publicJwk: JWK;
}

/** An autocannon run, with the other load on the server's core meanwhile. */
interface TokenRun extends LoadResult {
  /** Busy share of the server's core not used by the server (other processes, kernel). */
  otherOnServerCore: number | undefined;
}

interface Measured {
  perSecond: number;
  latency: Percentiles;
}

let jwksServer: HttpServer | undefined;
let jwksRequests = 0;

/** Closes the JWKS server (idempotent); the PDP children are stopped by processes.ts. */
export async function stopTokenBench(): Promise<void> {
  const server = jwksServer;
  jwksServer = undefined;
  if (server === undefined) return;
  server.closeAllConnections();
  await new Promise<void>((resolve) => {
    server.close(() => {
      resolve();
    });
  });
}

/** Runs sections 4 and 5; false (after saying why) when a token request is not allowed. */
export async function runTokenBench(ctx: TokenBenchContext): Promise<boolean> {
  const { print } = ctx;
  const mintedAtMs = Date.now();
  const keys = await Promise.all(tokenAlgs.map((alg) => signingKey(alg)));
  const jwksUrl = await startJwksServer(keys.map((key) => key.publicJwk));
  const configOn = join(ctx.scratch, "pdp-config-token-cache.json");
  const configOff = join(ctx.scratch, "pdp-config-no-cache.json");
  writeConfig(configOn, jwksUrl, sizes.cacheEntries);
  writeConfig(configOff, jwksUrl, 0);

  const claims = tokenClaims(ctx.allowed.request, mintedAtMs);
  const [bodyHead, bodyTail] = tokenBodyParts(ctx.allowed.request);
  const bodyFor = (token: string): string => `${bodyHead}${token}${bodyTail}`;

  // Tokens for the in-process loops (and, later, the HTTP warm-up): fresh ones, one repeated, one spare.
  const inProcessCount = sizes.inProcessWarmup + sizes.inProcessFresh;
  const mintStart = Date.now();
  const pools = new Map<Alg, string[]>();
  const repeated = new Map<Alg, string>();
  const spare = new Map<Alg, string>();
  await widened(ctx, async () => {
    for (const key of keys) {
      pools.set(key.alg, await mintMany(key, claims, "f", inProcessCount));
      const [one, two] = await mintMany(key, claims, "r", 2);
      repeated.set(key.alg, one ?? "");
      spare.set(key.alg, two ?? "");
    }
  });
  const inProcessMintS = (Date.now() - mintStart) / 1000;

  // 4. In-process ----------------------------------------------------------------
  print(heading("4. Token verification in-process (JwtTokenVerifier.verify, one thread)"));
  // loadConfig throws a ConfigError naming every problem of the bench's file.
  const settings = { settings: loadConfig({ PDP_CONFIG: configOn }).auth };
  // A JWKS fetch failure shows up below as a denied check (jwks_unavailable).
  const policies = await buildIssuerPolicies(settings.settings.issuers, Date.now, () => undefined);
  const policy = policies[0];
  if (policy === undefined) throw new Error("bench PDP_CONFIG: no issuer");
  print(
    [
      `Issuer ${issuerName}: one key per algorithm (RSA 2048 for RS256/PS256, P-256, Ed25519), generated with jose and`,
      `published as a JWKS on ${jwksUrl}; the verifiers are built from the PDP_CONFIG the PDP gets`,
      `(loadConfig + buildIssuerPolicies: jwks_uri, audience, the four algorithms, required_typ at+jwt).`,
      `Token: typ at+jwt, kid, iss, aud, sub, iat, exp (+1 h), jti, scope, acr, auth_time, client_id: ${lengths(keys, pools)}.`,
      `${whole(inProcessCount + 2)} tokens per algorithm minted beforehand in ${fixed(inProcessMintS, 1)} s (signing is not timed).`,
    ].join("\n"),
  );

  // Outside timing: every kind of token must come out allowed, or the loops time the deny path.
  const caller: Caller = { name: "bench", permissions: new Set(["authzen"]), assertSubject: false };
  const checker = new SubjectResolver(
    new JwtTokenVerifier(policies, 0),
    new ServerRegistry(settings.settings.servers),
  );
  for (const alg of tokenAlgs) {
    for (const token of [repeated.get(alg), spare.get(alg), pools.get(alg)?.[0]]) {
      const request = withToken(ctx.allowed.request, token ?? "");
      const nowMs = Date.now();
      const decision = ctx.engine.decide(await checker.resolve(request, caller, nowMs), nowMs);
      if (!decision.allow) {
        print(
          `In-process: a ${alg} token request is DENIED (${decision.reasons.map((r) => `${r.code}: ${r.admin}`).join("; ")}); ` +
            "the figures would measure the deny path. Fix bench/tokens.ts.",
        );
        return false;
      }
    }
  }
  print(
    "Checked first (outside timing): SubjectResolver + PolicyDecisionEngine allow each algorithm's tokens.",
  );

  const inProcessRows: string[][] = [];
  const inProcess = new Map<string, Measured>();
  for (const alg of tokenAlgs) {
    const pool = pools.get(alg) ?? [];
    const token = repeated.get(alg) ?? "";
    const cases: [string, JwtTokenVerifier, (i: number) => string, number][] = [
      [
        "(a) fresh token per call, cache on",
        new JwtTokenVerifier(policies, sizes.cacheEntries),
        (i) => pool[i] ?? "",
        sizes.inProcessFresh,
      ],
      [
        "(b) same token, cache on (hit)",
        new JwtTokenVerifier(policies, sizes.cacheEntries),
        () => token,
        sizes.inProcessRepeated,
      ],
      [
        "(c) same token, cache off (max_entries 0)",
        new JwtTokenVerifier(policies, 0),
        () => token,
        sizes.inProcessNoCache,
      ],
    ];
    for (const [label, verifier, tokenAt, iterations] of cases) {
      const result = await measureAsync(
        (i) => verifier.verify(tokenAt(i), Date.now(), audience),
        iterations,
      );
      inProcess.set(`${alg}|${label.slice(0, 3)}`, result);
      inProcessRows.push([
        alg,
        label,
        whole(result.latency.count),
        whole(result.perSecond),
        ...latencyCells(result.latency, 1),
      ]);
    }
  }
  print();
  print(
    table(
      [
        "alg",
        "case",
        "calls",
        "verifications/s",
        "mean µs",
        "p50 µs",
        "p90 µs",
        "p99 µs",
        "max µs",
      ],
      inProcessRows,
      2,
    ),
  );
  print(
    [
      `${sizes.inProcessWarmup} warm-up calls, then each call awaited in turn and timed with process.hrtime.bigint (capped at ${sizes.inProcessMaxMs / 1000} s).`,
      `(a): ${whole(sizes.inProcessFresh)} distinct tokens, each verified once by a verifier whose cache (${whole(sizes.cacheEntries)} entries) is on:`,
      "every call misses, verifies the signature and stores the result. (b): the hit path, a SHA-256 of the token",
      "and an LRU lookup. (c): the full verification every call. jose verifies with WebCrypto, which runs the",
      "signature check on libuv's thread pool (pinned with this process), so a miss includes that hand-off.",
    ].join("\n"),
  );

  // 5. HTTP ----------------------------------------------------------------------
  print(heading("5. HTTP on loopback with tokens (PDP child process, autocannon at saturation)"));
  const baselineRps = ctx.baseline?.rps;
  // Pool size per algorithm: a fresh-token request costs a no-token request plus a verification,
  // of which only half the in-process time is counted (room above the rate the run reaches).
  const noTokenUs = 1e6 / (baselineRps ?? 10_000);
  const httpCounts = new Map<Alg, number>();
  for (const alg of tokenAlgs) {
    const verifyUs = inProcess.get(`${alg}|(c)`)?.latency.mean ?? 0;
    const rate = 1e6 / (noTokenUs + sizes.verifyShare * verifyUs);
    httpCounts.set(
      alg,
      Math.max(2 * sizes.cacheEntries, Math.ceil(rate * (sizes.httpS + 1) * sizes.poolMargin)),
    );
  }
  const httpMintStart = Date.now();
  await widened(ctx, async () => {
    for (const key of keys) {
      const count = httpCounts.get(key.alg) ?? 0;
      pools.get(key.alg)?.push(...(await mintMany(key, claims, "h", count)));
    }
  });
  const httpMintS = (Date.now() - httpMintStart) / 1000;

  const pdpOn = await startPdp(ctx, configOn, "PDP (token cache on)");
  print(
    [
      `PDP_CONFIG ($TMP/${configOn.slice(ctx.scratch.length + 1)}): the issuer above, jwks_uri ${jwksUrl}, token_cache.max_entries ${whole(sizes.cacheEntries)}`,
      `(the default). No callers are configured, as in section 2: the caller may assert a subject, but a request`,
      `carrying subject.properties.token is decided on the token's verified claims alone.`,
      `PDP: ${ctx.pinning === undefined ? "" : `taskset -c ${ctx.pinning.server} `}node src/main.ts (pid ${pdpOn.pid}), PDP_CONFIG set, otherwise as in section 2 (LOG_LEVEL=warn, PDP_DECISION_LOG=off).`,
      `Request: ${ctx.allowed.name} with subject {type: "user", properties: {token}} and no asserted claims`,
      `(${bodyFor(repeated.get("RS256") ?? "").length} bytes with an RS256 token); the token carries the claims the asserted subject of section 2 had.`,
      `Tokens for the fresh-token runs, minted in ${fixed(httpMintS, 1)} s before the PDP started: ${tokenAlgs.map((alg) => `${alg} ${whole(httpCounts.get(alg))}`).join(", ")}.`,
      `Each pool covers ${sizes.httpS + 1} s x ${sizes.poolMargin} at 1e6 / (${fixed(noTokenUs, 1)} µs, the no-token request at saturation, + ${sizes.verifyShare} x the`,
      `in-process verification (c)) requests/s, and at least twice the cache: an estimate with room to spare.`,
    ].join("\n"),
  );
  if (!(await allowedOverHttp(ctx, pdpOn, repeated, spare, bodyFor))) return false;

  const rows: string[][] = [];
  const http = new Map<string, TokenRun>();
  const load = (extra: Partial<LoadSpec> & { durationS: number }, server: Server): LoadSpec => ({
    server,
    path: evaluationPath,
    method: "POST",
    connections: sizes.connections,
    verifyBody: isAllowed,
    ...extra,
  });

  // Warm-up: fresh tokens of every algorithm in turn, taken from the in-process pools (new to the PDP).
  let warm = 0;
  await runLoad(
    load(
      {
        durationS: sizes.httpWarmupS,
        nextBody: () => {
          const alg = tokenAlgs[warm % tokenAlgs.length] ?? "RS256";
          const index = Math.floor(warm / tokenAlgs.length) % inProcessCount;
          warm += 1;
          return bodyFor(pools.get(alg)?.[index] ?? "");
        },
      },
      pdpOn,
    ),
  );

  const record = (name: string, tokens: string, result: TokenRun): void => {
    http.set(name, result);
    rows.push(httpRow(name, tokens, result, ctx.baseline));
  };
  const asserted = await measuredRun(
    ctx,
    load({ durationS: sizes.httpS, body: JSON.stringify(ctx.allowed.request) }, pdpOn),
  );
  record("no token, asserted subject (same PDP)", "-", asserted);
  const repeatsNoted: string[] = [];
  for (const alg of tokenAlgs) {
    const pool = pools.get(alg) ?? [];
    const httpCount = httpCounts.get(alg) ?? 0;
    let sent = 0;
    const fresh = await measuredRun(
      ctx,
      load(
        {
          durationS: sizes.httpS,
          nextBody: () => {
            const token = pool[inProcessCount + (sent % httpCount)] ?? "";
            sent += 1;
            return bodyFor(token);
          },
        },
        pdpOn,
      ),
    );
    if (sent > httpCount) repeatsNoted.push(`${alg}: ${whole(sent - httpCount)} requests`);
    record(
      `${alg} (a) fresh token per request`,
      sent > httpCount ? `${whole(httpCount)} (REPEATED)` : whole(Math.min(sent, httpCount)),
      fresh,
    );
    const same = await measuredRun(
      ctx,
      load({ durationS: sizes.httpS, body: bodyFor(repeated.get(alg) ?? "") }, pdpOn),
    );
    record(`${alg} (b) one repeated token, cache on`, "1", same);
  }
  await stopServer(pdpOn);

  const pdpOff = await startPdp(ctx, configOff, "PDP (token cache off)");
  const offAlg = sizes.noCacheAlg;
  const offToken = new Map([[offAlg, repeated.get(offAlg) ?? ""]]);
  if (!(await allowedOverHttp(ctx, pdpOff, offToken, new Map(), bodyFor))) return false;
  const offBody = bodyFor(repeated.get(offAlg) ?? "");
  await runLoad(load({ durationS: sizes.httpWarmupS, body: offBody }, pdpOff));
  record(
    `${offAlg} (c) one repeated token, cache off`,
    "1",
    await measuredRun(ctx, load({ durationS: sizes.httpS, body: offBody }, pdpOff)),
  );
  await stopServer(pdpOff);
  const notAllowed = [...http].filter(([, result]) => result.mismatches > 0);

  print(
    [
      `Each PDP: ${sizes.httpWarmupS} s warm-up (discarded; the first PDP with fresh tokens of all four algorithms in turn, the`,
      `second with its repeated token), then ${sizes.connections} connections for ${sizes.httpS} s per row. (c) ran on a second PDP, started after`,
      `the first stopped, with PDP_CONFIG token_cache.max_entries 0 (pid ${pdpOff.pid}).`,
      `The JWKS server answered ${jwksRequests} request(s) in all: one fetch per verifier process, none during the runs.`,
    ].join("\n"),
  );
  print();
  print(
    table(
      [
        "scenario",
        "distinct tokens",
        "req/s",
        "p50 ms",
        "p99 ms",
        "max ms",
        "non-2xx",
        "errors",
        "not allowed",
        "srv CPU %",
        "other on srv core %",
        "srv CPU µs/req",
        "gen CPU %",
        "req/s vs no token",
        "p99 vs no token",
      ],
      rows,
      2,
    ),
  );
  print(
    [
      `"vs no token": against the PDP saturation row of section 2 (${whole(baselineRps)} req/s, p99 ${fixed(ctx.baseline?.latencyMs.p99, 3)} ms, ${ctx.baselineDurationS} s, no PDP_CONFIG),`,
      "the same request with the subject asserted instead of a token. The first row repeats that request on this PDP.",
      `"not allowed": responses that did not start with ${allowedPrefix} (every response is checked).`,
      `(a): each request takes the next token of a pool of distinct ones, shared by all connections, in order (the`,
      `"distinct tokens" column: how many were sent, none twice), so every request misses the ${whole(sizes.cacheEntries)}-entry cache, is`,
      `verified and stored, and past the first ${whole(sizes.cacheEntries)} each store also evicts the least recently used entry.`,
      repeatsNoted.length === 0
        ? "No token was sent twice."
        : `The pool ran out and tokens were sent again (${repeatsNoted.join(", ")}), in the same order, each more than ${whole(sizes.cacheEntries)} requests after its first use, so already evicted: still a miss.`,
      "(b) and (c): one token, a cache hit after the first request (b) or verified on every request (c).",
      "\"other on srv core %\": the server core's busy time (/proc/stat) beyond the server's own CPU: other processes",
      'on the machine, and kernel work not charged to the server. A "srv CPU %" well below 100 next to a high "other"',
      'and a "gen CPU %" far from 100 means the server did not get its core, and that row\'s req/s is low for it.',
    ].join("\n"),
  );

  if (notAllowed.length > 0) {
    print(
      `Some responses under load were NOT ALLOWED (${notAllowed.map(([name, r]) => `${name}: ${whole(r.mismatches)}`).join("; ")}):` +
        " those rows partly measure the deny path.",
    );
    return false;
  }

  // What the cache buys ------------------------------------------------------------
  print(heading("What the token cache buys, per algorithm"));
  const summary: string[][] = [];
  for (const alg of tokenAlgs) {
    const miss = inProcess.get(`${alg}|(c)`)?.latency;
    const freshIn = inProcess.get(`${alg}|(a)`)?.latency;
    const hit = inProcess.get(`${alg}|(b)`)?.latency;
    const fresh = http.get(`${alg} (a) fresh token per request`);
    const same = http.get(`${alg} (b) one repeated token, cache on`);
    summary.push([
      alg,
      fixed(freshIn?.mean, 1),
      fixed(miss?.mean, 1),
      fixed(hit?.mean, 1),
      ratio(miss?.mean, hit?.mean),
      whole(fresh?.rps),
      whole(same?.rps),
      ratio(same?.rps, fresh?.rps),
      fixed(fresh?.serverCpuPerRequestUs, 1),
      fixed(same?.serverCpuPerRequestUs, 1),
      fixed(
        fresh?.serverCpuPerRequestUs === undefined || same?.serverCpuPerRequestUs === undefined
          ? undefined
          : fresh.serverCpuPerRequestUs - same.serverCpuPerRequestUs,
        1,
      ),
    ]);
  }
  print(
    table(
      [
        "alg",
        "in-proc fresh µs",
        "no cache µs",
        "hit µs",
        "no cache/hit",
        "HTTP fresh req/s",
        "repeated req/s",
        "repeated/fresh",
        "srv µs/req fresh",
        "repeated",
        "saved µs/req",
      ],
      summary,
    ),
  );
  const offRun = http.get(`${offAlg} (c) one repeated token, cache off`);
  const offFresh = http.get(`${offAlg} (a) fresh token per request`);
  print(
    [
      "In-process columns: means from section 4; HTTP columns: section 5, server CPU per request from /proc.",
      '"saved µs/req": the server CPU a cache hit spares per request, against verifying a new token.',
      `Cache off (c), ${offAlg}: ${whole(offRun?.rps)} req/s at ${fixed(offRun?.serverCpuPerRequestUs, 1)} µs/request, against ${whole(offFresh?.rps)} req/s at ${fixed(offFresh?.serverCpuPerRequestUs, 1)} µs with fresh`,
      "tokens and the cache on (a): a token seen once pays the cache's hash and store on top of the verification.",
      `The asserted subject (no token) costs this PDP ${fixed(asserted.serverCpuPerRequestUs, 1)} µs/request.`,
    ].join("\n"),
  );
  return true;
}

/** A key pair for `alg` and its public JWK (kid, alg, use), as a JWKS publishes it. */
async function signingKey(alg: Alg): Promise<SigningKey> {
  const { privateKey, publicKey } = await generateKeyPair(alg, { extractable: true });
  const kid = `bench-${alg.toLowerCase()}`;
  return {
    alg,
    kid,
    privateKey,
    publicJwk: { ...(await exportJWK(publicKey)), kid, alg, use: "sig" },
  };
}

/** Serves GET /jwks.json on an ephemeral 127.0.0.1 port; returns its URL. */
async function startJwksServer(keys: JWK[]): Promise<string> {
  const body = JSON.stringify({ keys });
  const server = createServer((request, response) => {
    jwksRequests += 1;
    if (request.method === "GET" && request.url === "/jwks.json") {
      response.writeHead(200, { "content-type": "application/json" }).end(body);
    } else {
      response.writeHead(404).end();
    }
  });
  jwksServer = server;
  await new Promise<void>((resolve, reject) => {
    server.once("error", reject);
    server.listen(0, "127.0.0.1", resolve);
  });
  return `http://127.0.0.1:${(server.address() as AddressInfo).port}/jwks.json`;
}

/** A PDP_CONFIG (JSON, which YAML reads) trusting the bench's issuer. */
function writeConfig(path: string, jwksUri: string, cacheEntries: number): void {
  const config = {
    issuers: [
      {
        issuer: issuerName,
        jwks_uri: jwksUri,
        audiences: [audience],
        algorithms: [...tokenAlgs],
        required_typ: "at+jwt",
      },
    ],
    token_cache: { max_entries: cacheEntries },
    servers: { files: { resource: audience } },
  };
  writeFileSync(path, `${JSON.stringify(config, null, 2)}\n`);
}

/** The token's claims: the asserted subject of the typical request, as an IdP would sign them. */
function tokenClaims(request: AccessRequest, nowMs: number): Record<string, unknown> {
  const nowS = Math.floor(nowMs / 1000);
  const { scope, acr, client_id: clientId } = request.subject.properties ?? {};
  return {
    iss: issuerName,
    aud: audience,
    sub: request.subject.id,
    iat: nowS,
    exp: nowS + 3600,
    scope,
    acr,
    // Five minutes before minting, as the asserted subject's auth_time is before the run.
    auth_time: nowS - 300,
    client_id: clientId,
  };
}

/** `request` with its subject replaced by a bare token. */
function withToken(request: AccessRequest, token: string): AccessRequest {
  return { ...request, subject: { type: "user", id: "", properties: { token } } };
}

/** The JSON body of a token request, split around the token, so a body is two concatenations. */
function tokenBodyParts(request: AccessRequest): [string, string] {
  const marker = "BENCH_TOKEN_MARKER";
  const { id: _id, ...subject } = withToken(request, marker).subject;
  const json = JSON.stringify({ ...request, subject });
  const [head, tail] = json.split(marker);
  if (head === undefined || tail === undefined) throw new Error("token body template");
  return [head, tail];
}

/** `count` distinct tokens (jti `<tag>-<alg>-<n>`), signed in batches (WebCrypto, libuv's pool). */
async function mintMany(
  key: SigningKey,
  claims: Record<string, unknown>,
  tag: string,
  count: number,
): Promise<string[]> {
  const tokens: string[] = [];
  const batch = 256;
  for (let start = 0; start < count; start += batch) {
    const size = Math.min(batch, count - start);
    tokens.push(
      ...(await Promise.all(
        Array.from({ length: size }, (_, i) =>
          new SignJWT({ ...claims, jti: `${tag}-${key.alg}-${start + i}` })
            .setProtectedHeader({ alg: key.alg, kid: key.kid, typ: "at+jwt" })
            .sign(key.privateKey),
        ),
      )),
    );
  }
  return tokens;
}

/** Runs untimed work (minting) on every allowed core, then pins this process back to its core. */
async function widened(ctx: TokenBenchContext, work: () => Promise<void>): Promise<void> {
  if (ctx.pinning !== undefined) setOwnAffinity(ctx.pinning.all);
  try {
    await work();
  } finally {
    if (ctx.pinning !== undefined) setOwnAffinity(ctx.pinning.generator);
  }
}

/** Token lengths, e.g. "RS256 612 bytes, …". */
function lengths(keys: readonly SigningKey[], pools: ReadonlyMap<Alg, string[]>): string {
  return (
    keys.map((key) => `${key.alg} ${pools.get(key.alg)?.[0]?.length ?? 0}`).join(", ") + " bytes"
  );
}

/** Times each awaited call (index = warm-up count + i), after a warm-up; bounded in time. */
async function measureAsync(
  call: (index: number) => Promise<unknown>,
  iterations: number,
): Promise<Measured> {
  for (let i = 0; i < sizes.inProcessWarmup; i++) await call(i);
  const samples = new SampleBuffer(iterations);
  const deadline = process.hrtime.bigint() + BigInt(sizes.inProcessMaxMs) * 1_000_000n;
  const start = process.hrtime.bigint();
  let before = start;
  for (let i = 0; i < iterations; i++) {
    await call(sizes.inProcessWarmup + i);
    const after = process.hrtime.bigint();
    samples.push(Number(after - before) / 1000);
    before = after;
    if (after > deadline) break;
  }
  const elapsedS = Number(before - start) / 1e9;
  return { perSecond: samples.length / elapsedS, latency: samples.summary() };
}

async function startPdp(ctx: TokenBenchContext, config: string, name: string): Promise<Server> {
  const port = await freePort();
  const pdp = startServer({
    name,
    command: process.execPath,
    args: ["src/main.ts"],
    cwd: ctx.root,
    env: {
      ...process.env,
      HOST: "127.0.0.1",
      PORT: String(port),
      PDP_DATA: ctx.operatorData,
      PDP_CONFIG: config,
      LOG_LEVEL: "warn",
      // As in section 2: the ratios are against its PDP, which writes no decision records.
      PDP_DECISION_LOG: "off",
    },
    port,
    cpu: ctx.pinning?.server,
  });
  await waitReady(pdp, "/ready", 30_000);
  return pdp;
}

/** Outside timing: each token (and the asserted request) must be allowed by the PDP over HTTP. */
async function allowedOverHttp(
  ctx: TokenBenchContext,
  pdp: Server,
  repeated: ReadonlyMap<Alg, string>,
  spare: ReadonlyMap<Alg, string>,
  bodyFor: (token: string) => string,
): Promise<boolean> {
  const bodies: [string, string][] = [["asserted subject", JSON.stringify(ctx.allowed.request)]];
  for (const [alg, token] of repeated) bodies.push([`${alg} repeated-token`, bodyFor(token)]);
  for (const [alg, token] of spare) bodies.push([`${alg} fresh-token`, bodyFor(token)]);
  for (const [what, body] of bodies) {
    const response = await fetch(`${pdp.baseUrl}${evaluationPath}`, {
      method: "POST",
      headers: { "content-type": "application/json" },
      body,
      signal: AbortSignal.timeout(5000),
    });
    const text = await response.text();
    if (response.status !== 200 || !isAllowed(text)) {
      ctx.print(
        `${pdp.name}: the ${what} request is NOT ALLOWED (HTTP ${response.status}): ${text}\n` +
          "The token figures would measure the deny path; no load is run. Fix bench/tokens.ts.",
      );
      return false;
    }
  }
  ctx.print(
    `${pdp.name}: checked first (outside timing) that ${bodies.map(([what]) => what).join(", ")} requests are allowed (decision true).`,
  );
  return true;
}

/** runLoad, plus how busy the server's core was with anything but the server. */
async function measuredRun(ctx: TokenBenchContext, spec: LoadSpec): Promise<TokenRun> {
  const core = ctx.pinning?.server;
  const busyBefore = core === undefined ? undefined : coreBusySeconds(core);
  const wallBefore = process.hrtime.bigint();
  const result = await runLoad(spec);
  const wallS = Number(process.hrtime.bigint() - wallBefore) / 1e9;
  const busyAfter = core === undefined ? undefined : coreBusySeconds(core);
  const own = result.serverCpuShare;
  const other =
    busyBefore === undefined || busyAfter === undefined || own === undefined
      ? undefined
      : Math.max(0, (busyAfter - busyBefore) / wallS - own);
  return { ...result, otherOnServerCore: other };
}

function httpRow(
  name: string,
  tokens: string,
  r: TokenRun,
  baseline: LoadResult | undefined,
): string[] {
  return [
    name,
    tokens,
    whole(r.rps),
    fixed(r.latencyMs.p50, 3),
    fixed(r.latencyMs.p99, 3),
    fixed(r.latencyMs.max, 3),
    whole(r.non2xx),
    whole(r.errors),
    whole(r.mismatches),
    percent(r.serverCpuShare),
    percent(r.otherOnServerCore),
    fixed(r.serverCpuPerRequestUs, 1),
    percent(r.generatorCpuShare),
    ratio(r.rps, baseline?.rps),
    ratio(r.latencyMs.p99, baseline?.latencyMs.p99),
  ];
}

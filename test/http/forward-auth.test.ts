/**
 * The forward-auth endpoint over real HTTP, driven exactly as each proxy
 * drives it. A real JWKS server on loopback publishes the issuer's key; the
 * PDP runs the default policy with examples/operator-data.yaml and a clock
 * frozen at 2026-03-10T12:00:00Z (inside the destructive class's hours_utc
 * [7, 19]). The PDP's peer is always 127.0.0.1: the proxy.
 *
 * The request shapes, from each proxy's documentation:
 *
 * - Envoy ext_authz, HTTP service (envoy.extensions.filters.http.ext_authz.v3,
 *   ext_authz.proto: "path_prefix: Sets a prefix to the value of authorization
 *   request header Path"; Host, Method, Path, Content-Length and Authorization
 *   always sent, other headers per allowed_headers; with_request_body buffers
 *   the body, and with allow_partial_message a longer body is cut and marked
 *   `x-envoy-auth-partial-body: true`): the client's method, path_prefix
 *   `/forward-auth/files` + the client's path, Host the client's authority,
 *   the JSON-RPC body.
 * - NGINX auth_request (nginx.org ngx_http_auth_request_module, example
 *   location with `proxy_pass_request_body off; proxy_set_header
 *   Content-Length ""; proxy_set_header X-Original-URI $request_uri;`, plus
 *   the customary `X-Original-Method $request_method`): a subrequest, which
 *   nginx always issues as GET (ngx_http_subrequest sets sr->method =
 *   NGX_HTTP_GET), carrying the client's headers (proxy_pass_request_headers
 *   defaults on) and no body.
 * - Traefik ForwardAuth (doc.traefik.io forwardauth: X-Forwarded-Method,
 *   -Proto, -Host, -Uri, -For; pkg/middlewares/auth/forward.go: a GET to the
 *   configured address, every client header copied, the X-Forwarded-* set by
 *   Traefik, and with `forwardBody: true` the client's body): GET
 *   `/forward-auth/files` with the body, chunked as Go sends a body of
 *   unknown length.
 * - Caddy forward_auth (caddyserver.com/docs/caddyfile/directives/forward_auth,
 *   expanded form: `method GET`, `rewrite <uri>`, `header_up
 *   X-Forwarded-Method {method}`, `header_up X-Forwarded-Uri {uri}`, plus
 *   reverse_proxy's own X-Forwarded-For/-Proto/-Host): GET
 *   `/forward-auth/files` with the client's headers and no body.
 *
 * Every proxy is configured to attach the device posture as `x-device-trust`
 * (a forward_auth context header) and to pass X-Forwarded-For.
 */
import assert from "node:assert/strict";
import { writeFileSync } from "node:fs";
import {
  request as httpRequest,
  type IncomingHttpHeaders,
  type OutgoingHttpHeaders,
} from "node:http";
import { join } from "node:path";
import { after, before, describe, test } from "node:test";
import { fileURLToPath } from "node:url";
import { TrustedProxies } from "../../src/net/client-address.ts";
import { JwksServer } from "../support/jwks-server.ts";
import { scratchDir } from "../support/opa.ts";
import { startPdp, type RunningPdp } from "../support/pdp.ts";
import { generateTestKey, mint, type TestKey } from "../support/tokens.ts";

type Json = Record<string, unknown>;

const operatorData = fileURLToPath(new URL("../../examples/operator-data.yaml", import.meta.url));
const issuer = "https://idp.example.com";
const filesResource = "https://mcp.example.com/files";
const otherResource = "https://mcp.example.com/other";
const metadataUrl = "https://mcp.example.com/.well-known/oauth-protected-resource/files";
const mcpHost = "mcp.example.com";

const noonUtcMs = Date.UTC(2026, 2, 10, 12, 0, 0);
const nowS = noonUtcMs / 1000;
const clock = () => noonUtcMs;

const uuid = /^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$/;

// ---------------------------------------------------------------- resources

const scratch = scratchDir();
const closers: (() => Promise<void>)[] = [];
let configCount = 0;

function writeConfig(config: Json): string {
  configCount += 1;
  const path = join(scratch.dir, `pdp-config-${configCount}.json`);
  writeFileSync(path, JSON.stringify(config, null, 2));
  return path;
}

/**
 * The tests' PDP_CONFIG. By default `files` models an MCP server that
 * enforces SEP-2243's header/body check, behind Envoy (whose partial-body
 * signal then counts); `files` overrides that.
 */
function pdpConfig(
  jwksUrl: string,
  forwardAuth: Json = {},
  files: Json = { enforces_mcp_headers: true, proxy: "envoy" },
): Json {
  return {
    issuers: [{ issuer, jwks_uri: jwksUrl, audiences: [filesResource, otherResource] }],
    servers: {
      files: { resource: filesResource, ...files },
      other: { resource: otherResource },
    },
    forward_auth: {
      trusted_proxies: ["127.0.0.1/32", "::1/128"],
      context_headers: { "x-device-trust": "device.trust" },
      ...forwardAuth,
    },
  };
}

async function startTrackedPdp(config: Json): Promise<RunningPdp> {
  const pdp = await startPdp({
    env: { PDP_CONFIG: writeConfig(config), PDP_DATA: operatorData },
    clock,
  });
  closers.push(() => pdp.close());
  return pdp;
}

let key: TestKey;
/** The main PDP: batches rejected, loopback trusted. */
let pdp: RunningPdp;
/** forward_auth.batch: authorize_each. */
let eachPdp: RunningPdp;
/** A PDP that does not trust loopback: the proxy's X-Forwarded-For and context headers are ignored. */
let distrustfulPdp: RunningPdp;

const tokens = { reader: "", writer: "", admin: "", otherAudience: "" };

function claims(sub: string, scope: string, overrides: Json = {}): Json {
  return {
    iss: issuer,
    sub,
    aud: filesResource,
    iat: nowS - 60,
    exp: nowS + 3600,
    auth_time: nowS - 300,
    acr: "mfa",
    scope,
    ...overrides,
  };
}

let jwksUrl = "";

before(async () => {
  key = await generateTestKey("ES256");
  const jwks = await JwksServer.start([key.publicJwk]);
  jwksUrl = jwks.url;
  closers.push(() => jwks.close());
  tokens.reader = await mint(key, claims("alice", "mcp:read"));
  tokens.writer = await mint(key, claims("bob", "mcp:read mcp:write"));
  tokens.admin = await mint(key, claims("root", "mcp:read mcp:write mcp:admin"));
  tokens.otherAudience = await mint(
    key,
    claims("alice", "mcp:read mcp:write mcp:admin", { aud: otherResource }),
  );
  pdp = await startTrackedPdp(pdpConfig(jwks.url));
  eachPdp = await startTrackedPdp(pdpConfig(jwks.url, { batch: "authorize_each" }));
  distrustfulPdp = await startTrackedPdp(
    pdpConfig(jwks.url, { trusted_proxies: ["192.0.2.0/24"] }),
  );
});

after(async () => {
  for (const close of closers.reverse()) await close();
  scratch.remove();
});

// ---------------------------------------------------------------- raw HTTP

interface ForwardRequest {
  method: string;
  path: string;
  headers: Record<string, string>;
  body?: Buffer;
  /** Send the body with Transfer-Encoding: chunked (Go's framing for a body of unknown length). */
  chunked?: boolean;
}

interface Answer {
  status: number;
  headers: IncomingHttpHeaders;
  body: unknown;
}

/** Sends exactly this request (node:http, so GET may carry a body and Host is ours to set). */
function send(target: RunningPdp, forward: ForwardRequest): Promise<Answer> {
  const { port } = new URL(target.url);
  const headers: OutgoingHttpHeaders = { ...forward.headers };
  if (forward.body !== undefined) {
    if (forward.chunked === true) headers["transfer-encoding"] = "chunked";
    else headers["content-length"] = String(forward.body.length);
  }
  return new Promise((resolve, reject) => {
    const outgoing = httpRequest(
      {
        host: "127.0.0.1",
        port,
        method: forward.method,
        path: forward.path,
        headers,
        agent: false,
      },
      (response) => {
        const chunks: Buffer[] = [];
        response.on("data", (chunk: Buffer) => chunks.push(chunk));
        response.on("error", reject);
        response.on("end", () => {
          const text = Buffer.concat(chunks).toString("utf8");
          resolve({
            status: response.statusCode ?? 0,
            headers: response.headers,
            body: text === "" ? undefined : (JSON.parse(text) as unknown),
          });
        });
      },
    );
    outgoing.on("error", reject);
    if (forward.body !== undefined) outgoing.write(forward.body);
    outgoing.end();
  });
}

// ---------------------------------------------------------------- the MCP client's request

/** What the MCP client sent to the proxy, and what the proxy knows about it. */
interface ClientRequest {
  method: "POST" | "GET" | "DELETE";
  /** The MCP endpoint path; /mcp by default. */
  path?: string;
  /** Sent as `Authorization: Bearer <token>`; `authorization` overrides. */
  token?: string;
  authorization?: string;
  mcpMethod?: string;
  mcpName?: string;
  /** A JSON-RPC message or batch (serialized) or raw text. */
  body?: unknown;
  /** The client's address as the proxy sees it. */
  clientIp?: string;
  /** The device posture the proxy attaches; null: none. */
  device?: string | null;
  /** Further headers the client itself sent. */
  headers?: Record<string, string>;
}

function rpc(id: number | string, method: string, params: Json = {}): Json {
  return { jsonrpc: "2.0", id, method, params };
}

function toolCall(id: number | string, name: string, args: Json = {}): Json {
  return rpc(id, "tools/call", { name, arguments: args });
}

function bodyBytes(body: unknown): Buffer | undefined {
  if (body === undefined) return undefined;
  return Buffer.from(typeof body === "string" ? body : JSON.stringify(body), "utf8");
}

/** The headers an MCP client (Streamable HTTP, 2025-06-18, SEP-2243 headers) sends. */
function clientHeaders(client: ClientRequest): Record<string, string> {
  const headers: Record<string, string> = {
    "mcp-protocol-version": "2025-06-18",
    "mcp-session-id": "session-1",
    "user-agent": "mcp-client/1.0",
  };
  if (client.method === "POST") {
    headers["content-type"] = "application/json";
    headers.accept = "application/json, text/event-stream";
  }
  if (client.method === "GET") headers.accept = "text/event-stream";
  if (client.authorization !== undefined) headers.authorization = client.authorization;
  else if (client.token !== undefined) headers.authorization = `Bearer ${client.token}`;
  if (client.mcpMethod !== undefined) headers["mcp-method"] = client.mcpMethod;
  if (client.mcpName !== undefined) headers["mcp-name"] = client.mcpName;
  return { ...headers, ...client.headers };
}

function deviceHeader(client: ClientRequest): Record<string, string> {
  const device = client.device === undefined ? "compliant" : client.device;
  return device === null ? {} : { "x-device-trust": device };
}

/** X-Forwarded-For as a proxy appending the client's address writes it. */
function forwardedFor(client: ClientRequest): string {
  const ip = client.clientIp ?? "10.1.2.3";
  const prior = client.headers?.["x-forwarded-for"];
  return prior === undefined ? ip : `${prior}, ${ip}`;
}

interface Proxy {
  name: string;
  /** Whether the PDP gets to see the JSON-RPC body. */
  bodyVisible: boolean;
  forward: (client: ClientRequest) => ForwardRequest;
}

/** Envoy ext_authz http_service, path_prefix /forward-auth/files, with_request_body (allow_partial_message). */
function envoy(client: ClientRequest, options: { partialBytes?: number } = {}): ForwardRequest {
  const all = clientHeaders(client);
  // allowed_headers: authorization (always), content-type, accept, mcp-*, x-forwarded-*; headers_to_add: x-device-trust.
  const allowed = Object.fromEntries(
    Object.entries(all).filter(
      ([name]) =>
        name === "authorization" ||
        name === "content-type" ||
        name === "accept" ||
        name.startsWith("mcp-") ||
        name.startsWith("x-forwarded-"),
    ),
  );
  const full = bodyBytes(client.body);
  const partial = full !== undefined && options.partialBytes !== undefined;
  const body = partial ? full.subarray(0, options.partialBytes) : full;
  return {
    method: client.method,
    path: `/forward-auth/files${client.path ?? "/mcp"}`,
    headers: {
      ...allowed,
      host: mcpHost,
      "x-forwarded-for": forwardedFor(client),
      "x-forwarded-proto": "https",
      "x-envoy-auth-partial-body": partial ? "true" : "false",
      ...deviceHeader(client),
    },
    ...(body === undefined ? {} : { body }),
  };
}

/** NGINX auth_request /forward-auth/files: a GET subrequest, the client's headers, no body. */
function nginx(client: ClientRequest): ForwardRequest {
  return {
    method: "GET",
    path: "/forward-auth/files",
    headers: {
      ...clientHeaders(client),
      host: "pdp.internal",
      connection: "close",
      "x-original-uri": client.path ?? "/mcp",
      "x-original-method": client.method,
      "x-forwarded-for": forwardedFor(client),
      ...deviceHeader(client),
    },
  };
}

/** Traefik ForwardAuth, address http://pdp/forward-auth/files, forwardBody: true. */
function traefik(client: ClientRequest): ForwardRequest {
  const body = bodyBytes(client.body);
  return {
    method: "GET",
    path: "/forward-auth/files",
    headers: {
      ...clientHeaders(client),
      host: "pdp.internal",
      "accept-encoding": "gzip",
      "x-forwarded-for": forwardedFor(client),
      "x-forwarded-method": client.method,
      "x-forwarded-proto": "https",
      "x-forwarded-host": mcpHost,
      "x-forwarded-uri": client.path ?? "/mcp",
      ...deviceHeader(client),
    },
    ...(body === undefined ? {} : { body, chunked: true }),
  };
}

/** Caddy forward_auth, uri /forward-auth/files: GET, the client's headers, no body. */
function caddy(client: ClientRequest): ForwardRequest {
  return {
    method: "GET",
    path: "/forward-auth/files",
    headers: {
      ...clientHeaders(client),
      host: mcpHost,
      "x-forwarded-for": forwardedFor(client),
      "x-forwarded-proto": "https",
      "x-forwarded-host": mcpHost,
      "x-forwarded-method": client.method,
      "x-forwarded-uri": client.path ?? "/mcp",
      ...deviceHeader(client),
    },
  };
}

const proxies: Proxy[] = [
  { name: "Envoy ext_authz", bodyVisible: true, forward: (c) => envoy(c) },
  { name: "NGINX auth_request", bodyVisible: false, forward: nginx },
  { name: "Traefik ForwardAuth", bodyVisible: true, forward: traefik },
  { name: "Caddy forward_auth", bodyVisible: false, forward: caddy },
];

// ---------------------------------------------------------------- assertions

/** The parameters of a `Bearer k="v", k2=v2` challenge, with the scheme under `scheme`. */
function challengeOf(answer: Answer): Record<string, string> {
  const header = answer.headers["www-authenticate"];
  assert.equal(typeof header, "string", "expected a WWW-Authenticate header");
  const text = header as string;
  const space = text.indexOf(" ");
  const params: Record<string, string> = { scheme: space === -1 ? text : text.slice(0, space) };
  for (const match of text.slice(space + 1).matchAll(/([A-Za-z_]+)=(?:"([^"]*)"|([^,\s]+))/g)) {
    const [, name, quoted, bare] = match;
    if (name !== undefined) params[name] = quoted ?? bare ?? "";
  }
  return params;
}

function header(answer: Answer, name: string): string | undefined {
  const value = answer.headers[name];
  return Array.isArray(value) ? value[0] : value;
}

function assertAllowed(answer: Answer, subject: string, risk: string): void {
  assert.equal(answer.status, 200, JSON.stringify(answer.body));
  assert.equal(header(answer, "x-pdp-subject"), subject);
  assert.equal(header(answer, "x-pdp-risk"), risk);
  const ids = header(answer, "x-pdp-decision-id") ?? "";
  for (const id of ids.split(",")) assert.match(id, uuid);
  assert.deepEqual(answer.body, { decision: true, decision_id: ids });
  assert.equal(answer.headers["www-authenticate"], undefined);
}

/**
 * A deny: status, reason codes, and the body shape: a JSON-RPC error addressed
 * to `jsonRpcId` when the PDP saw a JSON-RPC request, a plain body otherwise.
 */
function assertDenied(
  answer: Answer,
  status: 401 | 403,
  reasons: string[],
  jsonRpcId: number | string | undefined,
): void {
  assert.equal(answer.status, status, JSON.stringify(answer.body));
  // One decision id per operation decided; the body names the denying one.
  const ids = (header(answer, "x-pdp-decision-id") ?? "").split(",");
  for (const id of ids) assert.match(id, uuid);
  assert.equal(answer.headers["x-pdp-subject"], undefined);
  const body = answer.body as Json;
  if (jsonRpcId === undefined) {
    assert.equal(body.code, status === 401 ? "unauthenticated" : "access_denied");
    assert.deepEqual(body.reasons, reasons);
    assert.ok(ids.includes(body.decision_id as string));
  } else {
    assert.equal(body.jsonrpc, "2.0");
    assert.equal(body.id, jsonRpcId);
    const error = body.error as Json;
    assert.equal(error.code, -32003);
    assert.equal(typeof error.message, "string");
    assert.deepEqual((error.data as Json).reasons, reasons);
    assert.ok(ids.includes((error.data as Json).decision_id as string));
  }
}

function assertStepUp(answer: Answer, scope: string): void {
  const challenge = challengeOf(answer);
  assert.equal(challenge.scheme, "Bearer");
  assert.equal(challenge.error, "insufficient_scope");
  assert.equal(challenge.scope, scope);
  assert.equal(challenge.resource_metadata, metadataUrl);
  // Every token here has acr mfa and a fresh sign-in: the scope is the only step-up.
  assert.equal(
    header(answer, "www-authenticate"),
    `Bearer error="insufficient_scope", scope="${scope}", resource_metadata="${metadataUrl}"`,
  );
}

/** A 400 refusal of a request that is not valid MCP, addressed to `id` (JSON-RPC) when given. */
function assertRefused(answer: Answer, code: string | string[], id: number | string | null): void {
  assert.equal(answer.status, 400, JSON.stringify(answer.body));
  const body = answer.body as Json;
  assert.equal(body.jsonrpc, "2.0");
  assert.equal(body.id, id);
  const error = body.error as Json;
  const [first] = typeof code === "string" ? [code] : code;
  // MCP's HeaderMismatch for headers that disagree with the body, Invalid Request otherwise.
  assert.equal(error.code, first === "mcp_header_mismatch" ? -32020 : -32600);
  assert.deepEqual((error.data as Json).reasons, typeof code === "string" ? [code] : code);
}

// ---------------------------------------------------------------- every proxy

/** What a WWW-Authenticate of a deny must say. */
type ExpectedChallenge =
  /** 403 `insufficient_scope` for this scope, with resource_metadata. */
  | { stepUp: string }
  /** Exactly this header value. */
  | { exact: string }
  /** No WWW-Authenticate at all. */
  | { none: true }
  /** These parameters (undefined: absent), scheme Bearer. */
  | { params: Record<string, string | undefined> };

interface DecisionCase {
  name: string;
  client: () => ClientRequest;
  expect:
    | { allowed: { subject: string; risk: string } }
    | { status: 401 | 403; reasons: string[]; challenge: ExpectedChallenge };
}

/** The client's POST of one tools/call, with matching Mcp-Method/Mcp-Name headers. */
function callTool(
  id: number,
  tool: string,
  extra: Partial<ClientRequest> & { args?: Json } = {},
): ClientRequest {
  const { args, ...rest } = extra;
  return {
    method: "POST",
    mcpMethod: "tools/call",
    mcpName: tool,
    body: toolCall(id, tool, args),
    ...rest,
  };
}

const noTokenChallenge: ExpectedChallenge = { exact: `Bearer resource_metadata="${metadataUrl}"` };

/** The same decisions, whichever proxy relays the request (tokens are minted in before()). */
const decisionCases: DecisionCase[] = [
  {
    name: "a read tool is allowed for an mcp:read token",
    client: () =>
      callTool(1, "read_file", { token: tokens.reader, args: { path: "/srv/notes.txt" } }),
    expect: { allowed: { subject: "alice", risk: "read" } },
  },
  {
    name: "a destructive tool is denied without mcp:admin, with a step-up challenge",
    client: () => callTool(2, "delete_x", { token: tokens.reader, args: { path: "/srv" } }),
    expect: { status: 403, reasons: ["scope_missing"], challenge: { stepUp: "mcp:admin" } },
  },
  {
    name: "the destructive tool is allowed for an administrator (MFA, fresh, compliant, noon)",
    client: () => callTool(3, "delete_x", { token: tokens.admin, args: { path: "/srv" } }),
    expect: { allowed: { subject: "root", risk: "destructive" } },
  },
  {
    name: "a write tool is allowed from 10/8 on a managed device",
    client: () =>
      callTool(4, "write_file", {
        token: tokens.writer,
        args: { path: "/srv/a", text: "x" },
        clientIp: "10.20.30.40",
        device: "managed",
      }),
    expect: { allowed: { subject: "bob", risk: "write" } },
  },
  {
    name: "the same write from an unmanaged device is denied, with no step-up",
    client: () =>
      callTool(5, "write_file", {
        token: tokens.writer,
        args: { path: "/srv/a", text: "x" },
        clientIp: "10.20.30.40",
        device: "unmanaged",
      }),
    expect: { status: 403, reasons: ["device_untrusted"], challenge: { none: true } },
  },
  {
    name: "the same write from outside 10/8 is denied, with no step-up",
    client: () =>
      callTool(6, "write_file", {
        token: tokens.writer,
        args: { path: "/srv/a", text: "x" },
        clientIp: "203.0.113.7",
        device: "managed",
      }),
    expect: { status: 403, reasons: ["network_denied"], challenge: { none: true } },
  },
  {
    name: "an unknown tool is judged destructive: denied for a writer",
    client: () => callTool(7, "frobnicate", { token: tokens.writer }),
    expect: { status: 403, reasons: ["scope_missing"], challenge: { stepUp: "mcp:admin" } },
  },
  {
    name: "no token: 401 with resource_metadata and no error",
    client: () => callTool(8, "read_file"),
    expect: { status: 401, reasons: ["token_missing"], challenge: noTokenChallenge },
  },
  {
    name: "a token for another MCP server: 401 invalid_token",
    client: () => callTool(9, "read_file", { token: tokens.otherAudience }),
    expect: {
      status: 401,
      reasons: ["token_wrong_audience"],
      challenge: {
        params: { error: "invalid_token", resource_metadata: metadataUrl, scope: undefined },
      },
    },
  },
  {
    name: "a malformed Bearer header (a tab as separator): 401",
    client: () => callTool(10, "read_file", { authorization: `Bearer\t${tokens.reader}` }),
    expect: {
      status: 401,
      reasons: ["token_malformed"],
      challenge: { params: { resource_metadata: metadataUrl } },
    },
  },
  {
    name: "another scheme (Basic): 401 with no error, as if no token were sent",
    client: () =>
      callTool(11, "read_file", {
        authorization: `Basic ${Buffer.from("alice:secret").toString("base64")}`,
      }),
    expect: { status: 401, reasons: ["token_missing"], challenge: noTokenChallenge },
  },
  {
    name: "GET (the SSE stream) is allowed for a reader",
    client: () => ({ method: "GET", token: tokens.reader }),
    expect: { allowed: { subject: "alice", risk: "read" } },
  },
  {
    name: "GET without a token: 401",
    client: () => ({ method: "GET" }),
    expect: { status: 401, reasons: ["token_missing"], challenge: noTokenChallenge },
  },
  {
    // Even from an unmanaged device outside 10/8: ending a session is always allowed.
    name: "DELETE (session end) is allowed for any authenticated subject",
    client: () => ({
      method: "DELETE",
      token: tokens.reader,
      device: "unmanaged",
      clientIp: "198.51.100.1",
    }),
    expect: { allowed: { subject: "alice", risk: "none" } },
  },
  {
    name: "DELETE without a token: 401",
    client: () => ({ method: "DELETE" }),
    expect: { status: 401, reasons: ["token_missing"], challenge: noTokenChallenge },
  },
  {
    name: "a method-level request (tools/list) is judged by its method's class",
    client: () => ({
      method: "POST",
      token: tokens.reader,
      mcpMethod: "tools/list",
      body: rpc(12, "tools/list"),
    }),
    expect: { allowed: { subject: "alice", risk: "read" } },
  },
];

function assertChallenge(answer: Answer, expected: ExpectedChallenge): void {
  if ("stepUp" in expected) assertStepUp(answer, expected.stepUp);
  else if ("exact" in expected) assert.equal(header(answer, "www-authenticate"), expected.exact);
  else if ("none" in expected) assert.equal(answer.headers["www-authenticate"], undefined);
  else {
    const challenge = challengeOf(answer);
    assert.equal(challenge.scheme, "Bearer");
    for (const [name, value] of Object.entries(expected.params)) {
      assert.equal(challenge[name], value, `challenge parameter ${name}`);
    }
  }
}

for (const proxy of proxies) {
  const call = (target: RunningPdp, client: ClientRequest) => send(target, proxy.forward(client));

  describe(`${proxy.name}: the same decisions through this proxy's contract`, () => {
    for (const { name, client, expect } of decisionCases) {
      test(name, async () => {
        const request = client();
        const answer = await call(pdp, request);
        if ("allowed" in expect) {
          assertAllowed(answer, expect.allowed.subject, expect.allowed.risk);
          return;
        }
        // A JSON-RPC error addressed to the request when this proxy lets the PDP see the body.
        const id = (request.body as Json | undefined)?.id as number | undefined;
        assertDenied(answer, expect.status, expect.reasons, proxy.bodyVisible ? id : undefined);
        assertChallenge(answer, expect.challenge);
      });
    }
  });
}

// ---------------------------------------------------------------- proxies that forward the body

/** Bodies that are not MCP the PDP can authorize: 400, the refusal's reasons, addressed to `id`. */
const refusalCases: {
  name: string;
  client: () => ClientRequest;
  reasons: string | string[];
  id: number | null;
}[] = [
  {
    name: "Mcp-Method disagreeing with the body: 400 mcp_header_mismatch",
    client: () => ({
      method: "POST",
      token: tokens.reader,
      mcpMethod: "tools/list",
      body: toolCall(21, "delete_x"),
    }),
    reasons: "mcp_header_mismatch",
    id: 21,
  },
  {
    name: "Mcp-Name disagreeing with the body: 400 mcp_header_mismatch",
    client: () => ({ ...callTool(22, "delete_x", { token: tokens.reader }), mcpName: "read_file" }),
    reasons: "mcp_header_mismatch",
    id: 22,
  },
  {
    name: "a JSON-RPC batch: 400 mcp_batch_rejected",
    client: () => ({
      method: "POST",
      token: tokens.admin,
      body: [toolCall(23, "read_file"), toolCall(24, "read_file")],
    }),
    reasons: "mcp_batch_rejected",
    id: null,
  },
  {
    name: "invalid JSON-RPC: 400 mcp_invalid",
    client: () => ({
      method: "POST",
      token: tokens.reader,
      body: { jsonrpc: "2.0", id: 25, method: "" },
    }),
    reasons: "mcp_invalid",
    id: null,
  },
  {
    // The refusal, then the JSON rule that refused the body.
    name: "a body that is not JSON: 400 mcp_invalid, then invalid_json",
    client: () => ({ method: "POST", token: tokens.reader, body: "{not json" }),
    reasons: ["mcp_invalid", "invalid_json"],
    id: null,
  },
  {
    name: "a tools/call whose body names no tool: 400 mcp_invalid, not a hidden tool",
    client: () => ({
      method: "POST",
      token: tokens.admin,
      body: rpc(26, "tools/call", { arguments: { path: "/srv" } }),
    }),
    reasons: "mcp_invalid",
    id: 26,
  },
];

for (const proxy of proxies.filter((p) => p.bodyVisible)) {
  const call = (target: RunningPdp, client: ClientRequest) => send(target, proxy.forward(client));

  describe(`${proxy.name}: the body is read and checked against the headers`, () => {
    test("the body decides when the client sent no Mcp-Method/Mcp-Name", async () => {
      const answer = await call(pdp, {
        method: "POST",
        token: tokens.reader,
        body: toolCall(20, "delete_x"),
      });
      assertDenied(answer, 403, ["scope_missing"], 20);
      assertStepUp(answer, "mcp:admin");
    });

    for (const { name, client, reasons, id } of refusalCases) {
      test(name, async () => {
        assertRefused(await call(pdp, client()), reasons, id);
      });
    }

    test("forward_auth.batch authorize_each: one forbidden call denies the batch", async () => {
      const answer = await call(eachPdp, {
        method: "POST",
        token: tokens.reader,
        body: [toolCall(26, "read_file"), toolCall(27, "delete_x")],
      });
      assert.equal(answer.status, 403);
      assertStepUp(answer, "mcp:admin");
      // Every element was decided.
      const ids = (header(answer, "x-pdp-decision-id") ?? "").split(",");
      assert.equal(ids.length, 2);
      for (const id of ids) assert.match(id, uuid);
      // A batch is answered per request, as the PEP library answers it: the refused call its
      // refusal, the allowed one "not executed"; each names its own decision.
      const errors = answer.body as { jsonrpc: string; id: unknown; error: Json }[];
      assert.deepEqual(
        errors.map((e) => [e.jsonrpc, e.id, e.error.code, (e.error.data as Json).reasons]),
        [
          ["2.0", 26, -32003, ["batch_denied"]],
          ["2.0", 27, -32003, ["scope_missing"]],
        ],
      );
      assert.deepEqual(
        errors.map((e) => (e.error.data as Json).decision_id),
        ids,
      );
      assert.deepEqual((errors[1]?.error.data as Json).step_up, { scopes: ["mcp:admin"] });
    });

    test("forward_auth.batch authorize_each: all allowed is 200, with one decision each", async () => {
      const answer = await call(eachPdp, {
        method: "POST",
        token: tokens.reader,
        body: [
          toolCall(28, "read_file"),
          rpc(29, "tools/list"),
          { jsonrpc: "2.0", method: "notifications/initialized" },
        ],
      });
      assert.equal(answer.status, 200, JSON.stringify(answer.body));
      assert.equal(header(answer, "x-pdp-subject"), "alice");
      assert.equal(header(answer, "x-pdp-risk"), "read"); // each class once
      const ids = (header(answer, "x-pdp-decision-id") ?? "").split(",");
      assert.equal(ids.length, 3);
      for (const id of ids) assert.match(id, uuid);
    });
  });
}

// ---------------------------------------------------------------- proxy-specific contracts

describe("Envoy: x-envoy-auth-partial-body", () => {
  test("a complete body (partial-body false) is read", async () => {
    const answer = await send(
      pdp,
      envoy({ method: "POST", token: tokens.reader, body: toolCall(30, "read_file") }),
    );
    assertAllowed(answer, "alice", "read");
  });

  test("a cut body is not parsed: without headers the call is opaque, the highest class", async () => {
    const client: ClientRequest = {
      method: "POST",
      token: tokens.reader,
      body: toolCall(31, "read_file", { text: "x".repeat(200) }),
    };
    const forward = envoy(client, { partialBytes: 64 });
    assert.equal(forward.headers["x-envoy-auth-partial-body"], "true");
    const answer = await send(pdp, forward);
    // Not 400 mcp_invalid: the cut JSON is never parsed; the unseen call is judged destructive.
    assertDenied(answer, 403, ["scope_missing"], undefined);
    assertStepUp(answer, "mcp:admin");
  });

  test("a cut body with Mcp-Method/Mcp-Name: the headers decide", async () => {
    const client: ClientRequest = {
      method: "POST",
      token: tokens.reader,
      mcpMethod: "tools/call",
      mcpName: "read_file",
      body: toolCall(32, "read_file", { text: "x".repeat(200) }),
    };
    assertAllowed(await send(pdp, envoy(client, { partialBytes: 64 })), "alice", "read");
  });

  test("a client's own partial-body header through another proxy is not believed", async () => {
    // A client sends the header itself with a full delete_repo body, hoping the PDP believes its Mcp-Name.
    const client: ClientRequest = {
      method: "POST",
      token: tokens.reader,
      mcpMethod: "tools/call",
      mcpName: "read_file",
      body: toolCall(34, "delete_repo"),
    };
    const lying = { ...envoy(client), headers: { ...envoy(client).headers } };
    lying.headers["x-envoy-auth-partial-body"] = "true";
    // `other` is not marked as behind Envoy: the visible body is read and the headers disagree with it.
    const reasons = (answer: Answer) =>
      (answer.body as { error?: { data?: { reasons?: string[] } } }).error?.data?.reasons;
    const notEnvoy = await send(pdp, { ...lying, path: "/forward-auth/other/mcp" });
    assert.equal(notEnvoy.status, 400);
    assert.deepEqual(reasons(notEnvoy), ["mcp_header_mismatch"]);
    // `files` is behind Envoy, but the peer is not a trusted proxy of distrustfulPdp.
    const untrusted = await send(distrustfulPdp, lying);
    assert.equal(untrusted.status, 400);
    assert.deepEqual(reasons(untrusted), ["mcp_header_mismatch"]);
  });

  test("the original path after the prefix does not change the server", async () => {
    const answer = await send(
      pdp,
      envoy({
        method: "POST",
        path: "/v1/mcp?tenant=a",
        token: tokens.reader,
        body: toolCall(33, "read_file"),
      }),
    );
    assertAllowed(answer, "alice", "read");
  });
});

describe("NGINX: headers only, so Mcp-Method/Mcp-Name are all the PDP sees", () => {
  test("without Mcp-Method the POST is opaque: a reader gets insufficient_scope mcp:admin", async () => {
    const answer = await send(
      pdp,
      nginx({ method: "POST", token: tokens.reader, body: toolCall(40, "read_file") }),
    );
    assertDenied(answer, 403, ["scope_missing"], undefined);
    assertStepUp(answer, "mcp:admin");
  });

  test("Mcp-Method tools/call with Mcp-Name read_file: allowed for a reader", async () => {
    const answer = await send(
      pdp,
      nginx({
        method: "POST",
        token: tokens.reader,
        mcpMethod: "tools/call",
        mcpName: "read_file",
      }),
    );
    assertAllowed(answer, "alice", "read");
  });

  test("by default (no enforces_mcp_headers) the same headers are not believed", async () => {
    const cautious = await startTrackedPdp(pdpConfig(jwksUrl, {}, {}));
    const answer = await send(
      cautious,
      nginx({
        method: "POST",
        token: tokens.reader,
        mcpMethod: "tools/call",
        mcpName: "read_file",
      }),
    );
    assertDenied(answer, 403, ["scope_missing"], undefined);
    assertStepUp(answer, "mcp:admin");
    const lied = await send(
      cautious,
      nginx({ method: "POST", token: tokens.reader, mcpMethod: "ping" }),
    );
    assertDenied(lied, 403, ["scope_missing"], undefined);
  });

  test("Mcp-Method tools/call without Mcp-Name: a hidden tool, judged destructive", async () => {
    const forReader = await send(
      pdp,
      nginx({ method: "POST", token: tokens.reader, mcpMethod: "tools/call" }),
    );
    assertDenied(forReader, 403, ["scope_missing"], undefined);
    assertStepUp(forReader, "mcp:admin");
    const forAdmin = await send(
      pdp,
      nginx({ method: "POST", token: tokens.admin, mcpMethod: "tools/call" }),
    );
    assertAllowed(forAdmin, "root", "destructive");
  });

  test("an HTTP method MCP does not use: 400 mcp_http_method_unsupported", async () => {
    const forward = nginx({ method: "POST", token: tokens.reader });
    forward.headers["x-original-method"] = "PUT";
    const answer = await send(pdp, forward);
    assert.equal(answer.status, 400);
    assert.equal((answer.body as Json).code, "mcp_http_method_unsupported");
  });

  // nginx relays the client's own headers to the auth subrequest and sets only
  // X-Original-Method; a client-supplied X-Forwarded-Method must not win over it.
  test("a client's own X-Forwarded-Method: GET does not turn its POST into the SSE stream", async () => {
    const answer = await send(
      pdp,
      nginx({
        method: "POST",
        token: tokens.reader,
        mcpMethod: "tools/call",
        mcpName: "delete_x",
        headers: { "x-forwarded-method": "GET" },
      }),
    );
    assert.ok(
      answer.status === 400 || answer.status === 403,
      `a reader's destructive POST was answered ${answer.status} (x-pdp-risk ${String(header(answer, "x-pdp-risk"))})`,
    );
  });
});

describe("Envoy: a client header cannot relabel the request's own method", () => {
  // With allowed_headers matching x-forwarded-* (as modelled), the client's own
  // X-Forwarded-Method reaches the PDP beside Envoy's real method, POST.
  test("X-Forwarded-Method: GET on a POST carrying a destructive tools/call is not the stream", async () => {
    const answer = await send(
      pdp,
      envoy({
        method: "POST",
        token: tokens.reader,
        body: toolCall(50, "delete_x"),
        headers: { "x-forwarded-method": "GET" },
      }),
    );
    assert.ok(
      answer.status === 400 || answer.status === 403,
      `a reader's destructive POST was answered ${answer.status} (x-pdp-risk ${String(header(answer, "x-pdp-risk"))})`,
    );
  });
});

describe("Traefik: forwardBody sends the body with a GET", () => {
  test("the GET's body is the client's POST body", async () => {
    const forward = traefik({
      method: "POST",
      token: tokens.reader,
      body: toolCall(60, "delete_x"),
    });
    assert.equal(forward.method, "GET");
    assert.equal(forward.chunked, true);
    const answer = await send(pdp, forward);
    assertDenied(answer, 403, ["scope_missing"], 60);
    assertStepUp(answer, "mcp:admin");
  });

  test("without forwardBody (no body) the POST is opaque unless Mcp-Method says more", async () => {
    const opaque = traefik({ method: "POST", token: tokens.reader });
    const answer = await send(pdp, opaque);
    assertDenied(answer, 403, ["scope_missing"], undefined);
    assertStepUp(answer, "mcp:admin");
  });
});

describe("Caddy: headers only", () => {
  test("without Mcp-Method the POST is opaque: insufficient_scope mcp:admin", async () => {
    const answer = await send(pdp, caddy({ method: "POST", token: tokens.reader }));
    assertDenied(answer, 403, ["scope_missing"], undefined);
    assertStepUp(answer, "mcp:admin");
  });

  test("Mcp-Method tools/list: judged by the method, allowed for a reader", async () => {
    const answer = await send(
      pdp,
      caddy({ method: "POST", token: tokens.reader, mcpMethod: "tools/list" }),
    );
    assertAllowed(answer, "alice", "read");
  });
});

// ---------------------------------------------------------------- MCP 2026-07-28

describe("MCP 2026-07-28 to a server marked speaks_mcp_2026_07_28: the mandatory headers decide", () => {
  /** `files` speaks 2026-07-28 and is not marked enforces_mcp_headers. */
  let modernPdp: RunningPdp;
  before(async () => {
    modernPdp = await startTrackedPdp(pdpConfig(jwksUrl, {}, { speaks_mcp_2026_07_28: true }));
  });
  const modern = { "mcp-protocol-version": "2026-07-28" };
  const base64Form = (text: string) => `=?base64?${Buffer.from(text, "utf8").toString("base64")}?=`;
  const meta = (version: string): Json => ({
    _meta: {
      "io.modelcontextprotocol/protocolVersion": version,
      "io.modelcontextprotocol/clientCapabilities": {},
    },
  });

  for (const [proxyName, proxy] of [
    ["NGINX", nginx],
    ["Caddy", caddy],
  ] as const) {
    test(`${proxyName}: exact per-tool decisions from Mcp-Method and Mcp-Name`, async () => {
      const call = (token: string, name: string) =>
        send(
          modernPdp,
          proxy({ method: "POST", token, mcpMethod: "tools/call", mcpName: name, headers: modern }),
        );
      assertAllowed(await call(tokens.reader, "read_file"), "alice", "read");
      const denied = await call(tokens.reader, "delete_repo");
      assertDenied(denied, 403, ["scope_missing"], undefined);
      assertStepUp(denied, "mcp:admin");
      assertAllowed(await call(tokens.admin, "delete_repo"), "root", "destructive");
      // The catalog's files/read_* covers a non-ASCII name sent in the base64 form.
      assertAllowed(await call(tokens.reader, base64Form("read_überall")), "alice", "read");
      const listed = await send(
        modernPdp,
        proxy({ method: "POST", token: tokens.reader, mcpMethod: "tools/list", headers: modern }),
      );
      assertAllowed(listed, "alice", "read");
    });

    test(`${proxyName}: an older revision, or none, is not believed: opaque, the highest class`, async () => {
      for (const headers of [{ "mcp-protocol-version": "2025-11-25" }, {}]) {
        const answer = await send(
          modernPdp,
          proxy({
            method: "POST",
            token: tokens.reader,
            mcpMethod: "tools/call",
            mcpName: "read_file",
            headers,
          }),
        );
        assertDenied(answer, 403, ["scope_missing"], undefined);
        assertStepUp(answer, "mcp:admin");
      }
    });

    test(`${proxyName}: missing, malformed or folded headers are refused, not guessed`, async () => {
      const refusedAs = async (code: string, client: Partial<ClientRequest>) => {
        const answer = await send(
          modernPdp,
          proxy({ method: "POST", token: tokens.admin, headers: modern, ...client }),
        );
        assert.equal(answer.status, 400, JSON.stringify(answer.body));
        assert.deepEqual((answer.body as Json).reasons, [code]);
      };
      await refusedAs("mcp_header_mismatch", { mcpName: "read_file" });
      await refusedAs("mcp_header_mismatch", { mcpMethod: "tools/call" });
      await refusedAs("mcp_header_mismatch", { mcpMethod: "tools/call", mcpName: "" });
      await refusedAs("mcp_header_mismatch", { mcpMethod: "resources/read" });
      await refusedAs("mcp_header_mismatch", {
        mcpMethod: "tools/call",
        mcpName: "=?base64?QR==?=",
      });
      await refusedAs("mcp_header_mismatch", {
        mcpMethod: "tools/call",
        mcpName: "=?UTF-8?B?cmVhZF9maWxl?=",
      });
      // What node (and most servers) make of two Mcp-Name headers.
      await refusedAs("mcp_invalid", {
        mcpMethod: "tools/call",
        mcpName: "read_file, delete_repo",
      });
      await refusedAs("mcp_invalid", { mcpMethod: "mcp/opaque" });
    });
  }

  test("a server not marked: the same headers are not believed", async () => {
    const unmarked = await startTrackedPdp(pdpConfig(jwksUrl, {}, {}));
    const answer = await send(
      unmarked,
      nginx({
        method: "POST",
        token: tokens.reader,
        mcpMethod: "tools/call",
        mcpName: "read_file",
        headers: modern,
      }),
    );
    assertDenied(answer, 403, ["scope_missing"], undefined);
    assertStepUp(answer, "mcp:admin");
  });

  test("a visible body contradicting the headers: 400, JSON-RPC -32020", async () => {
    const cases: [Partial<ClientRequest>, number][] = [
      // The header declares 2026-07-28, _meta another revision.
      [
        {
          mcpMethod: "tools/call",
          mcpName: "read_file",
          body: rpc(70, "tools/call", { name: "read_file", ...meta("2025-11-25") }),
        },
        70,
      ],
      // The header names one tool, the body another.
      [
        {
          mcpMethod: "tools/call",
          mcpName: "read_file",
          body: rpc(71, "tools/call", { name: "delete_repo", ...meta("2026-07-28") }),
        },
        71,
      ],
      // A base64 name that decodes to another tool than the body's.
      [
        {
          mcpMethod: "tools/call",
          mcpName: base64Form("read_file"),
          body: rpc(72, "tools/call", { name: "delete_repo", ...meta("2026-07-28") }),
        },
        72,
      ],
      // Mcp-Method missing on a 2026-07-28 request.
      [{ body: rpc(73, "tools/list", meta("2026-07-28")) }, 73],
      // A legacy body under a 2026-07-28 header.
      [{ mcpMethod: "tools/call", mcpName: "read_file", body: toolCall(74, "read_file") }, 74],
    ];
    for (const [client, id] of cases) {
      for (const proxy of [envoy, traefik]) {
        const answer = await send(
          modernPdp,
          proxy({ method: "POST", token: tokens.admin, headers: modern, ...client }),
        );
        assertRefused(answer, "mcp_header_mismatch", id);
      }
    }
    const agreeing = await send(
      modernPdp,
      envoy({
        method: "POST",
        token: tokens.reader,
        mcpMethod: "tools/call",
        mcpName: "read_file",
        headers: modern,
        body: rpc(75, "tools/call", { name: "read_file", ...meta("2026-07-28") }),
      }),
    );
    assertAllowed(agreeing, "alice", "read");
  });

  test("server/discover is allowed; tasks/cancel needs mcp:write", async () => {
    const discover = await send(
      modernPdp,
      caddy({
        method: "POST",
        token: tokens.reader,
        mcpMethod: "server/discover",
        headers: modern,
      }),
    );
    assertAllowed(discover, "alice", "none");
    const cancel = (token: string) =>
      send(
        modernPdp,
        nginx({
          method: "POST",
          token,
          mcpMethod: "tasks/cancel",
          mcpName: "task-1",
          headers: modern,
        }),
      );
    const forReader = await cancel(tokens.reader);
    assertDenied(forReader, 403, ["scope_missing"], undefined);
    assertStepUp(forReader, "mcp:write");
    assertAllowed(await cancel(tokens.writer), "bob", "write");
  });
});

// ---------------------------------------------------------------- trusted proxies

describe("a peer outside trusted_proxies is not believed", () => {
  test("its X-Forwarded-For is ignored: the peer's own address is judged", async () => {
    const answer = await send(
      distrustfulPdp,
      traefik({
        method: "POST",
        token: tokens.writer,
        body: toolCall(70, "write_file"),
        clientIp: "10.1.2.3",
        device: "managed",
      }),
    );
    // 127.0.0.1 is outside 10/8, and the device header is not believed either.
    assertDenied(answer, 403, ["device_untrusted", "network_denied"], 70);
    assert.equal(answer.headers["www-authenticate"], undefined);
  });

  test("its context headers are ignored: device trust is unknown", async () => {
    const answer = await send(
      distrustfulPdp,
      caddy({
        method: "POST",
        token: tokens.reader,
        mcpMethod: "tools/call",
        mcpName: "read_file",
        device: "compliant",
      }),
    );
    assertDenied(answer, 403, ["device_untrusted"], undefined);
  });

  test("tokens are still verified and the answer shapes are the same", async () => {
    const answer = await send(distrustfulPdp, caddy({ method: "GET" }));
    assertDenied(answer, 401, ["token_missing"], undefined);
    assert.equal(header(answer, "www-authenticate"), `Bearer resource_metadata="${metadataUrl}"`);
  });
});

describe("context headers from the trusted peer reach the policy", () => {
  test("x-device-trust flips the same request from allowed to denied", async () => {
    const client = (device: string | null): ClientRequest => ({
      method: "POST",
      token: tokens.reader,
      mcpMethod: "tools/call",
      mcpName: "read_file",
      body: toolCall(80, "read_file"),
      device,
    });
    assertAllowed(await send(pdp, envoy(client("unmanaged"))), "alice", "read");
    assertDenied(await send(pdp, envoy(client(null))), 403, ["device_untrusted"], 80);
    assertDenied(await send(pdp, envoy(client("jailbroken"))), 403, ["device_untrusted"], 80);
  });
});

describe("TrustedProxies", () => {
  const proxiesList = new TrustedProxies(["127.0.0.1/32", "::1/128", "10.0.0.0/8"]);

  test("trusts exactly the listed networks, IPv4-mapped IPv6 included", () => {
    assert.equal(proxiesList.trusts("127.0.0.1"), true);
    assert.equal(proxiesList.trusts("::ffff:127.0.0.1"), true);
    assert.equal(proxiesList.trusts("::1"), true);
    assert.equal(proxiesList.trusts("10.255.0.1"), true);
    assert.equal(proxiesList.trusts("127.0.0.2"), false);
    assert.equal(proxiesList.trusts("11.0.0.1"), false);
    assert.equal(proxiesList.trusts("::2"), false);
    assert.equal(proxiesList.trusts("not an address"), false);
    assert.equal(proxiesList.trusts(undefined), false);
  });

  test("an empty list, or one of non-CIDRs, trusts nobody", () => {
    for (const list of [new TrustedProxies([]), new TrustedProxies(["127.0.0.1", "nonsense"])]) {
      assert.equal(list.trusts("127.0.0.1"), false);
      assert.equal(list.clientAddress("127.0.0.1", "10.1.2.3"), "127.0.0.1");
    }
  });

  test("an untrusted peer is the client, whatever its X-Forwarded-For says", () => {
    assert.equal(proxiesList.clientAddress("203.0.113.9", "10.1.2.3"), "203.0.113.9");
    assert.equal(proxiesList.clientAddress("::ffff:203.0.113.9", "10.1.2.3"), "203.0.113.9");
  });

  test("a trusted peer without X-Forwarded-For is the client", () => {
    assert.equal(proxiesList.clientAddress("127.0.0.1", undefined), "127.0.0.1");
    assert.equal(proxiesList.clientAddress("::ffff:127.0.0.1", undefined), "127.0.0.1");
    assert.equal(proxiesList.clientAddress(undefined, "10.1.2.3"), undefined);
  });

  test("behind trusted peers, the right-most untrusted hop is the client", () => {
    // The client forged the left-most entry; the proxies appended the rest.
    assert.equal(
      proxiesList.clientAddress("127.0.0.1", "198.51.100.66, 203.0.113.5, 10.0.0.7"),
      "203.0.113.5",
    );
    assert.equal(proxiesList.clientAddress("127.0.0.1", "203.0.113.5"), "203.0.113.5");
    assert.equal(proxiesList.clientAddress("::1", " 2001:db8::5 , 10.0.0.7 "), "2001:db8::5");
    assert.equal(
      proxiesList.clientAddress("127.0.0.1", "::ffff:203.0.113.5, ::ffff:10.0.0.7"),
      "203.0.113.5",
    );
  });

  test("when every hop is trusted, the left-most is the client", () => {
    assert.equal(proxiesList.clientAddress("127.0.0.1", "10.0.0.1, 10.0.0.2"), "10.0.0.1");
  });

  test("a hop that is not an address stops the walk: the peer is the client", () => {
    assert.equal(proxiesList.clientAddress("127.0.0.1", "203.0.113.5, garbage"), "127.0.0.1");
    assert.equal(proxiesList.clientAddress("127.0.0.1", "203.0.113.5:4711"), "127.0.0.1");
    // Garbage left of the first untrusted hop is never reached.
    assert.equal(proxiesList.clientAddress("127.0.0.1", "garbage, 203.0.113.5"), "203.0.113.5");
    // Empty entries are skipped.
    assert.equal(proxiesList.clientAddress("127.0.0.1", ", 203.0.113.5,,"), "203.0.113.5");
    assert.equal(proxiesList.clientAddress("127.0.0.1", ""), "127.0.0.1");
  });
});

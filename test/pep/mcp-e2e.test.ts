/**
 * The PEP end to end, every component real and on 127.0.0.1: a JWKS server,
 * the PDP (in process, example operator data, clock frozen at 10:00 UTC,
 * caller authentication by API key), MCP servers built with the official SDK
 * protected by createMcpAuthorization, and the official SDK client as the
 * caller, in both SDK eras: 1.x (McpServer + StreamableHTTPServerTransport,
 * stateless; Client + StreamableHTTPClientTransport, MCP 2025-11-25) and v2
 * (`@modelcontextprotocol/server`'s createMcpHandler and
 * `@modelcontextprotocol/client`, negotiating MCP 2026-07-28 through
 * server/discover), each with SSE and JSON responses. The scenarios both eras
 * share run from one table; the rest are 1.x wire details.
 */
import assert from "node:assert/strict";
import { randomBytes } from "node:crypto";
import { createServer } from "node:http";
import type { AddressInfo } from "node:net";
import { after, before, describe, test } from "node:test";
import { fileURLToPath } from "node:url";
import {
  UnauthorizedError,
  extractWWWAuthenticateParams,
} from "@modelcontextprotocol/sdk/client/auth.js";
import type { OAuthClientProvider } from "@modelcontextprotocol/sdk/client/auth.js";
import { Client } from "@modelcontextprotocol/sdk/client/index.js";
import {
  StreamableHTTPClientTransport,
  StreamableHTTPError,
} from "@modelcontextprotocol/sdk/client/streamableHttp.js";
import {
  Client as ClientV2,
  InMemoryResponseCacheStore,
  InsufficientScopeError,
  SdkHttpError,
  StreamableHTTPClientTransport as StreamableHTTPClientTransportV2,
  UnauthorizedError as UnauthorizedErrorV2,
  type OAuthClientProvider as OAuthClientProviderV2,
  type ResponseCacheStore,
} from "@modelcontextprotocol/client";
import { createMcpAuthorization } from "../../src/pep/index.ts";
import { writePdpConfigForPep } from "./pdp-config-for-pep.ts";
import { JwksServer } from "../support/jwks-server.ts";
import { scratchDir } from "../support/opa.ts";
import { startPdp, type RunningPdp } from "../support/pdp.ts";
import { generateTestKey, mint, type TestKey } from "../support/tokens.ts";
import {
  annotationsOf,
  proxyContext,
  startMcpServer,
  toolNames,
  type RunningMcpServer,
  type SdkEra,
} from "./mcp-fixture.ts";

const operatorData = fileURLToPath(new URL("../../examples/operator-data.yaml", import.meta.url));
/** Inside the example data's destructive hours (07–19 UTC). */
const nowMs = Date.UTC(2025, 10, 26, 10, 0, 0);
const nowS = nowMs / 1000;
const issuer = "https://idp.pep.test";
const apiKey = randomBytes(24).toString("base64url");

let key: TestKey;
let jwks: JwksServer;
let mcp: RunningMcpServer;
let pdp: RunningPdp;
let resource: string;
let resourceMetadataUrl: string;
const scratch = scratchDir();
/** Everything the PEPs reported when failing closed. */
const pepErrors: Error[] = [];

/** A second MCP server of the same issuer, registered in the PDP but not the one this PEP guards. */
const gitResource = "https://git.example.test/mcp";

before(async () => {
  key = await generateTestKey("ES256");
  jwks = await JwksServer.start([key.publicJwk]);
  mcp = await startMcpServer();
  resource = `${mcp.origin}/mcp`;
  resourceMetadataUrl = `${mcp.origin}/.well-known/oauth-protected-resource/mcp`;

  // One issuer minting for two registered servers: the issue-8 case a git token opened files in.
  const configFile = writePdpConfigForPep(scratch.dir, {
    issuer,
    jwksUrl: jwks.url,
    servers: { files: resource, git: gitResource },
    apiKey,
  });
  pdp = await startPdp({
    env: { PDP_CONFIG: configFile, PDP_DATA: operatorData },
    clock: () => nowMs,
  });

  // A port nobody listens on: the PDP is down.
  const probe = createServer();
  await new Promise<void>((resolve) => {
    probe.listen(0, "127.0.0.1", resolve);
  });
  const deadPort = (probe.address() as AddressInfo).port;
  await new Promise<void>((resolve) => {
    probe.close(() => {
      resolve();
    });
  });

  const common = {
    server: "files",
    apiKey,
    resourceMetadataUrl,
    context: proxyContext,
    toolAnnotations: annotationsOf,
    onError: (error: Error) => {
      pepErrors.push(error);
    },
  };
  mcp.mount([
    { path: "/mcp", json: false, pep: createMcpAuthorization({ ...common, pdpUrl: pdp.url }) },
    {
      path: "/mcp-json",
      json: true,
      pep: createMcpAuthorization({ ...common, pdpUrl: pdp.url }),
    },
    // The same library, options and PDP in front of v2 servers: one code path for both eras.
    {
      path: "/mcp/v2",
      json: false,
      era: "v2",
      pep: createMcpAuthorization({ ...common, pdpUrl: pdp.url }),
    },
    {
      path: "/mcp/v2-json",
      json: true,
      era: "v2",
      pep: createMcpAuthorization({ ...common, pdpUrl: pdp.url }),
    },
    {
      // A PEP misconfigured with a server name the PDP does not know.
      path: "/mcp-unregistered",
      json: false,
      pep: createMcpAuthorization({ ...common, server: "unregistered", pdpUrl: pdp.url }),
    },
    {
      path: "/mcp-pdp-down",
      json: false,
      pep: createMcpAuthorization({
        ...common,
        pdpUrl: `http://127.0.0.1:${deadPort}`,
        timeoutMs: 500,
      }),
    },
  ]);
});

after(async () => {
  await Promise.all([mcp.close(), pdp.close(), jwks.close()]);
  scratch.remove();
});

// ------------------------------------------------------------------ callers

interface Claims {
  scope: string;
  acr?: string;
  auth_time?: number;
  aud?: string;
}

function token(claims: Claims): Promise<string> {
  return mint(key, {
    iss: issuer,
    sub: "alice",
    aud: resource,
    client_id: "pep-e2e",
    iat: nowS - 60,
    exp: nowS + 3600,
    auth_time: nowS - 600,
    acr: "pwd",
    ...claims,
  });
}

const reader = () => token({ scope: "mcp:read" });
const writer = () => token({ scope: "mcp:read mcp:write" });
const admin = () =>
  token({ scope: "mcp:read mcp:write mcp:admin", acr: "mfa", auth_time: nowS - 300 });
const staleAdmin = () =>
  token({ scope: "mcp:read mcp:write mcp:admin", acr: "mfa", auth_time: nowS - 1000 });

/** Where the caller sits, as the front proxy reports it. */
const compliantOffice = { "x-device-trust": "compliant", "x-client-ip": "10.1.2.3" };
const managedOffice = { "x-device-trust": "managed", "x-client-ip": "10.1.2.3" };
const unmanagedOffice = { "x-device-trust": "unmanaged", "x-client-ip": "10.1.2.3" };

/** What the scenarios use of either era's SDK client (both have this shape). */
interface McpClient {
  callTool: (params: {
    name: string;
    arguments: Record<string, unknown>;
  }) => Promise<Record<string, unknown>>;
  listTools: () => Promise<{ tools: { name: string }[] }>;
}

interface Session {
  client: McpClient;
  /** Every HTTP response the SDK transport received, in order (clones: their bodies stay readable). */
  responses: Response[];
  /** What the client and server agreed on. */
  protocolVersion: string | undefined;
  /** The v2 client itself (its 2026-07-28-only API), on a v2 session. */
  v2?: ClientV2;
  close: () => Promise<void>;
}

interface ConnectOptions {
  token?: string;
  headers?: Record<string, string>;
  path?: string;
  authProvider?: OAuthClientProvider;
  /** Which SDK client connects (default 1.x); the path must lead to a server of the same era. */
  era?: SdkEra;
  /** v2 only: a response cache shared with other clients, and this client's partition of it. */
  cache?: { store: ResponseCacheStore; partition: string };
}

/**
 * What the SDK client transport received, recorded by the fetch it is given:
 * each answer to a POST as a clone, so that its body stays readable, except a
 * 202 (no body: the 1.x client cancels it, and a cancel waits for every clone).
 */
function recordingFetch(responses: Response[]) {
  return async (url: string | URL, init?: RequestInit): Promise<Response> => {
    const response = await fetch(url, init);
    responses.push(
      init?.method === "POST" && response.status !== 202 ? response.clone() : response,
    );
    return response;
  };
}

function connect(options: ConnectOptions): Promise<Session> {
  return options.era === "v2" ? connectV2(options) : connectV1(options);
}

function headersOf(options: ConnectOptions): Record<string, string> {
  const headers: Record<string, string> = { ...options.headers };
  if (options.token !== undefined) headers.authorization = `Bearer ${options.token}`;
  return headers;
}

async function connectV1(options: ConnectOptions): Promise<Session> {
  const responses: Response[] = [];
  const transport = new StreamableHTTPClientTransport(new URL(options.path ?? "/mcp", mcp.origin), {
    requestInit: { headers: headersOf(options) },
    fetch: recordingFetch(responses),
    ...(options.authProvider === undefined ? {} : { authProvider: options.authProvider }),
  });
  const client = new Client({ name: "pep-e2e", version: "1.0.0" });
  try {
    await client.connect(transport);
  } catch (error) {
    await client.close();
    throw Object.assign(error as Error, { responses });
  }
  return {
    client,
    responses,
    protocolVersion: transport.protocolVersion,
    close: () => client.close(),
  };
}

/** The v2 client, negotiating the newest revision both sides speak (server/discover first). */
async function connectV2(options: ConnectOptions): Promise<Session> {
  const responses: Response[] = [];
  const transport = new StreamableHTTPClientTransportV2(
    new URL(options.path ?? "/mcp/v2", mcp.origin),
    {
      requestInit: { headers: headersOf(options) },
      fetch: recordingFetch(responses),
      // The two eras' OAuthClientProvider interfaces have the members the test's provider has.
      ...(options.authProvider === undefined
        ? {}
        : { authProvider: options.authProvider as OAuthClientProviderV2 }),
    },
  );
  const client = new ClientV2(
    { name: "pep-e2e", version: "2.0.0" },
    {
      versionNegotiation: { mode: "auto" },
      ...(options.cache === undefined
        ? {}
        : { responseCacheStore: options.cache.store, cachePartition: options.cache.partition }),
    },
  );
  try {
    await client.connect(transport);
  } catch (error) {
    await client.close();
    throw Object.assign(error as Error, { responses });
  }
  return {
    client,
    responses,
    protocolVersion: transport.protocolVersion,
    v2: client,
    close: () => client.close(),
  };
}

/** The SDK eras every shared scenario runs with: their client, their server, what they negotiate. */
const eras = [
  { name: "SDK 1.x", era: "1.x", version: "2025-11-25", sse: "/mcp", json: "/mcp-json" },
  { name: "SDK v2", era: "v2", version: "2026-07-28", sse: "/mcp/v2", json: "/mcp/v2-json" },
] as const satisfies readonly {
  name: string;
  era: SdkEra;
  version: string;
  sse: string;
  json: string;
}[];

async function withSession<T>(
  options: ConnectOptions,
  run: (session: Session) => Promise<T>,
): Promise<T> {
  const session = await connect(options);
  try {
    return await run(session);
  } finally {
    await session.close();
  }
}

interface JsonRpcErrorBody {
  jsonrpc: "2.0";
  id: string | number | null;
  error: {
    code: number;
    message: string;
    data: { reasons: string[]; decision_id: string | null; step_up?: Record<string, unknown> };
  };
}

/**
 * What the SDK client surfaces for a refused POST (no auth provider): a
 * StreamableHTTPError whose `code` is the HTTP status and whose message ends
 * with the response body, our JSON-RPC error.
 */
function refusal(error: unknown, status: number): JsonRpcErrorBody {
  assert.ok(
    error instanceof StreamableHTTPError,
    `expected a StreamableHTTPError: ${String(error)}`,
  );
  assert.equal(error.code, status);
  const prefix = "Streamable HTTP error: Error POSTing to endpoint: ";
  assert.ok(error.message.startsWith(prefix), error.message);
  return JSON.parse(error.message.slice(prefix.length)) as JsonRpcErrorBody;
}

/** The last POST response the SDK transport received. */
function lastPost(session: { responses: Response[] }): Response {
  const response = session.responses.at(-1);
  assert.ok(response !== undefined);
  return response;
}

/**
 * A tools/call the PEP refuses: what the client surfaced (1.x: the
 * StreamableHTTPError above; v2: its SdkHttpError with the status, or for a
 * 403 insufficient_scope the InsufficientScopeError its step-up starts from)
 * and the response as it came over the wire.
 */
async function callRefused(
  session: Session,
  name: string,
  status: number,
): Promise<{ body: JsonRpcErrorBody; response: Response }> {
  let thrown: unknown;
  try {
    await session.client.callTool({ name, arguments: {} });
  } catch (error) {
    thrown = error;
  }
  assert.ok(thrown !== undefined, `${name} should have been refused`);
  const response = lastPost(session);
  assert.equal(response.status, status);
  const body = (await response.json()) as JsonRpcErrorBody;
  if (thrown instanceof SdkHttpError) {
    assert.equal(thrown.status, status);
  } else if (thrown instanceof InsufficientScopeError) {
    assert.equal(status, 403);
    assert.deepEqual(thrown.requiredScope?.split(" "), body.error.data.step_up?.scopes);
  } else {
    assert.deepEqual(refusal(thrown, status), body);
  }
  return { body, response };
}

function executionsOf(name: string): number {
  return mcp.executions.get(name) ?? 0;
}

// ------------------------------------------------------------------ scenarios

describe("tools/call", () => {
  for (const { name: sdk, era, version, sse } of eras) {
    test(`${sdk}: a reader calls a read tool: allowed, the tool runs (MCP ${version})`, async () => {
      const before = executionsOf("read_file");
      await withSession(
        { token: await reader(), headers: unmanagedOffice, era, path: sse },
        async (session) => {
          assert.equal(session.protocolVersion, version);
          const result = await session.client.callTool({ name: "read_file", arguments: {} });
          assert.deepEqual(result.content, [{ type: "text", text: "read_file ran" }]);
        },
      );
      assert.equal(executionsOf("read_file"), before + 1);
    });

    test(`${sdk}: a destructive tool without mcp:admin: 403 naming the step-up scope; the tool does not run`, async () => {
      await destructiveWithoutAdmin({ era, path: sse });
    });

    test(`${sdk}: a destructive tool when auth_time is older than 900 s: 403 asking for a fresh sign-in`, async () => {
      await staleSignIn({ era, path: sse });
    });
  }

  async function destructiveWithoutAdmin(where: ConnectOptions): Promise<void> {
    const before = executionsOf("delete_repo");
    const options = { ...where, token: await writer(), headers: compliantOffice };
    await withSession(options, async (session) => {
      const { body, response } = await callRefused(session, "delete_repo", 403);
      assert.equal(response.status, 403);
      assert.equal(
        response.headers.get("www-authenticate"),
        `Bearer error="insufficient_scope", scope="mcp:admin", acr_values="mfa", resource_metadata="${resourceMetadataUrl}"`,
      );
      // The SDK's own parser reads what its OAuth step-up would use.
      const params = extractWWWAuthenticateParams(response);
      assert.equal(params.error, "insufficient_scope");
      assert.equal(params.scope, "mcp:admin");
      assert.equal(params.resourceMetadataUrl?.href, resourceMetadataUrl);

      assert.equal(body.jsonrpc, "2.0");
      assert.equal(typeof body.id, "number");
      assert.equal(body.error.code, -32003);
      assert.deepEqual([...body.error.data.reasons].sort(), ["acr_insufficient", "scope_missing"]);
      assert.match(body.error.data.decision_id ?? "", /^[0-9a-f-]{36}$/);
      assert.deepEqual(body.error.data.step_up, { scopes: ["mcp:admin"], acr_values: ["mfa"] });
      assert.match(body.error.message, /permission/);
    });
    assert.equal(executionsOf("delete_repo"), before);
  }

  async function staleSignIn(where: ConnectOptions): Promise<void> {
    const before = executionsOf("delete_repo");
    const stale = { ...where, token: await staleAdmin(), headers: compliantOffice };
    await withSession(stale, async (session) => {
      const { body, response } = await callRefused(session, "delete_repo", 403);
      assert.deepEqual(body.error.data.reasons, ["auth_too_old"]);
      assert.equal(
        response.headers.get("www-authenticate"),
        `Bearer error="insufficient_user_authentication", max_age=900, resource_metadata="${resourceMetadataUrl}"`,
      );
    });
    assert.equal(executionsOf("delete_repo"), before);
    // Signed in 300 s ago, with MFA, from a compliant device: allowed.
    const fresh = { ...where, token: await admin(), headers: compliantOffice };
    await withSession(fresh, async (session) => {
      const result = await session.client.callTool({ name: "delete_repo", arguments: {} });
      assert.deepEqual(result.content, [{ type: "text", text: "delete_repo ran" }]);
    });
    assert.equal(executionsOf("delete_repo"), before + 1);
  }

  for (const { name: sdk, era, sse } of eras) {
    test(`${sdk}: with an OAuth provider, the SDK client starts a step-up authorization for the named scope`, async () => {
      const writerToken = await writer();
      const redirects: URL[] = [];
      const provider: OAuthClientProvider = {
        get redirectUrl() {
          return "http://127.0.0.1/callback";
        },
        get clientMetadata() {
          return { redirect_uris: ["http://127.0.0.1/callback"], client_name: "pep-e2e" };
        },
        clientInformation: () => ({ client_id: "pep-e2e" }),
        tokens: () => ({ access_token: writerToken, token_type: "Bearer" }),
        saveTokens: () => undefined,
        redirectToAuthorization: (url) => {
          redirects.push(url);
        },
        saveCodeVerifier: () => undefined,
        codeVerifier: () => "unused",
      };
      const before = executionsOf("delete_repo");
      const options = { authProvider: provider, headers: compliantOffice, era, path: sse };
      await withSession(options, async (session) => {
        await assert.rejects(
          session.client.callTool({ name: "delete_repo", arguments: {} }),
          era === "v2" ? UnauthorizedErrorV2 : UnauthorizedError,
        );
      });
      const [redirect] = redirects;
      assert.ok(redirect !== undefined, "the SDK should have started an authorization");
      assert.equal(redirect.origin + redirect.pathname, `${mcp.origin}/authorize`);
      assert.equal(redirect.searchParams.get("scope"), "mcp:admin");
      assert.equal(redirect.searchParams.get("resource"), resource);
      assert.equal(executionsOf("delete_repo"), before);
    });
  }

  test("a write tool from an unmanaged device: 403 device_untrusted, no step-up offered", async () => {
    const before = executionsOf("write_file");
    await withSession({ token: await writer(), headers: unmanagedOffice }, async (session) => {
      const { body, response } = await callRefused(session, "write_file", 403);
      assert.equal(response.headers.get("www-authenticate"), null);
      assert.deepEqual(body.error.data.reasons, ["device_untrusted"]);
      assert.equal(body.error.data.step_up, undefined);
    });
    assert.equal(executionsOf("write_file"), before);
    // The same caller from a managed device may write.
    await withSession({ token: await writer(), headers: managedOffice }, async (session) => {
      const result = await session.client.callTool({ name: "write_file", arguments: {} });
      assert.deepEqual(result.content, [{ type: "text", text: "write_file ran" }]);
    });
    assert.equal(executionsOf("write_file"), before + 1);
  });

  test("an unknown tool is refused (unknown_tool: destructive) before the SDK sees it", async () => {
    const before = mcp.totalExecutions();
    await withSession({ token: await writer(), headers: managedOffice }, async (session) => {
      const { body } = await callRefused(session, "format_disk", 403);
      assert.ok(body.error.data.reasons.includes("scope_missing"), body.error.data.reasons.join());
    });
    assert.equal(mcp.totalExecutions(), before);
  });

  test("lying annotations (readOnlyHint on a catalogued destructive tool) do not lower its class", async () => {
    const before = executionsOf("delete_cache");
    await withSession({ token: await writer(), headers: compliantOffice }, async (session) => {
      const { body } = await callRefused(session, "delete_cache", 403);
      assert.ok(body.error.data.reasons.includes("scope_missing"));
    });
    assert.equal(executionsOf("delete_cache"), before);
  });
});

describe("identity", () => {
  test("no token: 401 with resource_metadata, from the first request (initialize)", async () => {
    const before = mcp.totalExecutions();
    let thrown: unknown;
    try {
      await connect({ headers: compliantOffice });
    } catch (error) {
      thrown = error;
    }
    const body = refusal(thrown, 401);
    assert.deepEqual(body.error.data.reasons, ["token_missing"]);
    const [response] = (thrown as { responses: Response[] }).responses;
    assert.equal(response?.status, 401);
    assert.equal(
      response.headers.get("www-authenticate"),
      `Bearer resource_metadata="${resourceMetadataUrl}"`,
    );
    assert.equal(
      extractWWWAuthenticateParams(response).resourceMetadataUrl?.href,
      resourceMetadataUrl,
    );
    assert.equal(mcp.totalExecutions(), before);
  });

  test("a token minted for another registered server (git): 401 invalid_token, nothing runs", async () => {
    const before = mcp.totalExecutions();
    let thrown: unknown;
    try {
      await connect({
        token: await token({ scope: "mcp:read mcp:write mcp:admin", aud: gitResource }),
        headers: compliantOffice,
      });
    } catch (error) {
      thrown = error;
    }
    const body = refusal(thrown, 401);
    assert.deepEqual(body.error.data.reasons, ["token_wrong_audience"]);
    assert.equal(mcp.totalExecutions(), before);
    const [response] = (thrown as { responses: Response[] }).responses;
    assert.equal(
      response?.headers.get("www-authenticate"),
      `Bearer error="invalid_token", resource_metadata="${resourceMetadataUrl}"`,
    );
  });

  test("a PEP for a server outside the PDP's registry: 403 server_unknown, nothing runs", async () => {
    const before = mcp.totalExecutions();
    let thrown: unknown;
    try {
      await connect({
        path: "/mcp-unregistered",
        token: await token({ scope: "mcp:read mcp:write mcp:admin" }),
        headers: compliantOffice,
      });
    } catch (error) {
      thrown = error;
    }
    const body = refusal(thrown, 403);
    assert.deepEqual(body.error.data.reasons, ["server_unknown"]);
    assert.equal(mcp.totalExecutions(), before);
  });

  test("a malformed Authorization header: 401 token_malformed without asking the PDP", async () => {
    const response = await fetch(`${mcp.origin}/mcp`, {
      method: "POST",
      headers: {
        authorization: "Bearer two tokens",
        "content-type": "application/json",
        accept: "application/json, text/event-stream",
      },
      body: JSON.stringify({ jsonrpc: "2.0", id: 7, method: "tools/list" }),
    });
    assert.equal(response.status, 401);
    const body = (await response.json()) as JsonRpcErrorBody;
    assert.equal(body.id, 7);
    assert.deepEqual(body.error.data.reasons, ["token_malformed"]);
    assert.equal(body.error.data.decision_id, null);
  });
});

describe("tools/list is filtered to exactly what the caller may call", () => {
  const cases = [
    { who: "a reader", caller: reader, where: unmanagedOffice, sees: ["read_file", "search_code"] },
    {
      who: "a writer on a managed device",
      caller: writer,
      where: managedOffice,
      sees: ["read_file", "search_code", "write_file"],
    },
    {
      who: "a writer on an unmanaged device",
      caller: writer,
      where: unmanagedOffice,
      sees: ["read_file", "search_code"],
    },
    {
      who: "a fresh MFA admin on a compliant device",
      caller: admin,
      where: compliantOffice,
      sees: [...toolNames].sort(),
    },
  ];
  for (const { name: sdk, era, sse, json } of eras) {
    for (const path of [sse, json]) {
      const mode = path === sse ? "SSE" : "JSON";
      for (const { who, caller, where, sees } of cases) {
        test(`${sdk}: ${who} (${mode} responses)`, async () => {
          const options = { token: await caller(), headers: where, path, era };
          await withSession(options, async (session) => {
            const listed = await session.client.listTools();
            assert.deepEqual(listed.tools.map((tool) => tool.name).sort(), sees);
            const post = lastPost(session);
            assert.equal(
              post.headers.get("content-type")?.split(";")[0],
              mode === "SSE" ? "text/event-stream" : "application/json",
            );
            // Decided for this caller: cacheable for nobody else (the v2 server said "public").
            assert.match(await post.text(), /"cacheScope":"private"/);
          });
        });
      }
    }

    test(`${sdk}: every listed tool can be called and every hidden one is refused (reader and writer)`, async () => {
      await everyListedToolRuns({ era, path: sse });
    });
  }

  test("SDK v2: subscriptions/listen is authorized as a read and its stream passes the PEP untouched: a reader hears tools/list_changed", async () => {
    const from = pdp.decisions.length;
    const options = { token: await reader(), headers: unmanagedOffice, era: "v2" as const };
    await withSession(options, async (session) => {
      const client = session.v2;
      assert.ok(client !== undefined);
      let changed: () => void = () => undefined;
      const heard = new Promise<void>((resolve) => {
        changed = resolve;
      });
      client.setNotificationHandler("notifications/tools/list_changed", () => {
        changed();
      });
      const subscription = await client.listen({ toolsListChanged: true });
      mcp.notifyToolsChanged();
      let timer: NodeJS.Timeout | undefined;
      await Promise.race([
        heard,
        new Promise((_, reject) => {
          timer = setTimeout(() => {
            reject(new Error("no notifications/tools/list_changed within 3 s"));
          }, 3000);
        }),
      ]).finally(() => {
        clearTimeout(timer);
      });
      await subscription.close();
    });
    const listen = pdp.decisions
      .slice(from)
      .filter((record) => record.action === "subscriptions/listen")
      .map((record) => record.outcome);
    assert.deepEqual(listen, ["allow"]);
  });

  test("SDK 1.x client on the v2 server (its stateless 2025 serving): filtered list, the read runs, the write is refused", async () => {
    const before = executionsOf("read_file");
    const options = { token: await reader(), headers: unmanagedOffice, path: "/mcp/v2" };
    await withSession(options, async (session) => {
      assert.equal(session.protocolVersion, "2025-11-25");
      const listed = await session.client.listTools();
      assert.deepEqual(listed.tools.map((tool) => tool.name).sort(), ["read_file", "search_code"]);
      await session.client.callTool({ name: "read_file", arguments: {} });
      const { body } = await callRefused(session, "write_file", 403);
      assert.ok(body.error.data.reasons.includes("scope_missing"), body.error.data.reasons.join());
    });
    assert.equal(executionsOf("read_file"), before + 1);
  });

  test("SDK v2: a response cache shared by two callers keeps each one's filtered list (cacheScope private)", async () => {
    // One store behind two clients, partitioned per caller as the v2 client does for private
    // entries. The server declared its list public for 60 s: had the PEP kept that, the admin
    // would be served the reader's list from the shared slot without asking.
    const store = new InMemoryResponseCacheStore();
    const as = async (partition: string, caller: () => Promise<string>, where: object) =>
      withSession(
        {
          token: await caller(),
          headers: where as Record<string, string>,
          era: "v2",
          cache: { store, partition },
        },
        async (session) => {
          const first = await session.client.listTools();
          const exchanges = session.responses.length;
          const second = await session.client.listTools();
          return {
            first: first.tools.map((t) => t.name).sort(),
            second: second.tools.map((t) => t.name).sort(),
            fromCache: session.responses.length === exchanges,
          };
        },
      );
    const readerLists = await as("alice-reader", reader, unmanagedOffice);
    assert.deepEqual(readerLists.first, ["read_file", "search_code"]);
    const adminLists = await as("alice-admin", admin, compliantOffice);
    assert.deepEqual(adminLists.first, [...toolNames].sort());
    // Within one caller's partition the server's ttlMs still works: each second list came from
    // the cache, so the cache was in play when the admin's first list was not served from it.
    assert.deepEqual(readerLists, { ...readerLists, second: readerLists.first, fromCache: true });
    assert.deepEqual(adminLists, { ...adminLists, second: adminLists.first, fromCache: true });
  });

  async function everyListedToolRuns(where: ConnectOptions): Promise<void> {
    for (const { caller, where: office, sees } of cases.slice(0, 2)) {
      await withSession({ ...where, token: await caller(), headers: office }, async (session) => {
        for (const name of toolNames) {
          if (sees.includes(name)) {
            const before = executionsOf(name);
            await session.client.callTool({ name, arguments: {} });
            assert.equal(executionsOf(name), before + 1, name);
          } else {
            await callRefused(session, name, 403);
          }
        }
      });
    }
  }
});

describe("batches and outages", () => {
  async function post(
    path: string,
    bearer: string | undefined,
    body: unknown,
    headers: Record<string, string> = {},
  ): Promise<{ status: number; contentType: string | null; body: unknown }> {
    const response = await fetch(`${mcp.origin}${path}`, {
      method: "POST",
      headers: {
        "content-type": "application/json",
        accept: "application/json, text/event-stream",
        ...(bearer === undefined ? {} : { authorization: `Bearer ${bearer}` }),
        ...headers,
      },
      body: JSON.stringify(body),
    });
    const text = await response.text();
    return {
      status: response.status,
      contentType: response.headers.get("content-type"),
      body: text === "" ? undefined : JSON.parse(text),
    };
  }

  const call = (id: number, name: string) => ({
    jsonrpc: "2.0",
    id,
    method: "tools/call",
    params: { name, arguments: {} },
  });

  test("a batch with one forbidden call is refused entirely; nothing runs", async () => {
    const before = mcp.totalExecutions();
    const reply = await post(
      "/mcp",
      await writer(),
      [call(1, "read_file"), call(2, "delete_repo")],
      compliantOffice,
    );
    assert.equal(reply.status, 403);
    const [first, second] = reply.body as JsonRpcErrorBody[];
    assert.equal(first?.id, 1);
    assert.deepEqual(first.error.data.reasons, ["batch_denied"]);
    assert.equal(second?.id, 2);
    assert.ok(second.error.data.reasons.includes("scope_missing"));
    assert.equal(mcp.totalExecutions(), before);
  });

  test("an allowed batch runs, and a tools/list inside it is filtered", async () => {
    const before = executionsOf("read_file");
    const reply = await post(
      "/mcp-json",
      await reader(),
      [call(1, "read_file"), { jsonrpc: "2.0", id: 2, method: "tools/list" }],
      unmanagedOffice,
    );
    assert.equal(reply.status, 200);
    const answers = reply.body as { id: number; result: { tools?: { name: string }[] } }[];
    const list = answers.find((answer) => answer.id === 2);
    assert.deepEqual(list?.result.tools?.map((t) => t.name).sort(), ["read_file", "search_code"]);
    assert.equal(executionsOf("read_file"), before + 1);
  });

  test("PDP down: 503 JSON-RPC error, fail closed, nothing runs", async () => {
    const before = mcp.totalExecutions();
    const errorsBefore = pepErrors.length;
    let thrown: unknown;
    try {
      await connect({ token: await admin(), headers: compliantOffice, path: "/mcp-pdp-down" });
    } catch (error) {
      thrown = error;
    }
    const body = refusal(thrown, 503);
    assert.deepEqual(body.error.data.reasons, ["pdp_unavailable"]);
    assert.equal(body.error.code, -32003);

    const reply = await post("/mcp-pdp-down", await admin(), call(9, "read_file"), compliantOffice);
    assert.equal(reply.status, 503);
    assert.equal((reply.body as JsonRpcErrorBody).id, 9);
    assert.equal(mcp.totalExecutions(), before);
    const reported = pepErrors.slice(errorsBefore);
    assert.equal(reported.length, 2);
    assert.ok(
      reported.every((error) => /unreachable/.test(error.message)),
      String(reported),
    );
  });
});

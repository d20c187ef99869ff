import { Client } from "@modelcontextprotocol/sdk/client/index.js";
import { extractWWWAuthenticateParams } from "@modelcontextprotocol/sdk/client/auth.js";
import {
  StreamableHTTPClientTransport,
  StreamableHTTPError,
} from "@modelcontextprotocol/sdk/client/streamableHttp.js";
import type { FetchLike } from "@modelcontextprotocol/sdk/shared/transport.js";
import {
  Client as ClientV2,
  InsufficientScopeError,
  SdkHttpError,
  StreamableHTTPClientTransport as StreamableHTTPClientTransportV2,
} from "@modelcontextprotocol/client";

/**
 * Which official SDK client talks: 1.x (`@modelcontextprotocol/sdk`, MCP
 * 2025-11-25, initialize) or v2 (`@modelcontextprotocol/client`, negotiating
 * MCP 2026-07-28 through server/discover; it sends Mcp-Method and Mcp-Name
 * itself, as that revision requires).
 */
export type SdkEra = "1.x" | "v2";

/** The MCP revision each era's client ends up speaking with the e2e server (which speaks both). */
export const eraRevision: Record<SdkEra, string> = { "1.x": "2025-11-25", v2: "2026-07-28" };

/** One HTTP exchange of the SDK client, as it went over the wire. */
export interface Exchange {
  /** The JSON-RPC method(s) of the request body ("GET" / "DELETE" without a body). */
  methods: string[];
  requestHeaders: Headers;
  status: number;
  headers: Headers;
  body: string;
  /** What the SDK's own WWW-Authenticate parser reads from this response. */
  wwwAuthenticate: ReturnType<typeof extractWWWAuthenticateParams>;
}

function methodsOf(init: RequestInit | undefined): string[] {
  if (typeof init?.body !== "string") return [init?.method ?? "GET"];
  try {
    const parsed: unknown = JSON.parse(init.body);
    const messages: unknown[] = Array.isArray(parsed) ? parsed : [parsed];
    return messages.map((m) =>
      typeof m === "object" && m !== null && "method" in m ? String(m.method) : "response",
    );
  } catch {
    return ["?"];
  }
}

/**
 * What an SEP-2243 client sends and SDK 1.32.2 does not yet: `Mcp-Method` on
 * every POST and `Mcp-Name` for named targets, mirrored from the body. Wrapped
 * around fetch, it lets headers-only proxies see what is being called.
 */
export function sep2243Fetch(base: FetchLike = fetch): FetchLike {
  return (url, init) => {
    if (typeof init?.body !== "string") return base(url, init);
    const headers = new Headers(init.headers);
    try {
      const message = JSON.parse(init.body) as {
        method?: unknown;
        params?: { name?: unknown; uri?: unknown };
      };
      if (!Array.isArray(message) && typeof message.method === "string") {
        headers.set("mcp-method", message.method);
        const name = message.params?.name ?? message.params?.uri;
        if (typeof name === "string") headers.set("mcp-name", name);
      }
    } catch {
      // not JSON: sent as is
    }
    return base(url, { ...init, headers });
  };
}

/** A fetch that records every exchange (response bodies are cloned, not consumed). */
export function recordingFetch(exchanges: Exchange[], base: FetchLike = fetch): FetchLike {
  return async (url, init) => {
    const response = await base(url, init);
    const body = await response
      .clone()
      .text()
      .catch(() => "");
    exchanges.push({
      methods: methodsOf(init),
      requestHeaders: new Headers(init?.headers),
      status: response.status,
      headers: response.headers,
      body,
      wwwAuthenticate: extractWWWAuthenticateParams(response),
    });
    return response;
  };
}

export interface ClientOptions {
  token?: string | undefined;
  /** The x-device-trust header (the tests' stand-in for what a device-posture check would set). */
  device?: string | undefined;
  /** Mirror the method and tool name into Mcp-Method / Mcp-Name (SEP-2243); 1.x only (v2 sends them). */
  sep2243?: boolean;
  extraHeaders?: Record<string, string>;
  /** Default 1.x. */
  era?: SdkEra;
}

/** What the scenarios use of either era's client (both have this shape). */
export interface McpClient {
  callTool: (params: {
    name: string;
    arguments: Record<string, unknown>;
  }) => Promise<Record<string, unknown>>;
  listTools: () => Promise<{ tools: { name: string }[] }>;
}

/** The official SDK client, through `url`, with its exchanges recorded. */
export interface SdkSession {
  client: McpClient;
  exchanges: Exchange[];
  /** 1.x: initialize + notifications/initialized; v2: server/discover; through the proxy. */
  connect: () => Promise<void>;
  /** The revision the client negotiated (after connect). */
  protocolVersion: () => string | undefined;
  /** The last exchange whose body carried `method`. */
  last: (method: string) => Exchange | undefined;
  close: () => Promise<void>;
}

export function headersFor(options: ClientOptions): Record<string, string> {
  const headers: Record<string, string> = { ...options.extraHeaders };
  if (options.token !== undefined) headers.authorization = `Bearer ${options.token}`;
  if (options.device !== undefined) headers["x-device-trust"] = options.device;
  return headers;
}

/** Creates the SDK client and its Streamable HTTP transport; nothing is sent yet. */
export function sdkSession(url: string, options: ClientOptions = {}): SdkSession {
  if (options.era === "v2") return sdkSessionV2(url, options);
  const exchanges: Exchange[] = [];
  // The recorder sits closest to the wire: it sees the headers the SEP-2243 wrapper added.
  const recording = recordingFetch(exchanges, fetch);
  const transport = new StreamableHTTPClientTransport(new URL(url), {
    requestInit: { headers: headersFor(options) },
    fetch: options.sep2243 === true ? sep2243Fetch(recording) : recording,
  });
  const client = new Client({ name: "mcp-pdp-e2e", version: "1.0.0" });
  return {
    client,
    exchanges,
    connect: () => client.connect(transport),
    protocolVersion: () => transport.protocolVersion,
    last: (method) => exchanges.filter((e) => e.methods.includes(method)).at(-1),
    close: async () => {
      await client.close().catch(() => undefined);
      await transport.close().catch(() => undefined);
    },
  };
}

/** The v2 client, with version negotiation on: the newest revision both sides speak. */
function sdkSessionV2(url: string, options: ClientOptions): SdkSession {
  const exchanges: Exchange[] = [];
  const transport = new StreamableHTTPClientTransportV2(new URL(url), {
    requestInit: { headers: headersFor(options) },
    fetch: recordingFetch(exchanges, fetch),
  });
  const client = new ClientV2(
    { name: "mcp-pdp-e2e", version: "2.0.0" },
    { versionNegotiation: { mode: "auto" } },
  );
  return {
    client,
    exchanges,
    connect: () => client.connect(transport),
    protocolVersion: () => transport.protocolVersion,
    last: (method) => exchanges.filter((e) => e.methods.includes(method)).at(-1),
    close: async () => {
      await client.close().catch(() => undefined);
      await transport.close().catch(() => undefined);
    },
  };
}

/** Creates the session and connects it. */
export async function connectSession(
  url: string,
  options: ClientOptions = {},
): Promise<SdkSession> {
  const session = sdkSession(url, options);
  await session.connect();
  return session;
}

/** How an SDK client reports a refused POST. */
export interface SdkRefusal {
  /** The HTTP status. */
  code: number | undefined;
  /** 1.x: ends with the response body; v2: the SDK's own words. */
  message: string;
  /** v2, 403 insufficient_scope: the scope its step-up would ask for. */
  requiredScope?: string | undefined;
}

/**
 * Runs `action` and returns the refusal it must fail with: 1.x's
 * StreamableHTTPError, v2's SdkHttpError, or v2's InsufficientScopeError (a
 * 403 insufficient_scope, where its step-up authorization starts).
 */
export async function sdkHttpError(action: () => Promise<unknown>): Promise<SdkRefusal> {
  try {
    await action();
  } catch (error) {
    if (error instanceof StreamableHTTPError) return error;
    if (error instanceof SdkHttpError) return { code: error.status, message: error.message };
    if (error instanceof InsufficientScopeError) {
      return { code: 403, message: error.message, requiredScope: error.requiredScope };
    }
    throw new Error(`expected an SDK HTTP error, got: ${String(error)}`, { cause: error });
  }
  throw new Error("expected the SDK call to fail, it succeeded");
}

/** A raw JSON-RPC POST, as a client that bypasses the SDK would send it. */
export async function postRpc(
  url: string,
  body: unknown,
  headers: Record<string, string> = {},
): Promise<{ status: number; headers: Headers; text: string; json: unknown }> {
  const response = await fetch(url, {
    method: "POST",
    headers: {
      "content-type": "application/json",
      accept: "application/json, text/event-stream",
      ...headers,
    },
    body: typeof body === "string" ? body : JSON.stringify(body),
  });
  const text = await response.text();
  let json: unknown;
  try {
    json = JSON.parse(text);
  } catch {
    json = undefined;
  }
  return { status: response.status, headers: response.headers, text, json };
}

let nextId = 1;

/** A tools/call JSON-RPC request. */
export function toolCall(
  name: string,
  args: Record<string, unknown> = {},
): Record<string, unknown> {
  nextId += 1;
  return { jsonrpc: "2.0", id: nextId, method: "tools/call", params: { name, arguments: args } };
}

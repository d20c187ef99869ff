/**
 * A real MCP server for the PEP tests, on express on 127.0.0.1, built with
 * either era of the official SDK: 1.x (`@modelcontextprotocol/sdk`: McpServer
 * and StreamableHTTPServerTransport, stateless, a fresh pair per request, as
 * the SDK's stateless example does) or v2 (`@modelcontextprotocol/server`:
 * createMcpHandler, which negotiates MCP 2026-07-28 through server/discover
 * and serves 2025 clients statelessly). A route can instead be resumable:
 * sessions and an event store, so that a client can resume a stream with
 * `GET` + `Last-Event-ID` (both eras' 2025 stateful transports). It counts
 * every tool execution, so a test can prove that a refused call never ran.
 */
import { randomUUID } from "node:crypto";
import { createServer, type IncomingMessage, type Server } from "node:http";
import type { AddressInfo } from "node:net";
import { McpServer } from "@modelcontextprotocol/sdk/server/mcp.js";
import { StreamableHTTPServerTransport } from "@modelcontextprotocol/sdk/server/streamableHttp.js";
import { isInitializeRequest } from "@modelcontextprotocol/sdk/types.js";
import {
  createMcpHandler,
  McpServer as McpServerV2,
  WebStandardStreamableHTTPServerTransport,
  type McpHttpHandler,
} from "@modelcontextprotocol/server";
import express, { type Express, type RequestHandler } from "express";
import type { McpAuthorizationMiddleware } from "../../src/pep/index.ts";
import { MemoryEventStore } from "../conformance/scenario-server.ts";
import { serveWithFetchHandler } from "../e2e/support/web-handler.ts";

/** The tools the server exposes, with the annotations it declares for them. */
export const serverTools = {
  /** Catalogued `files/read_*`: read. */
  read_file: { readOnlyHint: true, destructiveHint: false },
  /** Catalogued `files/write_file`: write. */
  write_file: { readOnlyHint: false, destructiveHint: false },
  /** Catalogued `files/delete_*`: destructive. */
  delete_repo: { readOnlyHint: false, destructiveHint: true },
  /** Not catalogued; honest annotations on a trusted server: read. */
  search_code: { readOnlyHint: true },
  /** Catalogued `files/delete_*` (destructive), but it claims to be read-only. */
  delete_cache: { readOnlyHint: true },
} as const;

export type ToolName = keyof typeof serverTools;
export const toolNames = Object.keys(serverTools) as ToolName[];

/** The annotations lookup a PEP uses for tools/call. */
export function annotationsOf(name: string): Record<string, unknown> | undefined {
  return Object.hasOwn(serverTools, name) ? { ...serverTools[name as ToolName] } : undefined;
}

/** Which SDK the route's server is built with. */
export type SdkEra = "1.x" | "v2";

export interface McpRoute {
  path: string;
  pep: McpAuthorizationMiddleware;
  /** application/json answers (1.x `enableJsonResponse`, v2 `responseMode: "json"`) instead of SSE. */
  json: boolean;
  /** Default 1.x. */
  era?: SdkEra;
  /**
   * Stateful with an event store (SSE only): `initialize` opens a session, and
   * every message of every stream is stored, so that a `GET` with
   * `Last-Event-ID` replays what came after that event on its stream.
   */
  resumable?: boolean;
}

export interface RunningMcpServer {
  /** e.g. http://127.0.0.1:40123 */
  origin: string;
  /** Tool executions so far, by tool name. */
  executions: Map<string, number>;
  /** Every tool execution in one number. */
  totalExecutions: () => number;
  /** Tells every open v2 `subscriptions/listen` stream that the tool list changed. */
  notifyToolsChanged: () => void;
  /** Mounts the routes (the PEPs usually need the server's URL first). */
  mount: (routes: McpRoute[]) => void;
  close: () => Promise<void>;
}

function buildMcpServer(executions: Map<string, number>): McpServer {
  const server = new McpServer({ name: "files", version: "1.0.0" });
  for (const name of toolNames) {
    server.registerTool(
      name,
      { description: `the ${name} tool`, annotations: { ...serverTools[name] } },
      () => {
        executions.set(name, (executions.get(name) ?? 0) + 1);
        return { content: [{ type: "text", text: `${name} ran` }] };
      },
    );
  }
  return server;
}

function mcpHandler(executions: Map<string, number>, json: boolean): RequestHandler {
  return async (req, res) => {
    const server = buildMcpServer(executions);
    // Stateless: no sessionIdGenerator (left out rather than `undefined`, for exactOptionalPropertyTypes).
    const transport = new StreamableHTTPServerTransport({ enableJsonResponse: json });
    res.on("close", () => {
      void transport.close();
      void server.close();
    });
    await server.connect(transport);
    await transport.handleRequest(req, res, req.body);
  };
}

/**
 * The same tools on the v2 SDK. The server declares its (unfiltered) tool list
 * the same for every caller and cacheable for a minute (`cacheScope: "public"`),
 * as an honest server without a PEP would: the PEP's filtering must take that back.
 */
function buildMcpServerV2(executions: Map<string, number>): McpServerV2 {
  const server = new McpServerV2(
    { name: "files", version: "1.0.0" },
    { cacheHints: { "tools/list": { ttlMs: 60_000, cacheScope: "public" } } },
  );
  for (const name of toolNames) {
    server.registerTool(
      name,
      { description: `the ${name} tool`, annotations: { ...serverTools[name] } },
      () => {
        executions.set(name, (executions.get(name) ?? 0) + 1);
        return { content: [{ type: "text", text: `${name} ran` }] };
      },
    );
  }
  return server;
}

/** One session's transport, of either era, as the resumable route drives it. */
interface SessionTransport {
  serve: RequestHandler;
  close: () => Promise<void>;
}

/**
 * Sessions with one event store for all of them (what a server deploys for
 * resumable streams): an unknown session is a 404, a request without one that
 * is not `initialize` a 400, as the SDKs' stateful examples answer.
 */
function resumableHandler(
  executions: Map<string, number>,
  era: SdkEra,
): { serve: RequestHandler; close: () => Promise<void> } {
  const sessions = new Map<string, SessionTransport>();
  const eventStore = new MemoryEventStore();
  const open = async (): Promise<SessionTransport> => {
    const sessionIdGenerator = randomUUID;
    const onsessioninitialized = (id: string) => {
      sessions.set(id, session);
    };
    let session: SessionTransport;
    if (era === "v2") {
      const transport = new WebStandardStreamableHTTPServerTransport({
        sessionIdGenerator,
        eventStore,
        onsessioninitialized,
      });
      await buildMcpServerV2(executions).connect(transport);
      session = {
        serve: (req, res, next) => {
          serveWithFetchHandler(
            (request, options) => transport.handleRequest(request, options),
            req,
            res,
          ).catch(next);
        },
        close: () => transport.close(),
      };
    } else {
      const transport = new StreamableHTTPServerTransport({
        sessionIdGenerator,
        eventStore,
        onsessioninitialized,
      });
      await buildMcpServer(executions).connect(transport);
      session = {
        serve: (req, res) => transport.handleRequest(req, res, req.body),
        close: () => transport.close(),
      };
    }
    return session;
  };
  return {
    serve: async (req, res, next) => {
      const header = req.headers["mcp-session-id"];
      const id = typeof header === "string" ? header : undefined;
      let session = id === undefined ? undefined : sessions.get(id);
      if (id !== undefined && session === undefined) {
        res.status(404).json({
          jsonrpc: "2.0",
          id: null,
          error: { code: -32001, message: "Session not found" },
        });
        return;
      }
      if (session === undefined) {
        if (req.method !== "POST" || !isInitializeRequest(req.body)) {
          res
            .status(400)
            .json({ jsonrpc: "2.0", id: null, error: { code: -32600, message: "No session." } });
          return;
        }
        session = await open();
      }
      await session.serve(req, res, next);
    },
    close: async () => {
      await Promise.all([...sessions.values()].map((session) => session.close()));
    },
  };
}

const methodNotAllowed: RequestHandler = (_req, res) => {
  res
    .status(405)
    .set("allow", "POST")
    .json({
      jsonrpc: "2.0",
      id: null,
      error: { code: -32000, message: "Method not allowed." },
    });
};

/** Starts the HTTP server (routes come later, through mount). */
export async function startMcpServer(): Promise<RunningMcpServer> {
  const executions = new Map<string, number>();
  const handlers: McpHttpHandler[] = [];
  const resumables: { close: () => Promise<void> }[] = [];
  let app: Express | undefined;
  const server: Server = createServer((req, res) => {
    if (app === undefined) {
      res.writeHead(503).end();
      return;
    }
    app(req, res);
  });
  await new Promise<void>((resolve) => {
    server.listen(0, "127.0.0.1", resolve);
  });
  const origin = `http://127.0.0.1:${(server.address() as AddressInfo).port}`;

  return {
    origin,
    executions,
    totalExecutions: () => [...executions.values()].reduce((sum, n) => sum + n, 0),
    notifyToolsChanged: () => {
      for (const handler of handlers) handler.notify.toolsChanged();
    },
    mount(routes) {
      const mounted = express();
      mounted.use(express.json());
      for (const route of routes) {
        if (route.resumable === true) {
          const resumable = resumableHandler(executions, route.era ?? "1.x");
          resumables.push(resumable);
          mounted.all(route.path, route.pep, resumable.serve);
          continue;
        }
        if (route.era === "v2") {
          const handler = createMcpHandler(() => buildMcpServerV2(executions), {
            responseMode: route.json ? "json" : "sse",
          });
          handlers.push(handler);
          // One route for every HTTP method: the PEP refuses what it does not authorize.
          mounted.all(route.path, route.pep, (req, res, next) => {
            serveWithFetchHandler(handler.fetch, req, res).catch(next);
          });
          continue;
        }
        mounted.post(route.path, route.pep, mcpHandler(executions, route.json));
        mounted.get(route.path, route.pep, methodNotAllowed);
        mounted.delete(route.path, route.pep, methodNotAllowed);
      }
      // RFC 9728 metadata and RFC 8414 authorization server metadata, for the SDK's step-up flow.
      mounted.get("/.well-known/oauth-protected-resource/mcp", (_req, res) => {
        res.json({
          resource: `${origin}/mcp`,
          authorization_servers: [origin],
          scopes_supported: ["mcp:read", "mcp:write", "mcp:admin"],
        });
      });
      mounted.get("/.well-known/oauth-authorization-server", (_req, res) => {
        res.json({
          issuer: origin,
          authorization_endpoint: `${origin}/authorize`,
          token_endpoint: `${origin}/token`,
          response_types_supported: ["code"],
          code_challenge_methods_supported: ["S256"],
        });
      });
      app = mounted;
    },
    close: async () => {
      await Promise.all([...handlers, ...resumables].map((handler) => handler.close()));
      await new Promise<void>((resolve, reject) => {
        server.closeAllConnections();
        server.close((error) => {
          if (error) reject(error);
          else resolve();
        });
      });
    },
  };
}

/** Device trust and client address as a trusted front proxy would set them. */
export function proxyContext(req: IncomingMessage): Record<string, unknown> {
  const context: Record<string, unknown> = {};
  const trust = req.headers["x-device-trust"];
  if (typeof trust === "string") context.device = { trust };
  const ip = req.headers["x-client-ip"];
  if (typeof ip === "string") context.ip = ip;
  return context;
}

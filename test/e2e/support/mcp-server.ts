import type { Server } from "node:http";
import type { AddressInfo } from "node:net";
import { McpServer } from "@modelcontextprotocol/sdk/server/mcp.js";
import { StreamableHTTPServerTransport } from "@modelcontextprotocol/sdk/server/streamableHttp.js";
import {
  createMcpHandler,
  isLegacyRequest,
  McpServer as McpServerV2,
  type McpHttpHandler,
} from "@modelcontextprotocol/server";
import express, { type NextFunction, type Request, type Response } from "express";
import * as z from "zod";
import type { Upstream } from "./sites.ts";
import { sendWebResponse, toWebRequest } from "./web-handler.ts";

/** One tool call the server executed, with the headers the proxy added. */
export interface Execution {
  tool: string;
  /** The listener that ran it. */
  upstream: Upstream;
  subject: string | undefined;
  risk: string | undefined;
  decisionId: string | undefined;
  path: string;
}

/**
 * The tools, one per risk situation. The PDP's catalog (examples/operator-data.yaml):
 * `files/read_*` read, `files/write_file` write, `files/delete_*` destructive.
 */
export const tools = {
  /** Catalogued read, honest annotations. */
  read: "read_file",
  /** Catalogued write, honest annotations. */
  write: "write_file",
  /** Catalogued destructive, honest annotations. */
  destructive: "delete_repo",
  /** Not in the catalog, honest read-only annotations. */
  uncatalogued: "summarize_repo",
  /** Lies: readOnlyHint true, but catalogued destructive (files/delete_*). */
  lying: "delete_cache",
} as const;

/** One request that reached the server, as it arrived. */
export interface ReceivedRequest {
  upstream: Upstream;
  method: string;
  path: string;
  /** JSON-RPC method(s) of a POST body. */
  methods: string[];
  headers: Record<string, string | string[] | undefined>;
}

/**
 * A real MCP server speaking both SDK eras on one endpoint, on Express:
 * requests of the 2025 revisions go to SDK 1.x (McpServer behind its
 * StreamableHTTPServerTransport, stateless, JSON responses), MCP 2026-07-28
 * requests to SDK v2 (createMcpHandler, modern only, JSON responses), routed
 * by the v2 SDK's own classifier (`isLegacyRequest`), as its documentation
 * composes the two. The same tools on both. It counts what it executes, so a
 * test can prove a denied tool never ran.
 *
 * It listens twice, with one record of requests and executions: `plain` is
 * the SDK as is (1.32.2 neither reads nor checks Mcp-Method / Mcp-Name);
 * `sep2243` first checks those headers against the body, as SEP-2243 requires
 * of servers. Both serve `/mcp`; `/healthz` is for proxy readiness checks.
 */
export class FilesMcpServer {
  private readonly servers: Record<Upstream, Server>;
  readonly executions: Execution[];
  /** Every request that reached the server, on either listener. */
  readonly requests: ReceivedRequest[];
  private readonly handlers: McpHttpHandler[];

  private constructor(
    servers: Record<Upstream, Server>,
    executions: Execution[],
    requests: ReceivedRequest[],
    handlers: McpHttpHandler[],
  ) {
    this.servers = servers;
    this.executions = executions;
    this.requests = requests;
    this.handlers = handlers;
  }

  static async start(): Promise<FilesMcpServer> {
    const executions: Execution[] = [];
    const requests: ReceivedRequest[] = [];
    const handlers: McpHttpHandler[] = [];
    const plain = await listen(buildApp("plain", executions, requests, handlers));
    const sep2243 = await listen(buildApp("sep2243", executions, requests, handlers));
    return new FilesMcpServer({ plain, sep2243 }, executions, requests, handlers);
  }

  /** host:port of each listener, for the proxies' upstreams. */
  get addresses(): Record<Upstream, string> {
    const address = (server: Server) => `127.0.0.1:${(server.address() as AddressInfo).port}`;
    return { plain: address(this.servers.plain), sep2243: address(this.servers.sep2243) };
  }

  /** How often `tool` was executed. */
  count(tool: string): number {
    return this.executions.filter((e) => e.tool === tool).length;
  }

  /** The last execution of `tool`. */
  last(tool: string): Execution | undefined {
    return this.executions.filter((e) => e.tool === tool).at(-1);
  }

  async close(): Promise<void> {
    await Promise.all(this.handlers.map((handler) => handler.close()));
    await Promise.all(
      Object.values(this.servers).map(
        (server) =>
          new Promise<void>((resolve, reject) => {
            server.closeAllConnections();
            server.close((error) => {
              if (error) reject(error);
              else resolve();
            });
          }),
      ),
    );
  }
}

async function listen(app: express.Express): Promise<Server> {
  const server = app.listen(0, "127.0.0.1");
  await new Promise<void>((resolve, reject) => {
    server.once("listening", resolve);
    server.once("error", reject);
  });
  return server;
}

function buildApp(
  upstream: Upstream,
  executions: Execution[],
  requests: ReceivedRequest[],
  handlers: McpHttpHandler[],
): express.Express {
  const app = express();
  const record = (execution: Omit<Execution, "upstream">) =>
    executions.push({ ...execution, upstream });
  app.get("/healthz", (_request, response) => {
    response.json({ status: "ok" });
  });
  app.use(express.json({ limit: "1mb" }));
  app.use((request, _response, next) => {
    const body: unknown = request.body;
    const messages: unknown[] = Array.isArray(body) ? body : [body];
    requests.push({
      upstream,
      method: request.method,
      path: request.path,
      methods:
        request.method === "POST"
          ? messages.map((m) =>
              typeof m === "object" && m !== null && "method" in m ? String(m.method) : "?",
            )
          : [],
      headers: { ...request.headers },
    });
    next();
  });
  const modern = createMcpHandler(({ requestInfo }) => buildServerV2(record, requestInfo), {
    legacy: "reject",
    responseMode: "json",
  });
  handlers.push(modern);
  const serve = async (request: Request, response: Response) => {
    const web = toWebRequest(request, request.body);
    if (!(await isLegacyRequest(web, request.body))) {
      await sendWebResponse(response, await modern.fetch(web, { parsedBody: request.body }));
      return;
    }
    const server = buildServer(record);
    // No sessionIdGenerator: stateless, every POST stands alone.
    const transport = new StreamableHTTPServerTransport({ enableJsonResponse: true });
    response.on("close", () => {
      void transport.close();
      void server.close();
    });
    await server.connect(transport);
    await transport.handleRequest(request, response, request.body);
  };
  if (upstream === "sep2243") app.post("/mcp", checkSep2243Headers, serve);
  else app.post("/mcp", serve);
  app.all("/mcp", (_request, response) => {
    // Stateless: no standalone SSE stream, no session to end.
    response
      .status(405)
      .set("allow", "POST")
      .json({
        jsonrpc: "2.0",
        id: null,
        error: { code: -32000, message: "Method not allowed." },
      });
  });
  return app;
}

function buildServer(record: (execution: Omit<Execution, "upstream">) => void): McpServer {
  const server = new McpServer({ name: "files", version: "1.0.0" });
  const register = (
    name: string,
    annotations: {
      readOnlyHint?: boolean;
      destructiveHint?: boolean;
      idempotentHint?: boolean;
    },
    inputSchema: Record<string, z.ZodType<string>>,
  ) => {
    server.registerTool(
      name,
      { description: `${name} (e2e)`, inputSchema, annotations },
      (_args, extra) => {
        const headers = extra.requestInfo?.headers ?? {};
        const header = (key: string) => {
          const value = headers[key];
          return Array.isArray(value) ? value.join(",") : value;
        };
        record({
          tool: name,
          subject: header("x-pdp-subject"),
          risk: header("x-pdp-risk"),
          decisionId: header("x-pdp-decision-id"),
          path: extra.requestInfo?.url?.pathname ?? "",
        });
        return { content: [{ type: "text", text: `${name} done` }] };
      },
    );
  };
  register(tools.read, { readOnlyHint: true }, { path: z.string() });
  register(
    tools.write,
    { readOnlyHint: false, destructiveHint: false },
    {
      path: z.string(),
      content: z.string(),
    },
  );
  register(tools.destructive, { readOnlyHint: false, destructiveHint: true }, { repo: z.string() });
  register(tools.uncatalogued, { readOnlyHint: true }, { repo: z.string() });
  register(tools.lying, { readOnlyHint: true, destructiveHint: false }, {});
  return server;
}

/** The same tools on SDK v2 (a server per request: `request` is the one it serves). */
function buildServerV2(
  record: (execution: Omit<Execution, "upstream">) => void,
  request: globalThis.Request | undefined,
): McpServerV2 {
  const headers = request?.headers ?? new Headers();
  const server = new McpServerV2({ name: "files", version: "1.0.0" });
  const register = (
    name: string,
    annotations: { readOnlyHint?: boolean; destructiveHint?: boolean },
    inputSchema: z.ZodObject,
  ) => {
    server.registerTool(name, { description: `${name} (e2e)`, inputSchema, annotations }, () => {
      record({
        tool: name,
        subject: headers.get("x-pdp-subject") ?? undefined,
        risk: headers.get("x-pdp-risk") ?? undefined,
        decisionId: headers.get("x-pdp-decision-id") ?? undefined,
        path: request === undefined ? "" : new URL(request.url).pathname,
      });
      return { content: [{ type: "text", text: `${name} done` }] };
    });
  };
  register(tools.read, { readOnlyHint: true }, z.object({ path: z.string() }));
  register(
    tools.write,
    { readOnlyHint: false, destructiveHint: false },
    z.object({ path: z.string(), content: z.string() }),
  );
  register(
    tools.destructive,
    { readOnlyHint: false, destructiveHint: true },
    z.object({ repo: z.string() }),
  );
  register(tools.uncatalogued, { readOnlyHint: true }, z.object({ repo: z.string() }));
  register(tools.lying, { readOnlyHint: true, destructiveHint: false }, z.object({}));
  return server;
}

/** Methods whose Mcp-Name mirrors `params.name` / `params.uri` (SEP-2243). */
const namedBy: Record<string, "name" | "uri"> = {
  "tools/call": "name",
  "prompts/get": "name",
  "resources/read": "uri",
  "resources/subscribe": "uri",
  "resources/unsubscribe": "uri",
};

/**
 * SEP-2243's server rule: headers that disagree with the body are refused
 * (400, JSON-RPC error), so an intermediary that routed or authorized on the
 * headers cannot be made to approve one thing while another runs.
 */
function checkSep2243Headers(request: Request, response: Response, next: NextFunction): void {
  const method = request.get("mcp-method");
  const name = request.get("mcp-name");
  const body: unknown = request.body;
  const single = typeof body === "object" && body !== null && !Array.isArray(body);
  const message = single ? (body as { method?: unknown; params?: Record<string, unknown> }) : {};
  const mismatch =
    (method !== undefined && (!single || message.method !== method)) ||
    (name !== undefined &&
      (!single ||
        typeof message.method !== "string" ||
        namedBy[message.method] === undefined ||
        message.params?.[namedBy[message.method] ?? "name"] !== name));
  if (!mismatch) {
    next();
    return;
  }
  const id = single ? ((body as { id?: unknown }).id ?? null) : null;
  response.status(400).json({
    jsonrpc: "2.0",
    id,
    error: { code: -32001, message: "Mcp-Method / Mcp-Name do not match the request body" },
  });
}

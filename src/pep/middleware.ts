import type { IncomingMessage, ServerResponse } from "node:http";
import { TokenError } from "../errors.ts";
import { bearerOrError } from "../protocol/bearer.ts";
import {
  denialAnswer,
  refusalAnswer,
  requestIdOf,
  unavailableAnswer,
  type McpAnswer,
} from "../protocol/mcp/answers.ts";
import { authzenItemOf, toolResource } from "../protocol/mcp/authzen-items.ts";
import { jsonRpcInternalError, jsonRpcInvalidRequest } from "../protocol/mcp/jsonrpc.ts";
import { McpRefusal, readMcpRequest, type McpReading } from "../protocol/mcp/request-reader.ts";
import { resolveOptions, type McpAuthorizationOptions, type PepSettings } from "./options.ts";
import { evaluate, type AuthzenEntity, type EvaluationDefaults } from "./pdp-client.ts";
import { interceptResponse } from "./response-interceptor.ts";
import { idKey, toolsListRewriter, type ToolsDecider } from "./tools-list.ts";

/**
 * Connect-style middleware (express, or a plain node:http handler chain). It
 * reads `req.body` as parsed by `express.json()` and either answers the
 * request itself (a refusal) or calls `next()` exactly once.
 */
export type McpAuthorizationMiddleware<Req extends IncomingMessage = IncomingMessage> = (
  req: Req,
  res: ServerResponse,
  next: (error?: unknown) => void,
) => void;

/**
 * The policy enforcement point for an MCP server built on the official SDK
 * with Streamable HTTP, either era. Mount it on the MCP route after
 * `express.json()` and before the 1.x transport's `handleRequest(req, res,
 * req.body)` or the v2 handler's `fetch` (given this request and `req.body`,
 * its Response written back through `res`): the request and the response
 * reach it the same way in both.
 *
 * For every JSON-RPC message of a POST (each element of a batch), and for GET
 * (`mcp/stream`) and DELETE (`mcp/session_end`), it asks the PDP in one
 * `POST /access/v1/evaluations` call, with the caller's bearer token in
 * `subject.properties.token`. One deny refuses the whole HTTP request:
 * 401 + `WWW-Authenticate: Bearer resource_metadata="…"` for token problems,
 * 403 (+ `error="insufficient_scope", scope="…"` when a step-up would help)
 * otherwise; the body is a JSON-RPC error (code -32003) with the reasons and
 * the decision id. A PDP that is unreachable, slow, failing or answering
 * nonsense fails closed: 503, nothing runs. `tools/list` results are
 * filtered to the tools the caller may call (one more PDP call per list),
 * whichever stream carries them: the POST's, or a GET's (a resumed stream
 * replaying stored events).
 *
 * Requests are read by the PDP's own forward-auth reader and answered by its
 * renderer (src/protocol/mcp/): any other HTTP method (HEAD, OPTIONS …), a
 * pseudo-method, `Mcp-Method`/`Mcp-Name` headers disagreeing with the body, or
 * a call naming no tool is a 400 (-32600) and never reaches the handler.
 */
export function createMcpAuthorization<Req extends IncomingMessage = IncomingMessage>(
  options: McpAuthorizationOptions<Req>,
): McpAuthorizationMiddleware<Req> {
  const settings = resolveOptions(options);
  return (req, res, next) => {
    authorize(settings, req, res, next).catch((error: unknown) => {
      // A bug must not let the request through: refuse it, and tell the operator.
      settings.onError(error instanceof Error ? error : new Error(String(error)));
      send(res, unavailableAnswer([], false));
    });
  };
}

async function authorize<Req extends IncomingMessage>(
  settings: PepSettings<Req>,
  req: Req,
  res: ServerResponse,
  next: (error?: unknown) => void,
): Promise<void> {
  const method = (req.method ?? "").toUpperCase();
  const body = (req as { body?: unknown }).body;
  if (method === "POST" && (typeof body !== "object" || body === null)) {
    const response = unparsedResponse(req.headers["content-type"]);
    if (response.status === 500) {
      settings.onError(
        new Error("the MCP request body was not parsed: mount express.json() first"),
      );
    }
    send(res, response);
    return;
  }
  let reading: McpReading;
  try {
    // The same reader as the PDP's forward-auth endpoint: what one refuses, so does the other.
    reading = readMcpRequest(
      {
        method,
        mcpMethod: headerOf(req, "mcp-method"),
        mcpName: headerOf(req, "mcp-name"),
        protocolVersion: headerOf(req, "mcp-protocol-version"),
        body: body === undefined ? undefined : { document: body },
      },
      // The body was bounded by the server's own parser; each element is one more item to decide.
      { batch: "authorize_each" },
    );
  } catch (error) {
    if (!(error instanceof McpRefusal)) throw error;
    send(res, refusalAnswer(error, true));
    return;
  }
  const { operations } = reading;
  const dialect = { jsonRpc: true, batch: reading.batch };
  const ids = operations.flatMap((operation) => {
    const id = requestIdOf(operation);
    return id === undefined ? [] : [id];
  });

  const bearer = bearerOrError(req.headers.authorization);
  if (bearer instanceof TokenError && bearer.code !== "token_missing") {
    // A header the PEP cannot parse is refused here: guessing a token out of it would be worse.
    const decision = {
      allow: false,
      id: undefined,
      reasons: [{ code: bearer.code, user: "The access token could not be read. Sign in again." }],
      stepUp: undefined,
    };
    send(
      res,
      denialAnswer(
        operations.map((operation) => ({ operation, decision })),
        dialect,
        { resourceMetadataUrl: settings.resourceMetadataUrl, tokenPresented: true },
      ) ?? unavailableAnswer(ids, reading.batch),
    );
    return;
  }
  // No token still goes to the PDP, which answers token_missing (or allows one of its
  // anonymous_methods): `token: null` says "the user presented none", which the PDP never
  // reads as an asserted subject, whatever the caller's rights.
  const subject: AuthzenEntity = {
    type: "user",
    properties: { token: typeof bearer === "string" ? bearer : null },
  };

  const itemOptions = {
    server: settings.server,
    maxArgumentBytes: settings.maxArgumentBytes,
    annotationsOf: settings.toolAnnotations,
  };
  let defaults: EvaluationDefaults;
  let decisions;
  try {
    defaults = { subject, context: await contextOf(settings, req) };
    decisions = await evaluate(
      settings,
      defaults,
      operations.map((operation) => authzenItemOf(operation, itemOptions)),
    );
  } catch (error) {
    settings.onError(error instanceof Error ? error : new Error(String(error)));
    send(res, unavailableAnswer(ids, reading.batch));
    return;
  }

  const denial = denialAnswer(
    operations.map((operation, index) => ({
      operation,
      decision: decisions[index] ?? deniedByDefault,
    })),
    dialect,
    {
      resourceMetadataUrl: settings.resourceMetadataUrl,
      tokenPresented: typeof bearer === "string",
    },
  );
  if (denial !== undefined) {
    send(res, denial);
    return;
  }

  const pending = new Set(
    operations.flatMap((operation) => {
      const id = requestIdOf(operation);
      return operation.method === "tools/list" && id !== undefined ? [idKey(id)] : [];
    }),
  );
  const decide: ToolsDecider = async (tools) =>
    (
      await evaluate(
        settings,
        { ...defaults, action: { name: "tools/call" } },
        tools.map((tool) => ({
          resource: toolResource(settings.server, tool.name, tool.annotations),
        })),
      )
    ).map((decision) => decision.allow);
  // Every allowed request's response is watched, not only a tools/list POST's: a stateful server
  // (an SDK eventStore) replays stored events, tool lists included, on a GET that resumes a stream
  // (Last-Event-ID), and a session may route a response to another POST's stream. The rewriter
  // recognises a list by its shape, so what it answers does not matter.
  interceptResponse(res, toolsListRewriter(pending, decide, settings.onError), settings.onError);
  next();
}

/** A header the SDK would read, as one string (node joins repeated unknown headers with ", "). */
function headerOf(req: IncomingMessage, name: string): string | undefined {
  const value = req.headers[name];
  return typeof value === "string" ? value : undefined;
}

const deniedByDefault = {
  allow: false,
  id: undefined,
  reasons: [{ code: "pdp_answer_invalid", user: undefined }],
  stepUp: undefined,
};

/** The request's own facts (client address, MCP session), then the application's. */
async function contextOf<Req extends IncomingMessage>(
  settings: PepSettings<Req>,
  req: Req,
): Promise<Record<string, unknown>> {
  const context: Record<string, unknown> = {};
  // express's req.ip honours its "trust proxy" setting; the socket address otherwise.
  const expressIp = (req as { ip?: unknown }).ip;
  const ip = typeof expressIp === "string" ? expressIp : req.socket.remoteAddress;
  if (ip !== undefined && ip !== "") context.ip = ip.replace(/^::ffff:(?=\d+\.\d+\.\d+\.\d+$)/, "");
  const session = req.headers["mcp-session-id"];
  if (typeof session === "string" && session !== "") context.session = { id: session };
  if (settings.context === undefined) return context;
  const extra = await settings.context(req);
  return { ...context, ...extra };
}

function unparsedResponse(contentType: string | undefined): McpAnswer {
  const json =
    contentType !== undefined &&
    /^application\/(?:[\w.+-]+\+)?json\s*(?:;|$)/i.test(contentType.trim());
  // Not JSON: 415. JSON that nobody parsed means express.json() is missing before the PEP:
  // a server bug, refused rather than handed to the SDK unjudged.
  const [status, code, message, reason] = json
    ? [500, jsonRpcInternalError, "The server cannot authorize this request.", "body_not_parsed"]
    : [415, jsonRpcInvalidRequest, "MCP requests must be application/json.", "mcp_invalid"];
  return {
    status,
    headers: {},
    body: { jsonrpc: "2.0", id: null, error: { code, message, data: { reasons: [reason] } } },
  };
}

function send(res: ServerResponse, response: McpAnswer): void {
  if (res.headersSent || res.writableEnded) {
    res.destroy();
    return;
  }
  const body = JSON.stringify(response.body);
  res.writeHead(response.status, {
    ...response.headers,
    "content-type": "application/json",
    "cache-control": "no-store",
    "content-length": Buffer.byteLength(body),
  });
  res.end(body);
}

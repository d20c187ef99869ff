import type { IncomingMessage, ServerResponse } from "node:http";
import { bearerOrError } from "../protocol/bearer.js";
import { TokenError } from "../auth/token-error.js";
import { evaluationItem, readMcpRequest, toolResource } from "./mcp-request.js";
import { resolveOptions, type McpAuthorizationOptions, type PepSettings } from "./options.js";
import { evaluate, type AuthzenEntity, type EvaluationDefaults } from "./pdp-client.js";
import { interceptResponse } from "./response-interceptor.js";
import {
  denialResponse,
  invalidRequestResponse,
  jsonRpcInternalError,
  jsonRpcInvalidRequest,
  unavailableResponse,
  type JsonRpcId,
  type PepResponse,
} from "./responses.js";
import { idKey, toolsListRewriter, type ToolsDecider } from "./tools-list.js";

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
 * with Streamable HTTP. Mount it on the MCP route after `express.json()` and
 * before the SDK transport's `handleRequest(req, res, req.body)`.
 *
 * For every JSON-RPC message of a POST (each element of a batch), and for GET
 * (`mcp/stream`) and DELETE (`mcp/session_end`), it asks the PDP in one
 * `POST /access/v1/evaluations` call, with the caller's bearer token in
 * `subject.properties.token`. One deny refuses the whole HTTP request:
 * 401 + `WWW-Authenticate: Bearer resource_metadata="…"` for token problems,
 * 403 (+ `error="insufficient_scope", scope="…"` when a step-up would help)
 * otherwise; the body is a JSON-RPC error (code -32003) with the reasons and
 * the decision id. A PDP that is unreachable, slow, failing or answering
 * nonsense fails closed: 503, nothing runs. `tools/list` responses are
 * filtered to the tools the caller may call (one more PDP call per list).
 */
export function createMcpAuthorization<Req extends IncomingMessage = IncomingMessage>(
  options: McpAuthorizationOptions<Req>,
): McpAuthorizationMiddleware<Req> {
  const settings = resolveOptions(options);
  return (req, res, next) => {
    authorize(settings, req, res, next).catch((error: unknown) => {
      // A bug must not let the request through: refuse it, and tell the operator.
      settings.onError(error instanceof Error ? error : new Error(String(error)));
      send(res, unavailableResponse([], false));
    });
  };
}

async function authorize<Req extends IncomingMessage>(
  settings: PepSettings<Req>,
  req: Req,
  res: ServerResponse,
  next: (error?: unknown) => void,
): Promise<void> {
  const reading = readMcpRequest(req.method ?? "", (req as { body?: unknown }).body);
  switch (reading.kind) {
    case "pass":
      next();
      return;
    case "invalid":
      send(res, invalidRequestResponse(reading.message, reading.id));
      return;
    case "unparsed": {
      const response = unparsedResponse(req.headers["content-type"]);
      if (response.status === 500) {
        settings.onError(
          new Error("the MCP request body was not parsed: mount express.json() first"),
        );
      }
      send(res, response);
      return;
    }
    case "authorize":
      break;
  }
  const { elements, batch } = reading;
  const ids = elements.flatMap((e) => (e.id === undefined ? [] : [e.id]));

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
      denialResponse(
        elements.map((e) => ({ id: e.id, decision })),
        batch,
        { resourceMetadataUrl: settings.resourceMetadataUrl, tokenPresented: true },
      ) ?? unavailableResponse(ids, batch),
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

  let defaults: EvaluationDefaults;
  let decisions;
  try {
    defaults = { subject, context: await contextOf(settings, req) };
    decisions = await evaluate(
      settings,
      defaults,
      elements.map((e) => evaluationItem(e, settings.server, settings.toolAnnotations)),
    );
  } catch (error) {
    settings.onError(error instanceof Error ? error : new Error(String(error)));
    send(res, unavailableResponse(ids, batch));
    return;
  }

  const denial = denialResponse(
    elements.map((e, index) => ({ id: e.id, decision: decisions[index] ?? deniedByDefault })),
    batch,
    {
      resourceMetadataUrl: settings.resourceMetadataUrl,
      tokenPresented: typeof bearer === "string",
    },
  );
  if (denial !== undefined) {
    send(res, denial);
    return;
  }

  const lists = elements.filter((e) => e.method === "tools/list" && e.id !== undefined);
  if (lists.length > 0) {
    const pending = new Set(lists.map((e) => idKey(e.id as JsonRpcId)));
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
    interceptResponse(res, toolsListRewriter(pending, decide, settings.onError), settings.onError);
  }
  next();
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

function unparsedResponse(contentType: string | undefined): PepResponse {
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

function send(res: ServerResponse, response: PepResponse): void {
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

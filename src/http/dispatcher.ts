import type { IncomingMessage, RequestListener, ServerResponse } from "node:http";
import type { ApiRequest, ApiResponse } from "../api/api-types.ts";
import { ApiError } from "../errors.ts";
import type { Metrics } from "../observability/metrics.ts";
import { readBody } from "./body-reader.ts";
import { authenticateCaller, headersOnly } from "./caller-guard.ts";
import { instrument } from "./instrument.ts";
import { requestIdOf } from "./request-id.ts";
import { internalErrorResponse, writeJson } from "./response-writer.ts";
import {
  isExpressRoute,
  methodNotAllowed,
  pdpErrorResponse,
  routeFinder,
  servesMethod,
  type ApiRoute,
  type Route,
} from "./route-table.ts";

/** What an unexpected error is logged with. */
export interface FailedRequest {
  requestId: string;
  method: string;
  path: string;
}

export interface DispatcherOptions {
  /** The route table: every path this listener serves, and nothing else. */
  routes: readonly Route[];
  maxBodyBytes: number;
  /** Serves the table's express routes (built from the same table, see express-surface.ts). */
  express?: RequestListener;
  metrics: Metrics;
  /** Told about unexpected errors (never about client errors). */
  onError: (error: unknown, request: FailedRequest) => void;
}

/**
 * The one dispatcher: every request of a listener goes through it, whichever
 * route serves it. Per request, in this order:
 *
 * 1. the X-Request-ID is echoed or assigned, and the HTTP metrics are labelled
 *    from the route table;
 * 2. an unknown path is a 404 `not_found`, a method the route does not serve
 *    a 405 with Allow (in the route's error shape), both before any
 *    authentication and without reading the body;
 * 3. the caller is authenticated from the headers (401/403 and `Connection:
 *    close`, the body never read) and travels on in `ApiRequest.caller`;
 * 4. an express route is handed to express; an API route's body is read
 *    (bounded, decoded, body-reader.ts) and its handler runs. Whatever the
 *    handler returns or throws is answered; nothing escapes as a rejection.
 */
export function dispatcher(options: DispatcherOptions): RequestListener {
  const find = routeFinder(options.routes);
  return (req, res) => {
    const method = req.method ?? "";
    const url = req.url ?? "";
    const queryAt = url.indexOf("?");
    const path = queryAt === -1 ? url : url.slice(0, queryAt);
    const route = find(path);
    instrument(res, options.metrics, route?.label ?? "other", method);
    const requestId = requestIdOf(req.headers["x-request-id"]);
    res.setHeader("x-request-id", requestId);
    const fail = (error: unknown): void => {
      try {
        options.onError(error, { requestId, method, path });
      } catch {
        // Not even the log could be told; the client still gets its 500.
      }
    };
    const write = (response: ApiResponse): void => {
      writeJson(res, response, fail);
    };

    const admitted = admit(route, path, method, headersOnly(req, path, requestId), fail);
    if ("refusal" in admitted) {
      // Refused before the body: the connection is not reused, so a client without credentials
      // (or on a wrong path) can neither make the PDP buffer a body nor hold the socket.
      closeIfBodyUnread(req, res);
      if (admitted.callerRefused) res.setHeader("connection", "close");
      write(admitted.refusal);
      return;
    }
    const { request } = admitted;
    // Only now may a client that asked (limitServer, server-limits.ts) send its body.
    if (req.headers.expect?.toLowerCase() === "100-continue") res.writeContinue();
    if (isExpressRoute(admitted.route)) {
      if (options.express === undefined) {
        fail(new Error(`no express app for ${admitted.route.path}`));
        write(internalErrorResponse);
        return;
      }
      options.express(req, res);
      return;
    }
    serveApi(req, admitted.route, request, queryAt === -1 ? undefined : url.slice(queryAt + 1), {
      maxBodyBytes: options.maxBodyBytes,
      write,
      fail,
    });
  };
}

/**
 * Steps 2 and 3, shared by the HTTP and the in-process front ends: the route
 * and method, then the caller from the headers. A refusal is rendered in the
 * route's error shape (the PDP's own for an unknown path).
 */
function admit(
  route: Route | undefined,
  path: string,
  method: string,
  request: ApiRequest,
  fail: (error: unknown) => void,
): { route: Route; request: ApiRequest } | { refusal: ApiResponse; callerRefused: boolean } {
  if (route === undefined) {
    return {
      refusal: pdpErrorResponse(new ApiError("not_found", `no endpoint at ${path}`)),
      callerRefused: false,
    };
  }
  if (!servesMethod(route, method)) {
    return { refusal: route.renderError(methodNotAllowed(route, method)), callerRefused: false };
  }
  if (route.caller === undefined) return { route, request };
  try {
    const outcome = authenticateCaller(route.caller, request);
    if ("caller" in outcome) return { route, request: { ...request, caller: outcome.caller } };
    return { refusal: route.renderError(outcome.refusal), callerRefused: true };
  } catch (error) {
    fail(error);
    return { refusal: internalErrorResponse, callerRefused: true };
  }
}

/**
 * The same table answering an ApiRequest in process (`mcp-pdp decide`): the
 * same route, method and caller checks and the same error renderers as over
 * HTTP. Express routes (ops, metrics) are HTTP surfaces and are not served.
 */
export function inProcessDispatcher(
  routes: readonly Route[],
  onError: (error: unknown, request: FailedRequest) => void,
): (request: ApiRequest) => Promise<ApiResponse> {
  const find = routeFinder(routes);
  return async (sent) => {
    const requestId = sent.requestId ?? "in-process";
    const fail = (error: unknown): void => {
      onError(error, { requestId, method: sent.method, path: sent.path });
    };
    const admitted = admit(find(sent.path), sent.path, sent.method, sent, fail);
    if ("refusal" in admitted) return admitted.refusal;
    const { route, request } = admitted;
    if (isExpressRoute(route)) {
      return pdpErrorResponse(new ApiError("not_found", `${sent.path} is served over HTTP only`));
    }
    try {
      return await route.handler(request);
    } catch (error) {
      if (error instanceof ApiError) return route.renderError(error);
      fail(error);
      return internalErrorResponse;
    }
  };
}

function serveApi(
  req: IncomingMessage,
  route: ApiRoute,
  request: ApiRequest,
  query: string | undefined,
  context: {
    maxBodyBytes: number;
    write: (response: ApiResponse) => void;
    fail: (error: unknown) => void;
  },
): void {
  const { write, fail } = context;
  readBody(req, context.maxBodyBytes)
    .then((body) => route.handler({ ...request, body }, query))
    .then(write, (error: unknown) => {
      if (error instanceof ApiError) {
        write(route.renderError(error));
        return;
      }
      fail(error);
      write(internalErrorResponse);
    })
    // The last resort: a renderer that throws still gets the request its answer, and no
    // rejection leaves the request path (unhandled, it would end the process).
    .catch((error: unknown) => {
      fail(error);
      write(internalErrorResponse);
    });
}

/**
 * An answer given before the request's body was read closes the connection:
 * otherwise node reads and discards the body, and a client that trickles one
 * holds the connection until the request timeout.
 */
function closeIfBodyUnread(req: IncomingMessage, res: ServerResponse): void {
  if (!req.complete) res.setHeader("connection", "close");
}

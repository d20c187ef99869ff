import type { IncomingMessage, RequestListener, ServerResponse } from "node:http";
import type { ApiRequest, ApiResponse } from "../api/api-types.js";
import { ApiError } from "../errors.js";
import type { Metrics } from "../observability/metrics.js";
import { readBody } from "./body-reader.js";
import { authenticateCaller, headersOnly } from "./caller-guard.js";
import { instrument } from "./instrument.js";
import { requestIdOf } from "./request-id.js";
import { internalErrorResponse, writeJson } from "./response-writer.js";
import {
  isExpressRoute,
  methodNotAllowed,
  pdpErrorResponse,
  routeFinder,
  servesMethod,
  type ApiRoute,
  type Route,
} from "./route-table.js";

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

    if (route === undefined) {
      closeIfBodyUnread(req, res);
      write(pdpErrorResponse(new ApiError("not_found", `no endpoint at ${path}`)));
      return;
    }
    if (!servesMethod(route, method)) {
      closeIfBodyUnread(req, res);
      write(route.renderError(methodNotAllowed(route, method)));
      return;
    }

    const request = headersOnly(req, path, requestId);
    if (route.caller !== undefined) {
      let refusal: ApiResponse | undefined;
      try {
        const outcome = authenticateCaller(route.caller, request);
        if ("caller" in outcome) request.caller = outcome.caller;
        else refusal = route.renderError(outcome.refusal);
      } catch (error) {
        fail(error);
        refusal = internalErrorResponse;
      }
      if (refusal !== undefined) {
        // Refused from its headers: the body is never read and the connection is not reused, so
        // a client without credentials can neither make the PDP buffer a body nor hold the socket.
        res.setHeader("connection", "close");
        write(refusal);
        return;
      }
    }

    if (isExpressRoute(route)) {
      if (options.express === undefined) {
        fail(new Error(`no express app for ${route.path}`));
        write(internalErrorResponse);
        return;
      }
      options.express(req, res);
      return;
    }
    serveApi(req, route, request, queryAt === -1 ? undefined : url.slice(queryAt + 1), {
      maxBodyBytes: options.maxBodyBytes,
      write,
      fail,
    });
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

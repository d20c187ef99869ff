import { randomUUID } from "node:crypto";
import type { IncomingMessage, RequestListener, ServerResponse } from "node:http";
import type { ApiRequest, ApiResponse } from "../api/api-types.js";
import type { ApiPermission } from "../auth/caller.js";
import { ApiError } from "../errors.js";
import { headersOnly, pdpErrorResponse, refusalOf, type CallerCheck } from "./caller-guard.js";
import { acceptableRequestId } from "./request-id.js";
import { internalErrorResponse, writeJson } from "./response-writer.js";

/**
 * A transport-neutral handler for one hot route. `query` is the raw query
 * string (after `?`, undecoded), for the few handlers that read one.
 */
export type ApiHandler = (
  request: ApiRequest,
  query?: string,
) => ApiResponse | Promise<ApiResponse>;

export interface LeanRoute {
  /** An HTTP method, or "*" for any. */
  method: string;
  path: string;
  /** Match every path that starts with `path`. */
  prefix?: boolean;
  handler: ApiHandler;
  /**
   * The caller permission the route needs, checked from the headers before
   * the body is read; undefined for a public route.
   */
  permission?: ApiPermission;
  /**
   * Renders the client errors of this route (a body over the limit, an
   * ApiError thrown by the handler) when its API has its own error shape;
   * by default, the PDP's `{code, message, field?}`.
   */
  renderError?: (error: ApiError) => ApiResponse;
}

export interface LeanListenerOptions {
  routes: readonly LeanRoute[];
  maxBodyBytes: number;
  /** Authenticates the caller of routes with a `permission`. */
  callers: CallerCheck;
  /** Serves everything the lean path does not take, and is the reference behaviour. */
  fallback: RequestListener;
  /** Told about unexpected errors (never about client errors). */
  onError: (error: unknown, request: { requestId: string; method: string; path: string }) => void;
}

/**
 * Serves the decision endpoints straight on node:http and hands every other
 * request to express. Express costs more per request than a policy evaluation
 * (see README, Performance), so the hot path skips it; the answers are the
 * same because both call the same ApiHandler and render errors through
 * ApiError. Anything unusual (compressed bodies, other methods or paths) goes
 * to express, which stays the reference behaviour.
 *
 * Order of work per request: the caller is authenticated from the headers
 * (401/403 and `Connection: close` without reading the body), then the body
 * is read within PDP_MAX_BODY_BYTES, then the handler runs. Whatever the
 * handler returns or throws is answered; nothing escapes as a rejection.
 */
export function leanListener(options: LeanListenerOptions): RequestListener {
  const exact = new Map(
    options.routes
      .filter((route) => route.prefix !== true)
      .map((route) => [`${route.method} ${route.path}`, route]),
  );
  const prefixes = options.routes.filter((route) => route.prefix === true);
  const find = (method: string, path: string): LeanRoute | undefined =>
    exact.get(`${method} ${path}`) ??
    prefixes.find(
      (route) => (route.method === "*" || route.method === method) && path.startsWith(route.path),
    );
  return (req, res) => {
    const route = find(req.method ?? "", pathOf(req.url));
    if (route === undefined || req.headers["content-encoding"] !== undefined) {
      options.fallback(req, res);
      return;
    }
    serveLean(req, res, route, options);
  };
}

function pathOf(url: string | undefined): string {
  if (url === undefined) return "";
  const query = url.indexOf("?");
  return query === -1 ? url : url.slice(0, query);
}

function queryOf(url: string | undefined): string | undefined {
  if (url === undefined) return undefined;
  const query = url.indexOf("?");
  return query === -1 ? undefined : url.slice(query + 1);
}

function serveLean(
  req: IncomingMessage,
  res: ServerResponse,
  route: LeanRoute,
  options: LeanListenerOptions,
): void {
  const renderError = route.renderError ?? pdpErrorResponse;
  const incomingId = req.headers["x-request-id"];
  const requestId =
    typeof incomingId === "string" && acceptableRequestId(incomingId) ? incomingId : randomUUID();
  res.setHeader("x-request-id", requestId);
  const path = pathOf(req.url);
  const fail = (error: unknown): void => {
    try {
      options.onError(error, { requestId, method: req.method ?? "", path });
    } catch {
      // Not even the log could be told; the client still gets its 500 below.
    }
  };
  const write = (response: ApiResponse): void => {
    writeJson(res, response, fail);
  };

  const request = headersOnly(req, path, requestId);
  if (route.permission !== undefined) {
    const permission = route.permission;
    let refusal: ApiResponse | undefined;
    try {
      const error = refusalOf((r) => options.callers(r, permission), request);
      refusal = error === undefined ? undefined : renderError(error);
    } catch (error) {
      fail(error);
      refusal = internalErrorResponse;
    }
    if (refusal !== undefined) {
      // Refused from its headers: the body is never read and the connection is not reused, so
      // a client without credentials can neither make the PDP buffer a body nor hold the socket.
      closeUnread(res);
      write(refusal);
      return;
    }
  }

  const declared = req.headers["content-length"];
  if (declared !== undefined && Number(declared) > options.maxBodyBytes) {
    refuseBody(req, write, renderError(tooLarge()));
    return;
  }

  const chunks: Buffer[] = [];
  let received = 0;
  let refused = false;
  req.on("data", (chunk: Buffer) => {
    if (refused) return;
    received += chunk.length;
    if (received > options.maxBodyBytes) {
      refused = true;
      refuseBody(req, write, renderError(tooLarge()));
      return;
    }
    chunks.push(chunk);
  });
  req.on("end", () => {
    if (refused) return;
    const body = chunks.length === 1 ? (chunks[0] as Buffer) : Buffer.concat(chunks, received);
    Promise.resolve()
      .then(() => route.handler({ ...request, body }, queryOf(req.url)))
      .then(write, (error: unknown) => {
        if (error instanceof ApiError) {
          write(renderError(error));
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
  });
  req.on("error", () => {
    // The client went away mid-body: there is no one to answer.
    refused = true;
  });
}

function tooLarge(): ApiError {
  return new ApiError("body_too_large", "body exceeds the configured limit (PDP_MAX_BODY_BYTES)");
}

/** Answers before the body is read, then drains it so an authenticated caller's connection stays usable. */
function refuseBody(
  req: IncomingMessage,
  write: (response: ApiResponse) => void,
  response: ApiResponse,
): void {
  write(response);
  req.resume();
}

/** Ends the connection after this answer: the client may not send the body it announced. */
function closeUnread(res: ServerResponse): void {
  res.setHeader("connection", "close");
}

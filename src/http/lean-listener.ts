import { randomUUID } from "node:crypto";
import type { IncomingMessage, RequestListener, ServerResponse } from "node:http";
import type { ApiRequest, ApiResponse } from "../api/api-types.js";
import { ApiError } from "../errors.js";
import { acceptableRequestId } from "./request-id.js";
import { tlsClientOf } from "./tls-client.js";

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
   * Renders the client errors of this route (a body over the limit, an
   * ApiError thrown by the handler) when its API has its own error shape;
   * by default, the PDP's `{code, message, field?}`.
   */
  renderError?: (error: ApiError) => ApiResponse;
}

export interface LeanListenerOptions {
  routes: readonly LeanRoute[];
  maxBodyBytes: number;
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
  const { handler } = route;
  const renderError = route.renderError ?? pdpError;
  const incomingId = req.headers["x-request-id"];
  const requestId =
    typeof incomingId === "string" && acceptableRequestId(incomingId) ? incomingId : randomUUID();
  res.setHeader("x-request-id", requestId);
  const path = pathOf(req.url);

  const declared = req.headers["content-length"];
  if (declared !== undefined && Number(declared) > options.maxBodyBytes) {
    refuseBody(req, res, renderError(tooLarge()));
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
      refuseBody(req, res, renderError(tooLarge()));
      return;
    }
    chunks.push(chunk);
  });
  req.on("end", () => {
    if (refused) return;
    const body = chunks.length === 1 ? (chunks[0] as Buffer) : Buffer.concat(chunks, received);
    Promise.resolve()
      .then(() => {
        const tlsClient = tlsClientOf(req.socket);
        return handler(
          {
            method: req.method ?? "",
            path,
            headers: req.headers,
            body,
            requestId,
            ...(tlsClient === undefined ? {} : { tlsClient }),
            ...(req.socket.remoteAddress === undefined
              ? {}
              : { remoteAddress: req.socket.remoteAddress }),
          },
          queryOf(req.url),
        );
      })
      .then(
        (response) => {
          writeJson(res, response.status, response.body, response.headers);
        },
        (error: unknown) => {
          if (error instanceof ApiError) {
            const rendered = renderError(error);
            writeJson(res, rendered.status, rendered.body, rendered.headers);
            return;
          }
          options.onError(error, { requestId, method: req.method ?? "", path });
          const internal = new ApiError("internal_error", "internal error; see the PDP log");
          writeJson(res, internal.status, internal.toBody());
        },
      );
  });
  req.on("error", () => {
    // The client went away mid-body: there is no one to answer.
    refused = true;
  });
}

/** The PDP's own error shape: `{code, message, field?}` with the error's status and headers. */
function pdpError(error: ApiError): ApiResponse {
  return { status: error.status, headers: { ...error.headers }, body: error.toBody() };
}

function tooLarge(): ApiError {
  return new ApiError("body_too_large", "body exceeds the configured limit (PDP_MAX_BODY_BYTES)");
}

/** Answers before the body is read, then drains it so the connection stays usable. */
function refuseBody(req: IncomingMessage, res: ServerResponse, response: ApiResponse): void {
  writeJson(res, response.status, response.body, response.headers);
  req.resume();
}

function writeJson(
  res: ServerResponse,
  status: number,
  body: unknown,
  headers?: Readonly<Record<string, string>>,
): void {
  if (res.headersSent) return;
  const payload = JSON.stringify(body);
  res.statusCode = status;
  if (headers !== undefined)
    for (const [name, value] of Object.entries(headers)) res.setHeader(name, value);
  res.setHeader("content-type", "application/json; charset=utf-8");
  res.setHeader("content-length", Buffer.byteLength(payload));
  res.end(payload);
}

import type { IncomingMessage } from "node:http";
import type { RequestHandler } from "express";
import type { ApiRequest, ApiResponse } from "../api/api-types.js";
import type { ApiPermission } from "../auth/caller.js";
import { ApiError } from "../errors.js";
import { headerProblem, UnwritableResponseError } from "./response-writer.js";
import { tlsClientOf } from "./tls-client.js";

/**
 * Authenticates the PDP's own caller for a permission and throws an ApiError
 * (401/403) to refuse; `CallerAuthenticator.authenticate` is one.
 */
export type CallerCheck = (request: ApiRequest, permission: ApiPermission) => unknown;

/** A check already bound to its permission (the ops endpoints use their own authenticator). */
export type RequestGuard = (request: ApiRequest) => unknown;

/**
 * The request as caller authentication sees it: headers, the verified client
 * certificate and the peer, known before one byte of the body is read.
 */
export function headersOnly(
  req: IncomingMessage,
  path: string,
  requestId: string | undefined,
): ApiRequest {
  const tlsClient = tlsClientOf(req.socket);
  return {
    method: req.method ?? "",
    path,
    headers: req.headers,
    body: Buffer.alloc(0),
    ...(requestId === undefined ? {} : { requestId }),
    ...(tlsClient === undefined ? {} : { tlsClient }),
    ...(req.socket.remoteAddress === undefined ? {} : { remoteAddress: req.socket.remoteAddress }),
  };
}

/** The guard's refusal (an ApiError), or undefined when the caller may go on. Anything else it throws is a bug and propagates. */
export function refusalOf(guard: RequestGuard, request: ApiRequest): ApiError | undefined {
  try {
    guard(request);
    return undefined;
  } catch (error) {
    if (error instanceof ApiError) return error;
    throw error;
  }
}

/** The PDP's own error shape: `{code, message, field?}` with the error's status and headers. */
export function pdpErrorResponse(error: ApiError): ApiResponse {
  return { status: error.status, headers: { ...error.headers }, body: error.toBody() };
}

/**
 * Express middleware that authenticates the caller from the headers, placed
 * before any body parser. A refusal is answered at once with `Connection:
 * close` and the body is never read: a client without credentials can make
 * the PDP neither buffer a body nor keep the connection with a slow one.
 */
export function requireCaller(
  guard: RequestGuard,
  render: (error: ApiError) => ApiResponse = pdpErrorResponse,
): RequestHandler {
  return (req, res, next) => {
    const refusal = refusalOf(guard, headersOnly(req, req.path, req.requestId));
    if (refusal === undefined) {
      next();
      return;
    }
    const response = render(refusal);
    res.setHeader("connection", "close");
    const problem = headerProblem(response.headers);
    if (problem !== undefined) {
      next(new UnwritableResponseError(problem));
      return;
    }
    res
      .status(response.status)
      .set(response.headers ?? {})
      .json(response.body);
  };
}

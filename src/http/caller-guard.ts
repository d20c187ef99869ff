import type { IncomingMessage } from "node:http";
import type { ApiRequest } from "../api/api-types.ts";
import type { Caller } from "../auth/caller.ts";
import { ApiError } from "../errors.ts";
import type { CallerGuard } from "./route-table.ts";
import { tlsClientOf } from "./tls-client.ts";

/**
 * The one ApiRequest builder: the request as caller authentication sees it
 * (headers, the verified client certificate, the peer), known before one
 * byte of the body is read. The dispatcher adds the caller, then the body.
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

/**
 * Authenticates the caller from the headers: the caller, or the guard's
 * refusal (an ApiError, 401/403). Anything else the guard throws is a bug and
 * propagates (the dispatcher answers 500, never serves the route).
 */
export function authenticateCaller(
  guard: CallerGuard,
  request: ApiRequest,
): { caller: Caller } | { refusal: ApiError } {
  try {
    return { caller: guard(request) };
  } catch (error) {
    if (error instanceof ApiError) return { refusal: error };
    throw error;
  }
}

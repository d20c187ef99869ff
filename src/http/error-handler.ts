import type { IncomingMessage, ServerResponse } from "node:http";
import type { ErrorRequestHandler, RequestHandler } from "express";
import { ApiError } from "../errors.js";
import type { Logger } from "../observability/logger.js";
import { headerProblem } from "./response-writer.js";

/** body-parser's errors (by type, else by 4xx status), mapped onto the registry. */
function fromBodyParser(error: unknown): ApiError | undefined {
  if (typeof error !== "object" || error === null) return undefined;
  switch ((error as { type?: unknown }).type) {
    case "entity.too.large":
      return new ApiError(
        "body_too_large",
        "body exceeds the configured limit (PDP_MAX_BODY_BYTES)",
      );
    case "encoding.unsupported":
    case "charset.unsupported":
      return new ApiError("unsupported_media_type", "unsupported Content-Encoding or charset");
    case "request.size.invalid":
    case "request.aborted":
      return new ApiError("invalid_request", "the body ended before its declared length");
    default:
      break;
  }
  // Other client-side body failures (a corrupt gzip/deflate/br body, say) carry a 4xx status but no type.
  const status = (error as { status?: unknown }).status;
  if (typeof status === "number" && status >= 400 && status < 500) {
    return new ApiError(
      "invalid_request",
      "the body could not be read (corrupt or mismatched Content-Encoding?)",
    );
  }
  return undefined;
}

/**
 * The one error handler: every error gets the same body shape, `{code,
 * message, field?}`. Details of unexpected errors go to the log, never to the
 * client.
 */
export function errorHandler(logger: Logger): ErrorRequestHandler {
  return (error: unknown, req, res, next) => {
    if (res.headersSent) {
      next(error);
      return;
    }
    const known = error instanceof ApiError ? error : fromBodyParser(error);
    // An error whose own headers cannot be written (say, a challenge built from request data)
    // is a bug like any other: logged below, answered 500.
    const problem = known === undefined ? undefined : headerProblem(known.headers);
    if (known !== undefined && problem === undefined) {
      res.status(known.status).set(known.headers).json(known.toBody());
      return;
    }
    logger.error("request failed", {
      request_id: req.requestId,
      method: req.method,
      path: req.path,
      error: problem ?? (error instanceof Error ? error.stack : String(error)),
    });
    res
      .status(500)
      .json(new ApiError("internal_error", "internal error; see the PDP log").toBody());
  };
}

/**
 * An answer given before the request's body was read closes the connection:
 * otherwise node reads and discards the body, and a client that trickles one
 * holds the connection until the request timeout.
 */
export function closeIfBodyUnread(req: IncomingMessage, res: ServerResponse): void {
  if (!req.complete) res.setHeader("connection", "close");
}

/** 404 for paths no router serves. */
export const notFound: RequestHandler = (req, res) => {
  closeIfBodyUnread(req, res);
  res.status(404).json(new ApiError("not_found", `no endpoint at ${req.path}`).toBody());
};

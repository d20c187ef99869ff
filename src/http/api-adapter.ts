import express, { type Request, type RequestHandler, type Response } from "express";
import { headersOnly } from "./caller-guard.js";
import { closeIfBodyUnread } from "./error-handler.js";
import type { ApiHandler } from "./lean-listener.js";
import { headerProblem, UnwritableResponseError } from "./response-writer.js";

/**
 * Reads the raw body (bounded) for handlers that parse it themselves: parsing
 * is the API layer's job so it behaves the same under any server. Mount it
 * after `requireCaller`, so no body is read for a caller that is refused.
 */
export function rawBody(maxBytes: number): RequestHandler {
  return express.raw({ type: () => true, limit: maxBytes });
}

/**
 * Runs a transport-neutral handler for an express request. Thrown errors go to
 * the error handler; so does a response whose headers cannot be written (CR
 * LF, non-Latin-1…), checked before any is set so the 500 carries none of them.
 */
export function serve(handler: ApiHandler): RequestHandler {
  return async (req: Request, res: Response) => {
    const body: unknown = req.body;
    const response = await handler({
      ...headersOnly(req, req.path, req.requestId),
      body: Buffer.isBuffer(body) ? body : Buffer.alloc(0),
    });
    const problem = headerProblem(response.headers);
    if (problem !== undefined) throw new UnwritableResponseError(problem);
    res.status(response.status);
    if (response.headers !== undefined) res.set(response.headers);
    res.json(response.body);
  };
}

/** 405 for every method a path does not serve, with the Allow header. */
export function methodNotAllowed(allowed: readonly string[]): RequestHandler {
  return (req, res) => {
    closeIfBodyUnread(req, res);
    res
      .status(405)
      .set("allow", allowed.join(", "))
      .json({
        code: "method_not_allowed",
        message: `${req.method} is not allowed here; use ${allowed.join(" or ")}`,
      });
  };
}

import { STATUS_CODES, type ServerResponse } from "node:http";
import type { Duplex } from "node:stream";
import { ApiError } from "../errors.ts";

/** Node's refusal of a connection's request, by its error code, as the PDP's error. */
function refusalOf(code: string | undefined): ApiError {
  switch (code) {
    case "ERR_HTTP_REQUEST_TIMEOUT":
      return new ApiError(
        "request_timeout",
        "the request did not arrive in time (PDP_HEADERS_TIMEOUT_MS, PDP_REQUEST_TIMEOUT_MS)",
      );
    case "HPE_HEADER_OVERFLOW":
      return new ApiError("headers_too_large", "the request headers are too large");
    default:
      return new ApiError("invalid_request", "the request is not valid HTTP/1.1");
  }
}

/**
 * The `clientError` listener of every listener: what node refuses before a
 * request reaches the PDP (headers or body too slow, malformed HTTP, headers
 * too large) is answered in the PDP's shape, `{code, message}`, with a stable
 * code, and the connection is closed. Node's own answer has no body.
 */
export function answerClientError(error: Error & { code?: string }, socket: Duplex): void {
  // A connection reset has no one to answer; a response already under way cannot be replaced.
  const current = (socket as { _httpMessage?: ServerResponse | null })._httpMessage;
  if (error.code === "ECONNRESET" || !socket.writable || current?.headersSent === true) {
    socket.destroy();
    return;
  }
  const refusal = refusalOf(error.code);
  const payload = JSON.stringify(refusal.toBody());
  socket.write(
    `HTTP/1.1 ${refusal.status} ${STATUS_CODES[refusal.status] ?? ""}\r\n` +
      "Content-Type: application/json; charset=utf-8\r\n" +
      `Content-Length: ${Buffer.byteLength(payload)}\r\n` +
      "Connection: close\r\n\r\n" +
      payload,
  );
  socket.destroy();
}

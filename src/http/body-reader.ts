import type { IncomingMessage } from "node:http";
import type { Transform } from "node:stream";
import * as zlib from "node:zlib";
import { ApiError } from "../errors.ts";

function tooLarge(): ApiError {
  return new ApiError("body_too_large", "body exceeds the configured limit (PDP_MAX_BODY_BYTES)");
}

/** A decoder for a Content-Encoding (the ones express accepted), undefined for an unknown one. */
function decoderOf(encoding: string): Transform | undefined {
  switch (encoding) {
    case "gzip":
      return zlib.createGunzip();
    case "deflate":
      return zlib.createInflate();
    case "br":
      return zlib.createBrotliDecompress();
    case "zstd":
      return "createZstdDecompress" in zlib ? zlib.createZstdDecompress() : undefined;
    default:
      return undefined;
  }
}

/**
 * The one body reader: the request's body, decoded (gzip, deflate, br, zstd)
 * and at most `maxBytes` long both on the wire and once decoded, so a small
 * compressed body cannot inflate past the limit. A body whose bytes decode to
 * nothing is 400 `empty_body`, never an absent body. Fails with an ApiError: 413 `body_too_large`, 415
 * `unsupported_media_type` (an unknown Content-Encoding), 400
 * `invalid_request` (a corrupt encoding, or a client gone mid-body). On a
 * refusal the rest of the body is drained, so the caller's connection stays
 * usable; the caller was authenticated before this is called.
 */
export function readBody(req: IncomingMessage, maxBytes: number): Promise<Buffer> {
  return new Promise((resolve, reject) => {
    const encoding = (req.headers["content-encoding"] ?? "identity").toLowerCase();
    // The bytes on the wire are bounded as well as the decoded ones: a body of empty gzip members
    // decodes to nothing yet costs the PDP every byte of it.
    const declared = req.headers["content-length"];
    if (declared !== undefined && Number(declared) > maxBytes) {
      req.resume();
      reject(tooLarge());
      return;
    }
    let source: NodeJS.ReadableStream = req;
    let decoder: Transform | undefined;
    if (encoding !== "identity") {
      decoder = decoderOf(encoding);
      if (decoder === undefined) {
        req.resume();
        reject(new ApiError("unsupported_media_type", "unsupported Content-Encoding"));
        return;
      }
      source = req.pipe(decoder);
    }

    const chunks: Buffer[] = [];
    let received = 0;
    let settled = false;
    const refuse = (error: ApiError): void => {
      if (settled) return;
      settled = true;
      chunks.length = 0;
      if (decoder !== undefined) {
        req.unpipe(decoder);
        decoder.destroy();
      }
      req.resume();
      reject(error);
    };
    source.on("data", (chunk: Buffer) => {
      if (settled) return;
      received += chunk.length;
      if (received > maxBytes) {
        refuse(tooLarge());
        return;
      }
      chunks.push(chunk);
    });
    let wireBytes = 0;
    if (decoder !== undefined) {
      req.on("data", (chunk: Buffer) => {
        wireBytes += chunk.length;
        if (wireBytes > maxBytes) refuse(tooLarge());
      });
    }
    source.on("end", () => {
      if (settled) return;
      if (received === 0 && wireBytes > 0) {
        // Bytes were sent but decode to nothing: not "no body". Forward-auth would otherwise
        // decide from the Mcp-* headers alone for a server that may read those bytes otherwise.
        refuse(new ApiError("empty_body", "the body decodes to nothing; send a JSON body"));
        return;
      }
      settled = true;
      resolve(chunks.length === 1 ? (chunks[0] as Buffer) : Buffer.concat(chunks, received));
    });
    decoder?.on("error", () => {
      refuse(
        new ApiError(
          "invalid_request",
          "the body could not be read (corrupt or mismatched Content-Encoding?)",
        ),
      );
    });
    req.on("error", () => {
      // The client went away mid-body: the answer reaches no one, but the promise settles.
      refuse(new ApiError("invalid_request", "the body ended before its declared length"));
    });
  });
}

import { readFileSync } from "node:fs";
import { readFile } from "node:fs/promises";
import { Agent as HttpAgent, request as httpRequest, type IncomingMessage } from "node:http";
import { Agent as HttpsAgent, request as httpsRequest } from "node:https";
import { BundleServiceError, StartupError, describeThrown } from "../errors.ts";

/**
 * One GET of an OPA bundle service: the request OPA's downloader sends
 * (`If-None-Match`, `Prefer: modes=snapshot[;wait=N]`), the credentials, and
 * a bounded read of the answer. Every way it can fail is a BundleServiceError
 * with a code from the registry; the loop around it is bundle-service.ts.
 */

/** The media type an OPA-protocol server answers with; only then is long polling honoured (as OPA does). */
export const opaBundleMediaType = "application/vnd.openpolicyagent.bundles";

/**
 * What a bundle may arrive as: OPA's own type, what object stores and file
 * servers label a `.tar.gz` with (nginx's default_type is octet-stream, S3
 * says binary/octet-stream when uploaded without a type). An HTML error page
 * or JSON answered with 200 is refused by name instead of failing later as
 * "not a gzip file".
 */
export const defaultBundleContentTypes: readonly string[] = [
  opaBundleMediaType,
  "application/gzip",
  "application/x-gzip",
  "application/octet-stream",
  "binary/octet-stream",
  "application/x-tar",
];

/** Where the bearer token comes from: read on every request, so a rotated token is picked up. */
export type BearerTokenSource = { file: string } | { environmentVariable: string };

/** How the PDP authenticates to the bundle service and which server it trusts. */
export interface BundleServiceCredentials {
  bearer?: BearerTokenSource;
  /** The scheme before the token (OPA's `credentials.bearer.scheme`); default "Bearer". */
  bearerScheme?: string;
  /** Client certificate and key (PEM files) for mTLS. */
  clientCertFile?: string;
  clientKeyFile?: string;
  /** CA certificates (PEM) trusted for the server instead of the system's. Verification is never off. */
  caFile?: string;
}

export interface BundleDownloaderOptions {
  url: URL;
  credentials: BundleServiceCredentials;
  /** Extra request headers (e.g. an object store's API key header), sent as given. */
  headers: Readonly<Record<string, string>>;
  /** Accepted media types of a 200 (lower case, without parameters). */
  contentTypes: readonly string[];
  /** Where an `environmentVariable` bearer source is looked up (main.ts passes process.env). */
  environment: Readonly<Record<string, string | undefined>>;
}

export interface DownloadRequest {
  /** The ETag of the active bundle, sent as If-None-Match. */
  etag: string | undefined;
  /** Long polling: ask the server to hold the request up to this many seconds. */
  waitS: number | undefined;
  /** The answer (headers and body) must be complete this long after the request (plus waitS). */
  timeoutMs: number;
  /** A body longer than this is aborted while it streams. */
  maxBytes: number;
  /** Aborts the request (stop()). */
  signal: AbortSignal;
}

export type DownloadOutcome =
  | { kind: "not_modified"; status: 304 }
  | {
      kind: "downloaded";
      status: 200;
      bytes: Buffer;
      etag: string | undefined;
      /** The server answered with OPA's media type: long polling may be used next. */
      longPolling: boolean;
    };

/** Errno-style codes node gives TLS handshake and certificate failures. */
const tlsErrorCode =
  /^(ERR_TLS_|ERR_SSL_|CERT_|UNABLE_TO_|DEPTH_ZERO_SELF_SIGNED_CERT$|SELF_SIGNED_CERT_IN_CHAIN$|HOSTNAME_MISMATCH$)/;

/** Headers the protocol sets; an extra header of the same name would be sent twice. */
const protocolHeaders = new Set([
  "if-none-match",
  "prefer",
  "accept",
  "host",
  "connection",
  "content-length",
  "transfer-encoding",
]);

/** A header value node accepts and that cannot split a header (no CR, LF or other controls). */
const legalHeaderValue = /^[\t\x20-\x7e\x80-\xff]*$/;

export class BundleDownloader {
  private readonly options: BundleDownloaderOptions;
  private readonly agent: HttpAgent;
  private readonly request: typeof httpRequest;

  /** Reads the TLS files now, so a missing or unreadable one stops the start with its name. */
  constructor(options: BundleDownloaderOptions) {
    this.options = options;
    const { credentials, url } = options;
    const problems: string[] = [];
    const readPem = (what: string, file: string | undefined): string | undefined => {
      if (file === undefined) return undefined;
      try {
        return readFileSync(file, "utf8");
      } catch (error) {
        problems.push(`${what} ${file}: ${describeThrown(error)}`);
        return undefined;
      }
    };
    const cert = readPem("client certificate", credentials.clientCertFile);
    const key = readPem("client key", credentials.clientKeyFile);
    const ca = readPem("CA file", credentials.caFile);
    if ((cert === undefined) !== (key === undefined) && problems.length === 0) {
      problems.push("a client certificate needs its key and a key its certificate");
    }
    const https = url.protocol === "https:";
    if (!https && (cert !== undefined || ca !== undefined)) {
      problems.push(`${url.origin}: TLS settings need an https:// service URL`);
    }
    if (!https && credentials.bearer !== undefined && !isLoopback(url.hostname)) {
      problems.push(`${url.origin}: a bearer token is sent over https:// only (or to loopback)`);
    }
    for (const [name, value] of Object.entries(options.headers)) {
      if (!/^[!#$%&'*+.^_`|~0-9A-Za-z-]+$/.test(name) || !legalHeaderValue.test(value)) {
        problems.push(`header ${JSON.stringify(name)} is not a legal header name and value`);
      }
      const lower = name.toLowerCase();
      if (
        protocolHeaders.has(lower) ||
        (lower === "authorization" && credentials.bearer !== undefined)
      ) {
        problems.push(
          `header ${name} is the client's own (the protocol or the bearer token sets it)`,
        );
      }
    }
    if (problems.length > 0) throw new StartupError("config_invalid", problems);
    // A connection per request, no keep-alive: polls are a minute apart, longer than most
    // servers keep an idle connection (nginx: 75 s), and reusing one the server is closing
    // would fail a poll with a reset that is nobody's fault.
    this.agent = https
      ? new HttpsAgent({
          keepAlive: false,
          maxSockets: 1,
          ...(cert !== undefined && key !== undefined ? { cert, key } : {}),
          ...(ca !== undefined ? { ca } : {}),
        })
      : new HttpAgent({ keepAlive: false, maxSockets: 1 });
    this.request = https ? httpsRequest : httpRequest;
  }

  /** Closes any connection still open. */
  close(): void {
    this.agent.destroy();
  }

  /** One GET. Resolves with a 304 or a complete 200 body; every failure is a BundleServiceError. */
  async get(request: DownloadRequest): Promise<DownloadOutcome> {
    const headers = await this.headersFor(request);
    return new Promise<DownloadOutcome>((resolve, reject) => {
      let settled = false;
      const fail = (error: BundleServiceError): void => {
        if (settled) return;
        settled = true;
        clearTimeout(deadline);
        request.signal.removeEventListener("abort", onAbort);
        outgoing.destroy();
        reject(error);
      };
      const succeed = (outcome: DownloadOutcome): void => {
        if (settled) return;
        settled = true;
        clearTimeout(deadline);
        request.signal.removeEventListener("abort", onAbort);
        resolve(outcome);
      };
      const totalMs = request.timeoutMs + (request.waitS ?? 0) * 1000;
      const deadline = setTimeout(() => {
        fail(new BundleServiceError("timeout", `no complete answer within ${totalMs} ms`));
      }, totalMs);
      // The socket keeps the process alive while a request is in flight; the deadline need not.
      deadline.unref();
      const onAbort = (): void => {
        fail(new BundleServiceError("network", "the request was aborted (stopped)"));
      };
      const outgoing = this.request(this.options.url, {
        method: "GET",
        headers,
        agent: this.agent,
      });
      request.signal.addEventListener("abort", onAbort, { once: true });
      if (request.signal.aborted) onAbort();
      outgoing.on("error", (error) => {
        fail(classifyNetworkError(error));
      });
      outgoing.on("response", (response) => {
        this.readResponse(response, request, succeed, fail);
      });
      outgoing.end();
    });
  }

  private readResponse(
    response: IncomingMessage,
    request: DownloadRequest,
    succeed: (outcome: DownloadOutcome) => void,
    fail: (error: BundleServiceError) => void,
  ): void {
    const status = response.statusCode ?? 0;
    if (status === 304) {
      response.resume();
      succeed({ kind: "not_modified", status: 304 });
      return;
    }
    if (status !== 200) {
      fail(
        new BundleServiceError(
          statusCode(status),
          status >= 300 && status < 400
            ? `the server answered ${status}; redirects are not followed (configure the final URL)`
            : `the server answered ${status}`,
          { httpStatus: status },
        ),
      );
      return;
    }
    const mediaType = (response.headers["content-type"] ?? "application/octet-stream")
      .split(";")[0]
      ?.trim()
      .toLowerCase();
    if (mediaType === undefined || !this.options.contentTypes.includes(mediaType)) {
      fail(
        new BundleServiceError(
          "content_type",
          `the server answered 200 with Content-Type ${String(mediaType)}, not a bundle type`,
          { httpStatus: status },
        ),
      );
      return;
    }
    const declared = Number(response.headers["content-length"] ?? Number.NaN);
    if (declared > request.maxBytes) {
      fail(tooLarge(request.maxBytes, `declares ${declared} bytes`));
      return;
    }
    const chunks: Buffer[] = [];
    let received = 0;
    response.on("data", (chunk: Buffer) => {
      received += chunk.length;
      if (received > request.maxBytes) {
        fail(tooLarge(request.maxBytes, "streamed past it"));
        return;
      }
      chunks.push(chunk);
    });
    response.on("error", () => {
      fail(truncated(received));
    });
    response.on("aborted", () => {
      fail(truncated(received));
    });
    response.on("end", () => {
      // `complete` is false when the connection closed before the whole message arrived.
      if (!response.complete) {
        fail(truncated(received));
        return;
      }
      if (received === 0) {
        fail(new BundleServiceError("empty", "the server answered 200 with an empty body"));
        return;
      }
      const etag = response.headers.etag;
      succeed({
        kind: "downloaded",
        status: 200,
        bytes: Buffer.concat(chunks, received),
        etag: etag !== undefined && etag !== "" ? etag : undefined,
        longPolling: mediaType === opaBundleMediaType,
      });
    });
  }

  private async headersFor(request: DownloadRequest): Promise<Record<string, string>> {
    const headers: Record<string, string> = { ...this.options.headers };
    // OPA's preference list, without `delta`: only snapshot bundles are read.
    headers.Prefer =
      request.waitS === undefined ? "modes=snapshot" : `modes=snapshot;wait=${request.waitS}`;
    headers.Accept = this.options.contentTypes.join(", ");
    if (request.etag !== undefined) headers["If-None-Match"] = request.etag;
    const bearer = this.options.credentials.bearer;
    if (bearer !== undefined) {
      const token = await this.bearerToken(bearer);
      headers.Authorization = `${this.options.credentials.bearerScheme ?? "Bearer"} ${token}`;
    }
    return headers;
  }

  /** The token, trimmed of the newline files end with. Its value is never put in a message. */
  private async bearerToken(source: BearerTokenSource): Promise<string> {
    let token: string | undefined;
    if ("file" in source) {
      try {
        token = (await readFile(source.file, "utf8")).trim();
      } catch (error) {
        const code = (error as { code?: unknown }).code;
        throw new BundleServiceError(
          "credentials",
          `bearer token file ${source.file} is unreadable (${typeof code === "string" ? code : "error"})`,
        );
      }
    } else {
      token = this.options.environment[source.environmentVariable]?.trim();
    }
    const where =
      "file" in source ? `file ${source.file}` : `variable ${source.environmentVariable}`;
    if (token === undefined || token === "") {
      throw new BundleServiceError("credentials", `the bearer token (${where}) is empty or unset`);
    }
    if (!/^[\x21-\x7e]+$/.test(token)) {
      throw new BundleServiceError(
        "credentials",
        `the bearer token (${where}) holds characters a header cannot carry`,
      );
    }
    return token;
  }
}

function statusCode(status: number): "http_3xx" | "http_4xx" | "http_5xx" | "http_other" {
  if (status >= 300 && status < 400) return "http_3xx";
  if (status >= 400 && status < 500) return "http_4xx";
  if (status >= 500 && status < 600) return "http_5xx";
  return "http_other";
}

function tooLarge(maxBytes: number, how: string): BundleServiceError {
  return new BundleServiceError("too_large", `the bundle exceeds ${maxBytes} bytes (${how})`, {
    httpStatus: 200,
  });
}

function truncated(received: number): BundleServiceError {
  return new BundleServiceError(
    "truncated",
    `the connection closed after ${received} body bytes, before the answer was complete`,
    { httpStatus: 200 },
  );
}

function classifyNetworkError(error: Error): BundleServiceError {
  const code = (error as { code?: unknown }).code;
  const message = error.message.trim();
  const text = typeof code === "string" ? `${code}: ${message}` : message;
  if (typeof code === "string" && tlsErrorCode.test(code)) {
    return new BundleServiceError("tls", text, { cause: error });
  }
  return new BundleServiceError("network", text, { cause: error });
}

function isLoopback(hostname: string): boolean {
  return (
    hostname === "localhost" ||
    hostname === "[::1]" ||
    /^127\.\d{1,3}\.\d{1,3}\.\d{1,3}$/.test(hostname)
  );
}

/**
 * HTTP over a bare TCP socket, for what clients with manners never do: send
 * headers announcing a body and then withhold it, stop halfway through the
 * headers, or keep a connection idle. Every wait is bounded.
 */
import { connect, type Socket } from "node:net";
import { connect as tlsConnect, type ConnectionOptions } from "node:tls";

export interface RawExchange {
  /** Status of the first response, 0 when none arrived. */
  status: number;
  /** Header names in lower case (the last value of a repeated header). */
  headers: Record<string, string>;
  /** Everything after the first response's header block (not de-chunked). */
  body: string;
  /** The server ended the connection before `waitMs` ran out. */
  closedByServer: boolean;
  /** Time from connecting to the first response byte, or to the end of the wait. */
  firstByteMs: number | undefined;
  /** Time from connecting to the close (or the end of the wait). */
  elapsedMs: number;
}

export interface RawOptions {
  /** Written right after connecting (headers, perhaps part of a body). */
  send: string | Buffer;
  /** Longest wait for the server to answer and close, then the client gives up. */
  waitMs: number;
  /** TLS options: the exchange runs over TLS when given. */
  tls?: ConnectionOptions;
}

/** Connects, writes `send`, and reads until the server closes or `waitMs` passes. */
export function rawExchange(port: number, options: RawOptions): Promise<RawExchange> {
  return new Promise((resolve) => {
    const started = Date.now();
    let firstByteMs: number | undefined;
    const chunks: Buffer[] = [];
    const socket: Socket =
      options.tls === undefined
        ? connect(port, "127.0.0.1")
        : tlsConnect({ port, host: "127.0.0.1", ...options.tls });
    let done = false;
    const finish = (closedByServer: boolean): void => {
      if (done) return;
      done = true;
      clearTimeout(timer);
      socket.destroy();
      resolve({
        ...parse(Buffer.concat(chunks).toString("latin1")),
        closedByServer,
        firstByteMs,
        elapsedMs: Date.now() - started,
      });
    };
    const timer = setTimeout(() => {
      finish(false);
    }, options.waitMs);
    socket.on(options.tls === undefined ? "connect" : "secureConnect", () => {
      socket.write(options.send);
    });
    socket.on("data", (chunk: Buffer) => {
      firstByteMs ??= Date.now() - started;
      chunks.push(chunk);
    });
    socket.on("end", () => {
      finish(true);
    });
    socket.on("close", () => {
      finish(true);
    });
    socket.on("error", () => {
      finish(true);
    });
  });
}

function parse(text: string): Pick<RawExchange, "status" | "headers" | "body"> {
  const end = text.indexOf("\r\n\r\n");
  if (end === -1) return { status: 0, headers: {}, body: "" };
  const [statusLine = "", ...lines] = text.slice(0, end).split("\r\n");
  const headers: Record<string, string> = {};
  for (const line of lines) {
    const colon = line.indexOf(":");
    if (colon > 0)
      headers[line.slice(0, colon).trim().toLowerCase()] = line.slice(colon + 1).trim();
  }
  const status = Number(/^HTTP\/1\.[01] (\d{3})/.exec(statusLine)?.[1] ?? 0);
  return { status, headers, body: text.slice(end + 4) };
}

/** A request head announcing a body of `contentLength` bytes. */
export function head(
  method: string,
  path: string,
  headers: Record<string, string>,
  contentLength?: number,
): string {
  const lines = [`${method} ${path} HTTP/1.1`, "Host: 127.0.0.1"];
  for (const [name, value] of Object.entries(headers)) lines.push(`${name}: ${value}`);
  if (contentLength !== undefined) lines.push(`Content-Length: ${contentLength}`);
  return `${lines.join("\r\n")}\r\n\r\n`;
}

/** The `code` of a JSON error body. */
export function codeOf(body: string): unknown {
  return (JSON.parse(body) as { code?: unknown }).code;
}

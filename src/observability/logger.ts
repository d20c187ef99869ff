import { Writable } from "node:stream";
import winston from "winston";
import type { LineWriter, WriteFailure } from "./log-destination.ts";

/** The diagnostics log: startup, configuration, policy loads, failures. JSON lines. */
export type Logger = winston.Logger;

export interface LoggerOptions {
  level: string;
  /** Where lines go; stdout by default. Tests pass a stream they can read. */
  stream?: NodeJS.WritableStream;
  silent?: boolean;
}

export function createLogger(options: LoggerOptions): Logger {
  const transport = new winston.transports.Stream({ stream: options.stream ?? process.stdout });
  return winston.createLogger({
    level: options.level,
    silent: options.silent ?? false,
    format: winston.format.combine(winston.format.timestamp(), winston.format.json()),
    defaultMeta: { log: "diagnostic" },
    // winston's typings describe its transports as interfaces; the instances are real TransportStreams.
    // eslint-disable-next-line @typescript-eslint/no-unsafe-class-instance-assignment
    transports: [transport],
  });
}

/** Diagnostic bytes waiting for a slow destination beyond which new lines are dropped. */
export const maxPendingDiagnosticBytes = 8 * 1024 * 1024;

/**
 * The stream winston writes diagnostics into, in front of an opened
 * destination. It never errors and never holds winston back: a line the
 * destination cannot take (write error, or a backlog past
 * maxPendingDiagnosticBytes) is handed to `onLost` instead.
 */
export function diagnosticStream(
  writer: LineWriter,
  onLost: (reason: "write_error" | "backpressure", error?: WriteFailure) => void,
): Writable {
  const written = (error: WriteFailure | undefined): void => {
    if (error !== undefined) onLost("write_error", error);
  };
  return new Writable({
    decodeStrings: false,
    write(chunk: string | Buffer, _encoding, callback) {
      if (writer.pendingBytes >= maxPendingDiagnosticBytes) onLost("backpressure");
      else writer.write(typeof chunk === "string" ? chunk : chunk.toString("utf8"), written);
      callback();
    },
  });
}

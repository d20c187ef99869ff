import winston from "winston";

/** The diagnostics log: startup, configuration, policy loads, failures. JSON lines. */
export type Logger = winston.Logger;

export interface LoggerOptions {
  level: string;
  /** Where lines go; stdout by default. Tests pass a stream they can read. */
  stream?: NodeJS.WritableStream;
  /** A file to append to instead of a stream. */
  file?: string;
  silent?: boolean;
}

export function createLogger(options: LoggerOptions): Logger {
  return winston.createLogger({
    level: options.level,
    silent: options.silent ?? false,
    format: winston.format.combine(winston.format.timestamp(), winston.format.json()),
    defaultMeta: { log: "diagnostic" },
    transports: [
      transportFor(
        options.file !== undefined
          ? { file: options.file }
          : { stream: options.stream ?? process.stdout },
      ),
    ],
  });
}

/** A winston transport writing to a stream or appending to a file. */
export function transportFor(
  destination: { stream: NodeJS.WritableStream } | { file: string },
): winston.transport {
  // winston's typings describe its transports as interfaces; the instances are real TransportStreams.
  /* eslint-disable @typescript-eslint/no-unsafe-class-instance-assignment */
  if ("file" in destination) return new winston.transports.File({ filename: destination.file });
  return new winston.transports.Stream({ stream: destination.stream });
  /* eslint-enable @typescript-eslint/no-unsafe-class-instance-assignment */
}

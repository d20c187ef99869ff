import winston from "winston";

/** The diagnostics log: startup, configuration, policy loads, failures. JSON lines. */
export type Logger = winston.Logger;

export interface LoggerOptions {
  level: string;
  /** Where lines go; stdout by default. Tests pass a stream they can read. */
  stream?: NodeJS.WritableStream;
  silent?: boolean;
}

export function createLogger(options: LoggerOptions): Logger {
  return winston.createLogger({
    level: options.level,
    silent: options.silent ?? false,
    format: winston.format.combine(winston.format.timestamp(), winston.format.json()),
    defaultMeta: { log: "diagnostic" },
    transports: [
      // winston's typings describe its transports as interfaces; the instance is a real TransportStream.
      // eslint-disable-next-line @typescript-eslint/no-unsafe-class-instance-assignment
      new winston.transports.Stream({ stream: options.stream ?? process.stdout }),
    ],
  });
}

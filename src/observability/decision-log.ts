import winston from "winston";
import { transportFor } from "./logger.js";
import { serializeRecord } from "./masking.js";

/** One structured record per decision; see README "Decision log" for every field. */
export type DecisionRecord = Record<string, unknown>;

/** Where decision records go. Injected into the API layer; never imported by the core. */
export interface DecisionLog {
  record(entry: DecisionRecord): void;
}

/** Decision logging switched off. */
export const noDecisionLog: DecisionLog = { record: () => undefined };

/** Whether records are written at all (so that none is built when they are not). */
export function isRecording(log: DecisionLog): boolean {
  return log !== noDecisionLog;
}

/** Records waiting for a slow destination beyond which new ones are dropped (and counted). */
// An 8 s saturation run on 2 cores left ~34 000 records waiting for a file (bench section 6);
// 50 000 rides out such bursts and bounds the memory (~150 MB) of a sustained overload.
export const defaultMaxPendingRecords = 50000;

/**
 * JSON lines through winston, separate from the diagnostics log so they can
 * go to a different destination (stdout, stderr or a file).
 *
 * A destination slower than the decision rate (a file under sustained
 * saturation) makes winston hold records in memory without bound. Past
 * `maxPending` waiting records new ones are dropped and `onDrop` is told, so a
 * slow disk costs records, counted in a metric, rather than the process.
 */
export class WinstonDecisionLog implements DecisionLog {
  private readonly logger: winston.Logger;
  private readonly maxPending: number;
  private readonly onDrop: () => void;
  /** The destination stream, when the log writes to one (its buffer is where a stream backlog sits). */
  private readonly stream: NodeJS.WritableStream | undefined;

  constructor(
    destination: { stream: NodeJS.WritableStream } | { file: string },
    options: { maxPending?: number; onDrop?: () => void } = {},
  ) {
    this.logger = winston.createLogger({
      level: "info",
      format: winston.format.printf((info) => serializeRecord(info.record as DecisionRecord)),
      transports: [transportFor(destination)],
    });
    this.maxPending = options.maxPending ?? defaultMaxPendingRecords;
    this.onDrop = options.onDrop ?? (() => undefined);
    this.stream = "stream" in destination ? destination.stream : undefined;
  }

  record(entry: DecisionRecord): void {
    // Records wait in the logger (an object-mode stream: writableLength counts records; where a
    // file backlog sits) or in the destination stream's buffer (bytes; ~1 KB a record).
    const streamBacklog =
      (this.stream as { writableLength?: number } | undefined)?.writableLength ?? 0;
    if (this.logger.writableLength >= this.maxPending || streamBacklog >= this.maxPending * 1024) {
      this.onDrop();
      return;
    }
    this.logger.info("decision", { record: entry });
  }
}

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

/**
 * JSON lines through winston, separate from the diagnostics log so they can
 * go to a different destination (stdout, stderr or a file).
 */
export class WinstonDecisionLog implements DecisionLog {
  private readonly logger: winston.Logger;

  constructor(destination: { stream: NodeJS.WritableStream } | { file: string }) {
    this.logger = winston.createLogger({
      level: "info",
      format: winston.format.printf((info) => serializeRecord(info.record as DecisionRecord)),
      transports: [transportFor(destination)],
    });
  }

  record(entry: DecisionRecord): void {
    this.logger.info("decision", { record: entry });
  }
}

import type { LineWriter, WriteFailure } from "./log-destination.ts";
import { serializeRecord } from "./masking.ts";

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
 * Why a record was lost (the `reason` label of mcp_pdp_decision_records_dropped_total):
 * the destination fell too far behind, refused the write (ENOSPC, EIO, a closed pipe), or
 * the record could not be turned into JSON.
 */
export const droppedRecordReasons = ["backpressure", "write_error", "serialize_error"] as const;
export type DroppedRecordReason = (typeof droppedRecordReasons)[number];

/** Records waiting for a slow destination beyond which new ones are dropped (and counted). */
// An 8 s saturation run on 2 cores left ~34 000 records waiting for a file (bench section 6);
// 50 000 rides out such bursts and bounds the memory (~150 MB) of a sustained overload.
export const defaultMaxPendingRecords = 50000;

export interface JsonLinesDecisionLogOptions {
  /** Records accepted and not yet written beyond which new ones are dropped. */
  maxPending?: number;
  /** Bytes waiting in the destination beyond which new records are dropped (default maxPending KiB). */
  maxPendingBytes?: number;
  /** Told about every lost record, with the write's error when there is one. */
  onDrop?: (reason: DroppedRecordReason, error?: unknown) => void;
}

/**
 * One JSON line per record, written to an opened destination (a standard
 * stream or a file, see log-destination.ts), separate from the diagnostics
 * log so that the two can go to different places.
 *
 * No record is lost silently and none takes the process down: a destination
 * slower than the decision rate (a file under sustained saturation) gets at
 * most `maxPending` records (or `maxPendingBytes`) ahead, after which new
 * ones are dropped; a write the destination refuses is reported when it
 * fails. Either way `onDrop` is told, for the metric and the diagnostics.
 */
export class JsonLinesDecisionLog implements DecisionLog {
  private readonly writer: LineWriter;
  private readonly maxPending: number;
  private readonly maxPendingBytes: number;
  private readonly onDrop: (reason: DroppedRecordReason, error?: unknown) => void;
  /** Records handed to the writer whose write has not finished. */
  private pending = 0;
  private readonly written = (error: WriteFailure | undefined): void => {
    this.pending -= 1;
    if (error !== undefined) this.onDrop("write_error", error);
  };

  constructor(writer: LineWriter, options: JsonLinesDecisionLogOptions = {}) {
    this.writer = writer;
    this.maxPending = options.maxPending ?? defaultMaxPendingRecords;
    this.maxPendingBytes = options.maxPendingBytes ?? this.maxPending * 1024;
    this.onDrop = options.onDrop ?? (() => undefined);
  }

  record(entry: DecisionRecord): void {
    if (this.pending >= this.maxPending || this.writer.pendingBytes >= this.maxPendingBytes) {
      this.onDrop("backpressure");
      return;
    }
    let line: string;
    try {
      line = `${serializeRecord(entry)}\n`;
    } catch (error) {
      // A value JSON cannot hold (a BigInt from a custom builtin, a cycle): lose the record,
      // not the request that made the decision.
      this.onDrop("serialize_error", error);
      return;
    }
    this.pending += 1;
    this.writer.write(line, this.written);
  }
}

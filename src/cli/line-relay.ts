import { statSync } from "node:fs";
import type { MessagePort } from "node:worker_threads";
import type { LineWriter, LogTarget, WriteFailure } from "../observability/log-destination.ts";
import type { FromWorker } from "./worker-protocol.ts";

/**
 * Whether a worker thread must hand its decision lines to the main thread:
 * when the destination is a file path that is not a regular file (a pipe, as
 * `/dev/stdout` is in a container). Appends to a regular file are whole
 * whatever their size; writes to a pipe only up to PIPE_BUF (4 KiB), so
 * several threads writing one pipe would interleave longer records mid-line.
 * The `stdout`/`stderr` destinations need nothing: a worker's standard
 * streams are written by the main thread already.
 */
export function needsRelay(target: LogTarget | "off"): boolean {
  if (target === "off" || !("file" in target)) return false;
  try {
    return !statSync(target.file).isFile();
  } catch {
    // Opened (and created) by the main thread at startup; gone since: the worker's own open says so.
    return false;
  }
}

/**
 * A worker thread's decision lines, written by the main thread through its
 * own writer of the destination, one after another. Each line's outcome comes
 * back, so losses are counted where the record was made, and the lines still
 * in flight are this writer's backlog (the decision log's backpressure).
 */
export class RelayLineWriter implements LineWriter {
  private readonly port: MessagePort;
  private readonly waiting = new Map<
    number,
    { bytes: number; done: ((error: WriteFailure | undefined) => void) | undefined }
  >();
  private nextId = 1;
  private pending = 0;

  constructor(port: MessagePort) {
    this.port = port;
  }

  get pendingBytes(): number {
    return this.pending;
  }

  write(text: string, done?: (error: WriteFailure | undefined) => void): void {
    const id = this.nextId++;
    const bytes = Buffer.byteLength(text);
    this.waiting.set(id, { bytes, done });
    this.pending += bytes;
    this.port.postMessage({ type: "decision-lines", id, text } satisfies FromWorker);
  }

  /** The main thread's word on line `id`: written, or the error that stopped it. */
  settle(id: number, error: { code: string | undefined; message: string } | undefined): void {
    const line = this.waiting.get(id);
    if (line === undefined) return;
    this.waiting.delete(id);
    this.pending -= line.bytes;
    if (error === undefined) {
      line.done?.(undefined);
      return;
    }
    const failure: WriteFailure = new Error(error.message);
    if (error.code !== undefined) failure.code = error.code;
    line.done?.(failure);
  }
}

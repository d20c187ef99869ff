import { accessSync, constants, openSync, statSync, writev } from "node:fs";
import { dirname } from "node:path";
import { describeThrown, StartupError } from "../errors.ts";

/** Where a log goes once it is on: a standard stream or a file appended to. */
export type LogTarget = { stream: "stdout" | "stderr" } | { file: string };

/** Why a line did not reach its destination. */
export type WriteFailure = NodeJS.ErrnoException;

/**
 * An opened log destination taking whole lines. It never throws and never
 * emits `error` (an unhandled `error` event would end the process): each
 * line's `done` hears whether it was written, so a failure is counted where
 * it happens instead of being lost or killing the service.
 */
export interface LineWriter {
  /** Queues `text` (whole lines, newline included); `done` gets the error if it was not written. */
  write(text: string, done?: (error: WriteFailure | undefined) => void): void;
  /** Bytes accepted and not yet written: where a slow destination's backlog sits. */
  readonly pendingBytes: number;
}

/**
 * Opens a log destination at startup. A file is opened for appending now and
 * the descriptor kept, so everything the operating system can refuse up front
 * (a directory, a missing parent, a path through a regular file, a symlink
 * loop, a name too long, no permission, a read-only file system, a FIFO with
 * no reader) stops the start, naming the variable and the errno, instead of
 * surfacing later. ENOSPC, EIO and the like can only happen at run time: the
 * writer reports them line by line.
 */
export function openLineWriter(variable: string, target: LogTarget): LineWriter {
  if ("stream" in target) {
    return new StreamLineWriter(target.stream === "stderr" ? process.stderr : process.stdout);
  }
  return new FileLineWriter(openForAppending(variable, target.file));
}

/** The file's descriptor, opened for appending (created if missing); StartupError otherwise. */
export function openForAppending(variable: string, path: string): number {
  try {
    // O_NONBLOCK: opening a FIFO nobody reads fails (ENXIO) instead of hanging the start; it
    // changes nothing for regular files, and a full pipe's EAGAIN is retried by the writer.
    return openSync(
      path,
      constants.O_WRONLY | constants.O_APPEND | constants.O_CREAT | constants.O_NONBLOCK,
      0o666,
    );
  } catch (error) {
    const reason = error instanceof Error ? error.message : String(error);
    throw new StartupError("log_unwritable", [
      `${variable}=${path}: cannot append to it: ${reason}`,
    ]);
  }
}

/**
 * What opening `path` for appending would say, without creating anything
 * (`mcp-pdp check` must leave no files behind): a file that exists must be
 * writable and not a directory; one that does not must have a writable
 * directory. Undefined when serve could open it. (A FIFO with no reader is
 * only found by opening it.)
 */
export function appendProblem(variable: string, path: string): string | undefined {
  const refused = (reason: string) => `${variable}=${path}: cannot append to it: ${reason}`;
  try {
    const info = statSync(path, { throwIfNoEntry: false });
    if (info === undefined) {
      accessSync(dirname(path), constants.W_OK);
      return undefined;
    }
    if (info.isDirectory()) return refused("it is a directory");
    accessSync(path, constants.W_OK);
    return undefined;
  } catch (error) {
    return refused(error instanceof Error ? error.message : String(error));
  }
}

/** Streams whose `error` events are already taken care of (a listener added once). */
const guardedStreams = new WeakSet<NodeJS.WritableStream>();

/**
 * Lines to a Node stream (stdout, stderr, or a test's stream). A failed write
 * is reported to that line's `done`; the stream's `error` event, which would
 * otherwise end the process (stdout to /dev/full, a closed pipe), is absorbed.
 */
export class StreamLineWriter implements LineWriter {
  private readonly stream: NodeJS.WritableStream & { writableLength?: number };

  constructor(stream: NodeJS.WritableStream) {
    this.stream = stream;
    if (!guardedStreams.has(stream)) {
      guardedStreams.add(stream);
      // Each write's callback receives the same error; that is where it is counted.
      stream.on("error", () => undefined);
    }
  }

  get pendingBytes(): number {
    return this.stream.writableLength ?? 0;
  }

  write(text: string, done?: (error: WriteFailure | undefined) => void): void {
    try {
      this.stream.write(text, (error) => done?.(error ?? undefined));
    } catch (error) {
      done?.(asFailure(error));
    }
  }
}

interface QueuedLine {
  data: Buffer;
  done: ((error: WriteFailure | undefined) => void) | undefined;
}

/**
 * Appends lines to a file descriptor with one writev per batch: the lines of
 * one event-loop turn, and those that arrive while a write is in flight, go
 * out together in the next. Unlike
 * fs.WriteStream, a failed write does not destroy the writer: the lines of
 * that batch are reported as failed and the next batch is tried, so a disk
 * that fills up and is freed again resumes logging.
 */
export class FileLineWriter implements LineWriter {
  private readonly fd: number;
  private queue: QueuedLine[] = [];
  private queuedBytes = 0;
  private writing = false;
  /** A write of the lines queued in this event-loop turn is scheduled (setImmediate). */
  private gathering = false;
  /** A failure left part of a line in the file: the next batch starts on a new line. */
  private lineBroken = false;
  private readonly retryMs: number;

  constructor(fd: number, options: { retryMs?: number } = {}) {
    this.fd = fd;
    this.retryMs = options.retryMs ?? 20;
  }

  get pendingBytes(): number {
    return this.queuedBytes;
  }

  write(text: string, done?: (error: WriteFailure | undefined) => void): void {
    const data = Buffer.from(text, "utf8");
    this.queue.push({ data, done });
    this.queuedBytes += data.length;
    if (!this.writing && !this.gathering) {
      // The lines of this event-loop turn (every request that epoll delivered at once) go out in
      // one writev: a write per line costs a thread-pool hand-off each, which under load costs
      // more than building the record.
      this.gathering = true;
      setImmediate(this.writeGathered);
    }
  }

  private readonly writeGathered = (): void => {
    this.gathering = false;
    if (!this.writing) this.writeNext();
  };

  private writeNext(): void {
    const batch = this.queue;
    this.queue = [];
    if (batch.length === 0) {
      this.writing = false;
      return;
    }
    this.writing = true;
    if (this.lineBroken) {
      this.lineBroken = false;
      batch.unshift({ data: Buffer.from("\n"), done: undefined });
      this.queuedBytes += 1;
    }
    this.writeBatch(batch, 0);
  }

  /** Writes `batch` from byte `offset` of its first line on (after a partial write). */
  private writeBatch(batch: QueuedLine[], offset: number): void {
    const buffers = batch.map((line, i) => (i === 0 ? line.data.subarray(offset) : line.data));
    writev(this.fd, buffers, (error, written) => {
      if (error !== null) {
        if (error.code === "EAGAIN") {
          // A pipe (e.g. /dev/stdout opened by path) that is full: wait for its reader.
          setTimeout(() => {
            this.writeBatch(batch, offset);
          }, this.retryMs);
          return;
        }
        if (offset > 0) this.lineBroken = true;
        for (const line of batch) this.settle(line, error);
        this.writeNext();
        return;
      }
      if (written === 0) {
        // No progress and no error: give up on this batch rather than spin.
        const stalled: WriteFailure = new Error("the write made no progress");
        stalled.code = "EIO";
        for (const line of batch) this.settle(line, stalled);
        this.writeNext();
        return;
      }
      // libuv writes the whole batch unless something stops it; then the rest is retried, and
      // the next attempt reports the error (ENOSPC) for the lines it could not write.
      let remaining = written + offset;
      let index = 0;
      for (; index < batch.length; index++) {
        const line = batch[index];
        if (line === undefined || remaining < line.data.length) break;
        remaining -= line.data.length;
        this.settle(line, undefined);
      }
      if (index < batch.length) {
        this.writeBatch(batch.slice(index), remaining);
        return;
      }
      this.writeNext();
    });
  }

  private settle(line: QueuedLine, error: WriteFailure | undefined): void {
    this.queuedBytes -= line.data.length;
    line.done?.(error);
  }
}

function asFailure(error: unknown): WriteFailure {
  return error instanceof Error ? error : new Error(String(error));
}

/** One summary of the failures since the last one. */
export interface FailureSummary {
  /** Failures per kind (e.g. `write_error`, `backpressure`) since the last summary. */
  counts: Record<string, number>;
  /** The last error's message (with its errno, e.g. `ENOSPC: no space left on device, write`). */
  lastError: string | undefined;
}

/**
 * Turns a stream of failures into at most one report per interval: the first
 * at once, later ones summed into the next report (a timer sends the last sum
 * when failures stop). A full disk fails every record; without this the
 * diagnostics would get one line per record.
 */
export class FailureReporter {
  private readonly emit: (summary: FailureSummary) => void;
  private readonly intervalMs: number;
  private readonly now: () => number;
  private counts: Record<string, number> = {};
  private lastError: string | undefined;
  private pending = false;
  private lastEmitAt = Number.NEGATIVE_INFINITY;
  private timer: NodeJS.Timeout | undefined;

  constructor(
    emit: (summary: FailureSummary) => void,
    options: { intervalMs?: number; now?: () => number } = {},
  ) {
    this.emit = emit;
    this.intervalMs = options.intervalMs ?? 10_000;
    this.now = options.now ?? Date.now;
  }

  report(kind: string, error?: unknown): void {
    this.counts[kind] = (this.counts[kind] ?? 0) + 1;
    if (error !== undefined) this.lastError = describeThrown(error);
    this.pending = true;
    const wait = this.lastEmitAt + this.intervalMs - this.now();
    if (wait <= 0) {
      this.flush();
      return;
    }
    if (this.timer === undefined) {
      this.timer = setTimeout(() => {
        this.timer = undefined;
        this.flush();
      }, wait);
      // Never what keeps the process alive.
      this.timer.unref();
    }
  }

  private flush(): void {
    if (!this.pending) return;
    const summary: FailureSummary = { counts: this.counts, lastError: this.lastError };
    this.counts = {};
    this.pending = false;
    this.lastEmitAt = this.now();
    try {
      this.emit(summary);
    } catch {
      // Reporting a failure must not become one.
    }
  }
}

import { watch, type FSWatcher } from "node:fs";
import { stat } from "node:fs/promises";
import { basename, dirname, resolve } from "node:path";
import type {
  ActivationOutcome,
  ActivationTrigger,
  PolicyHolder,
  PolicySourceName,
} from "./policy-holder.ts";
import { loadActivePolicy, type PolicySource } from "./policy-loader.ts";

/** Editors write a file in several steps (truncate, write, rename); one reload after the last. */
export const watchDebounceMs = 250;

export interface LocalReloaderOptions {
  /** Files to watch: the bundle (unless it is the embedded one) and the data file. */
  watched: readonly string[];
  debounceMs?: number;
  /**
   * The holder's source name for these reloads: `local`, or `service` when
   * the data file is merged over the service's bundle (so the candidate, and
   * the staleness of the active source, stay the service's).
   */
  sourceName?: PolicySourceName;
  /** A watch that could not be set up or failed later (the source stays, unwatched). */
  onWatchError?: (path: string, error: Error) => void;
}

/**
 * The local source: PDP_BUNDLE and PDP_DATA, read and checked as one
 * candidate and handed to the holder, on demand (SIGHUP, the admin API) or
 * when a watched file changes. The watch is on each file's directory, not
 * the file: an editor that saves by writing a new file and renaming it over
 * the old one replaces the inode a file watch would follow.
 */
export class LocalPolicyReloader {
  private readonly holder: PolicyHolder;
  /** Asked at each reload: with a bundle service, the data file is merged over its last bundle. */
  private readonly source: () => PolicySource;
  private readonly options: LocalReloaderOptions;
  private readonly watchers: FSWatcher[] = [];
  private timer: NodeJS.Timeout | undefined;
  /** A reload asked for and not yet started. */
  private waiting: Promise<ActivationOutcome> | undefined;

  constructor(
    holder: PolicyHolder,
    source: PolicySource | (() => PolicySource),
    options: LocalReloaderOptions,
  ) {
    this.holder = holder;
    this.source = typeof source === "function" ? source : () => source;
    this.options = options;
  }

  /**
   * Reads both files now and activates them unless they fail or change
   * nothing. Requests that arrive while one is still waiting its turn share
   * it (it reads the files when it starts, so it sees their latest state):
   * at most one reload runs and one waits, however often SIGHUP, the admin
   * API or the watcher ask.
   */
  reload(trigger: ActivationTrigger): Promise<ActivationOutcome> {
    if (this.waiting !== undefined) return this.waiting;
    const attempt = this.holder.activateCandidate(
      this.options.sourceName ?? "local",
      () => {
        this.waiting = undefined;
        return loadActivePolicy(this.source());
      },
      trigger,
      // Under a bundle service the files re-read here are only the operator data: the service was
      // not asked, so its staleness and its last failure stand.
      { fetched: this.options.sourceName !== "service" },
    );
    this.waiting = attempt;
    return attempt;
  }

  /** Starts watching. The watchers never keep the process alive; stop() ends them. */
  async start(): Promise<void> {
    for (const path of this.options.watched) {
      const target = resolve(path);
      // A bundle directory is watched itself (recursively: any file in it); a file, through its directory.
      const isDirectory = (await stat(target)).isDirectory();
      const directory = isDirectory ? target : dirname(target);
      const name = basename(target);
      let watcher: FSWatcher;
      try {
        watcher = watch(
          directory,
          { persistent: false, recursive: isDirectory },
          (_event, file) => {
            // Without a name (some platforms) any change in the directory may be ours.
            if (isDirectory || file === null || file === name) this.changed();
          },
        );
      } catch (error) {
        this.options.onWatchError?.(path, error as Error);
        continue;
      }
      watcher.on("error", (error) => {
        this.options.onWatchError?.(path, error);
      });
      this.watchers.push(watcher);
    }
  }

  stop(): void {
    clearTimeout(this.timer);
    for (const watcher of this.watchers) watcher.close();
    this.watchers.length = 0;
  }

  private changed(): void {
    clearTimeout(this.timer);
    this.timer = setTimeout(() => {
      // The outcome reaches the log and metrics through the holder's listeners.
      void this.reload("watch");
    }, this.options.debounceMs ?? watchDebounceMs);
    this.timer.unref();
  }
}

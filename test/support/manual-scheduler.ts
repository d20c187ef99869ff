import type { Scheduler } from "../../src/policy/bundle-service.ts";

/**
 * A Scheduler whose timers fire only when the test says so: `fire()` waits
 * (boundedly, in real time) until a timer is pending, moves the clock by its
 * delay, runs it and returns the delay. Polling delays of minutes cost
 * nothing, and a test can assert every delay the client asked for.
 */
export class ManualScheduler implements Scheduler {
  time = Date.parse("2026-01-01T00:00:00Z");
  private pending: { run: () => void; delayMs: number } | undefined;
  private waiter: (() => void) | undefined;

  now = (): number => this.time;

  schedule(run: () => void, delayMs: number): { cancel(): void } {
    const timer = { run, delayMs };
    this.pending = timer;
    this.waiter?.();
    return {
      cancel: () => {
        if (this.pending === timer) this.pending = undefined;
      },
    };
  }

  /** Whether a timer is pending now. */
  hasPending(): boolean {
    return this.pending !== undefined;
  }

  /** Fires the pending timer (waiting up to `waitMs` for one) and returns its delay. */
  async fire(waitMs = 5000): Promise<number> {
    if (this.pending === undefined) {
      await new Promise<void>((resolve, reject) => {
        const timeout = setTimeout(() => {
          this.waiter = undefined;
          reject(new Error(`no timer was scheduled within ${waitMs} ms`));
        }, waitMs);
        this.waiter = () => {
          clearTimeout(timeout);
          this.waiter = undefined;
          resolve();
        };
      });
    }
    const timer = this.pending;
    if (timer === undefined) throw new Error("the timer was cancelled");
    this.pending = undefined;
    this.time += timer.delayMs;
    timer.run();
    return timer.delayMs;
  }
}

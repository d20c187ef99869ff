/**
 * How every benchmark script runs: its main, then its cleanup (loads and
 * servers stopped, scratch removed) whatever happens; Ctrl-C or SIGTERM stops
 * the load and the servers before exiting, and nothing it started outlives
 * the process.
 */
import { stopLoads } from "./load.ts";
import { killAllNow, stopAll } from "./processes.ts";
import { killPacedNow, stopPacedLoads, StoppedError } from "./vegeta.ts";

export async function runBenchmark(
  main: () => Promise<void>,
  cleanupOwn: () => Promise<void> | void,
): Promise<void> {
  const cleanup = async (): Promise<void> => {
    stopLoads();
    await stopPacedLoads();
    await stopAll();
    await cleanupOwn();
  };
  process.on("exit", () => {
    killPacedNow();
    killAllNow();
  });
  for (const signal of ["SIGINT", "SIGTERM"] as const) {
    process.once(signal, () => {
      process.stderr.write(`\n${signal}: stopping the load and the servers\n`);
      void cleanup().finally(() => process.exit(130));
    });
  }
  try {
    await main();
  } catch (error) {
    // A run cut short by Ctrl-C has been reported by the signal handler already.
    if (!(error instanceof StoppedError))
      process.stderr.write(
        `bench failed: ${error instanceof Error ? (error.stack ?? error.message) : String(error)}\n`,
      );
    process.exitCode = 1;
  } finally {
    await cleanup();
  }
}

import { spawn, type ChildProcess } from "node:child_process";
import { accessSync, constants, readFileSync } from "node:fs";
import { request as httpsRequest } from "node:https";

/** A process a test started (its own process group), with its output captured. */
export interface Managed {
  name: string;
  child: ChildProcess;
  /** stdout and stderr so far, interleaved. */
  output: () => string;
  /** Resolves with the exit code (null when killed by a signal). */
  exited: Promise<number | null>;
  /** SIGTERM to the process group, SIGKILL after `graceMs`; resolves once it exited. */
  stop: (graceMs?: number) => Promise<void>;
}

/**
 * Starts `command` in its own process group (so that nginx's workers go with
 * its master) on behalf of a test. Only this child's group is ever signalled.
 */
export function spawnManaged(
  name: string,
  command: string,
  args: string[],
  options: { cwd?: string; env?: Record<string, string>; logFile?: string } = {},
): Managed {
  const child = spawn(command, args, {
    cwd: options.cwd,
    env: options.env ?? { PATH: process.env.PATH ?? "" },
    stdio: ["ignore", "pipe", "pipe"],
    detached: true,
  });
  let output = "";
  const append = (chunk: Buffer) => {
    output += chunk.toString("utf8");
    if (output.length > 200_000) output = output.slice(-100_000);
  };
  child.stdout.on("data", append);
  child.stderr.on("data", append);
  let done = false;
  const exited = new Promise<number | null>((resolve) => {
    child.once("exit", (code) => {
      done = true;
      resolve(code);
    });
    child.once("error", (error) => {
      done = true;
      output += `\n[spawn error] ${error.message}\n`;
      resolve(-1);
    });
  });
  const signal = (sig: NodeJS.Signals) => {
    const pid = child.pid;
    if (pid === undefined || done) return;
    try {
      process.kill(-pid, sig);
    } catch {
      // already gone
    }
  };
  // Should the test process end without its after hooks, take the child along.
  const onExit = () => {
    signal("SIGKILL");
  };
  process.once("exit", onExit);
  void exited.then(() => process.removeListener("exit", onExit));
  const stop = async (graceMs = 5000): Promise<void> => {
    if (done) return;
    signal("SIGTERM");
    const timer = setTimeout(() => {
      signal("SIGKILL");
    }, graceMs);
    await exited;
    clearTimeout(timer);
  };
  const logFile = options.logFile;
  const fullOutput = () => {
    if (logFile === undefined) return output;
    let log = "";
    try {
      log = readFileSync(logFile, "utf8").slice(-20000);
    } catch {
      // not written yet
    }
    return `${output}\n[${logFile}]\n${log}`;
  };
  return { name, child, output: fullOutput, exited, stop };
}

/** What an HTTPS client of an mTLS listener presents: the CA to trust, its certificate and key (PEM). */
export interface ClientTls {
  ca: string;
  cert: string;
  key: string;
}

/** The status of a GET over HTTPS with a client certificate (fetch cannot present one). */
export function httpsStatus(url: string, tls: ClientTls, timeoutMs = 2000): Promise<number> {
  return new Promise((resolve, reject) => {
    const request = httpsRequest(url, { ...tls, agent: false, timeout: timeoutMs }, (response) => {
      response.resume();
      resolve(response.statusCode ?? 0);
    });
    request.on("timeout", () => {
      request.destroy(new Error("timed out"));
    });
    request.on("error", reject);
    request.end();
  });
}

/**
 * Polls `url` until `ready(status)` holds (over HTTPS with `tls` when given).
 * Fails with the process output when the process exits first or the deadline
 * passes.
 */
export async function waitForHttp(
  url: string,
  managed: Managed,
  ready: (status: number) => boolean = (status) => status === 200,
  timeoutMs = 30000,
  tls?: ClientTls,
): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  let exitCode: number | null | undefined;
  void managed.exited.then((code) => {
    exitCode = code;
  });
  let last = "no answer";
  while (Date.now() < deadline) {
    if (exitCode !== undefined) {
      throw new Error(
        `${managed.name} exited (${String(exitCode)}) before ${url} answered:\n${managed.output()}`,
      );
    }
    try {
      let status: number;
      if (tls === undefined) {
        const response = await fetch(url, { signal: AbortSignal.timeout(2000) });
        await response.body?.cancel();
        status = response.status;
      } else {
        status = await httpsStatus(url, tls);
      }
      if (ready(status)) return;
      last = `status ${status}`;
    } catch (error) {
      last = error instanceof Error ? error.message : String(error);
    }
    await new Promise((resolve) => setTimeout(resolve, 100));
  }
  await managed.stop();
  throw new Error(`${managed.name} not ready at ${url} (${last}):\n${managed.output()}`);
}

/** The first of `candidates` that exists and is executable, else the name itself (PATH lookup). */
export function findExecutable(name: string, candidates: string[]): string {
  for (const candidate of candidates) {
    try {
      accessSync(candidate, constants.X_OK);
      return candidate;
    } catch {
      // next
    }
  }
  return name;
}

export { freePort } from "../../support/ports.ts";

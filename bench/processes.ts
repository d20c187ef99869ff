/** Child servers on loopback: spawn (optionally pinned to a core), wait until ready, measure CPU, stop. */
import { spawn, execFileSync, type ChildProcess } from "node:child_process";
import { readdirSync, readFileSync } from "node:fs";
import { createServer } from "node:net";
import { setTimeout as sleep } from "node:timers/promises";

export interface Server {
  name: string;
  pid: number;
  baseUrl: string;
  /** Resolves with the exit code (or signal name) once the process has exited. */
  exited: Promise<string>;
  hasExited: () => boolean;
  /** The last lines the process wrote to stdout/stderr, for error reports. */
  tail: () => string;
}

const running = new Set<{ server: Server; child: ChildProcess }>();

export interface SpawnOptions {
  name: string;
  command: string;
  args: readonly string[];
  env: NodeJS.ProcessEnv;
  cwd: string;
  port: number;
  /** Core to pin the process to with taskset, or undefined to leave it unpinned. */
  cpu: number | undefined;
  /**
   * The child's stdout: "pipe" (the default) reads it into this process for
   * `tail`; "ignore" attaches /dev/null, so what it writes never reaches this
   * process (only stderr is kept for `tail` then).
   */
  stdout?: "pipe" | "ignore";
}

export function startServer(options: SpawnOptions): Server {
  const [command, args] =
    options.cpu === undefined
      ? [options.command, [...options.args]]
      : ["taskset", ["-c", String(options.cpu), options.command, ...options.args]];
  const child = spawn(command, args, {
    cwd: options.cwd,
    env: options.env,
    stdio: ["ignore", options.stdout ?? "pipe", "pipe"],
  });
  const lines: string[] = [];
  const keep = (chunk: Buffer): void => {
    for (const line of chunk.toString("utf8").split("\n")) {
      if (line.trim() === "") continue;
      lines.push(line);
      if (lines.length > 20) lines.shift();
    }
  };
  child.stdout?.on("data", keep);
  child.stderr?.on("data", keep);
  let done = false;
  const exited = new Promise<string>((resolve) => {
    child.on("exit", (code, signal) => {
      done = true;
      resolve(signal ?? String(code));
    });
    child.on("error", (error) => {
      done = true;
      lines.push(error.message);
      resolve("spawn error");
    });
  });
  if (child.pid === undefined) throw new Error(`${options.name}: could not start ${command}`);
  const server: Server = {
    name: options.name,
    pid: child.pid,
    baseUrl: `http://127.0.0.1:${options.port}`,
    exited,
    hasExited: () => done,
    tail: () => lines.join("\n"),
  };
  const entry = { server, child };
  running.add(entry);
  void exited.then(() => running.delete(entry));
  return server;
}

/**
 * Polls `path` until it answers 2xx; fails if the process exits or `timeoutMs` passes.
 * `headers` carry a credential when the server's ops endpoints are closed.
 */
export async function waitReady(
  server: Server,
  path: string,
  timeoutMs: number,
  headers: Record<string, string> = {},
): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (Date.now() < deadline) {
    if (server.hasExited()) {
      throw new Error(`${server.name} exited before it was ready:\n${server.tail()}`);
    }
    try {
      const response = await fetch(`${server.baseUrl}${path}`, {
        headers,
        signal: AbortSignal.timeout(1000),
      });
      await response.arrayBuffer();
      if (response.ok) return;
    } catch {
      // not listening yet
    }
    await sleep(100);
  }
  throw new Error(`${server.name} was not ready within ${timeoutMs} ms:\n${server.tail()}`);
}

/** SIGTERM, then SIGKILL after `graceMs`; resolves once the process is gone (bounded). */
export async function stopServer(server: Server, graceMs = 5000): Promise<void> {
  const entry = [...running].find((e) => e.server === server);
  if (entry === undefined || server.hasExited()) return;
  entry.child.kill("SIGTERM");
  // Unreferenced timers: once the server is gone, nothing should hold the bench process open.
  await Promise.race([server.exited, sleep(graceMs, undefined, { ref: false })]);
  if (!server.hasExited()) {
    entry.child.kill("SIGKILL");
    await Promise.race([server.exited, sleep(2000, undefined, { ref: false })]);
  }
}

export async function stopAll(): Promise<void> {
  await Promise.all([...running].map((entry) => stopServer(entry.server)));
}

/** Last resort on exit: the process is leaving, so only synchronous kills are possible. */
export function killAllNow(): void {
  for (const entry of running) {
    if (!entry.server.hasExited()) entry.child.kill("SIGKILL");
  }
}

/** A port free on 127.0.0.1 at the time of asking. */
export function freePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const probe = createServer();
    probe.once("error", reject);
    probe.listen(0, "127.0.0.1", () => {
      const address = probe.address();
      const port = typeof address === "object" && address !== null ? address.port : 0;
      probe.close(() => {
        resolve(port);
      });
    });
  });
}

let clockTicks: number | undefined;

/**
 * Two fields of /proc/<pid>/stat added up, in CPU seconds. Fields count from 1
 * as in proc(5). The clock rate is asked for (a getconf child) before the file
 * is read, so that first call does not skew a children's-time reading.
 */
function statSeconds(pid: number | "self", a: number, b: number): number | undefined {
  try {
    clockTicks ??= Number(execFileSync("getconf", ["CLK_TCK"], { encoding: "utf8" }).trim()) || 100;
    const stat = readFileSync(`/proc/${pid}/stat`, "utf8");
    // After "pid (comm) ", field 3 (state) is index 0.
    const fields = stat.slice(stat.lastIndexOf(")") + 2).split(" ");
    const ticks = Number(fields[a - 3]) + Number(fields[b - 3]);
    return Number.isFinite(ticks) ? ticks / clockTicks : undefined;
  } catch {
    return undefined;
  }
}

/**
 * Bytes a process has passed to write-family system calls so far (files,
 * pipes, sockets, /dev/null alike): `wchar` of /proc/<pid>/io.
 */
export function writtenBytes(pid: number): number | undefined {
  try {
    const line = readFileSync(`/proc/${pid}/io`, "utf8")
      .split("\n")
      .find((l) => l.startsWith("wchar:"));
    const value = Number(line?.slice("wchar:".length).trim());
    return line === undefined || !Number.isFinite(value) ? undefined : value;
  } catch {
    return undefined;
  }
}

/**
 * The process and its live descendants (a server may serve from child
 * processes, as node:cluster workers do), from /proc/<pid>/task/<tid>/children.
 */
function processTree(pid: number): number[] {
  const tree = [pid];
  for (let i = 0; i < tree.length; i++) {
    const parent = tree[i];
    try {
      for (const task of readdirSync(`/proc/${parent}/task`)) {
        const children = readFileSync(`/proc/${parent}/task/${task}/children`, "utf8").trim();
        if (children !== "") tree.push(...children.split(" ").map(Number));
      }
    } catch {
      // gone meanwhile, or no children file: no descendants to add
    }
  }
  return tree;
}

/**
 * User + system CPU seconds consumed so far by a process (all its threads)
 * and its live child processes, from /proc: a server's CPU however it spreads
 * its workers. Undefined when the process itself cannot be read.
 */
export function cpuSeconds(pid: number): number | undefined {
  const [own, ...children] = processTree(pid).map((p) => statSeconds(p, 14, 15)); // utime, stime
  if (own === undefined) return undefined;
  return children.reduce<number>((sum, seconds) => sum + (seconds ?? 0), own);
}

/**
 * Resident memory of a process and its live child processes, in bytes (VmRSS
 * of /proc/<pid>/status); undefined when the process itself cannot be read.
 */
export function rssBytes(pid: number): number | undefined {
  const rss = (p: number): number | undefined => {
    try {
      const line = readFileSync(`/proc/${p}/status`, "utf8")
        .split("\n")
        .find((l) => l.startsWith("VmRSS:"));
      const kib = Number(line?.slice("VmRSS:".length).replace("kB", "").trim());
      return line === undefined || !Number.isFinite(kib) ? undefined : kib * 1024;
    } catch {
      return undefined;
    }
  };
  const [own, ...children] = processTree(pid).map(rss);
  if (own === undefined) return undefined;
  return children.reduce<number>((sum, bytes) => sum + (bytes ?? 0), own);
}

/**
 * Busy seconds of one core so far, whoever ran on it (user, nice, system,
 * irq, softirq and steal from /proc/stat): with a pinned server, the busy
 * time beyond the server's own CPU is other load on its core.
 */
export function coreBusySeconds(core: number): number | undefined {
  try {
    clockTicks ??= Number(execFileSync("getconf", ["CLK_TCK"], { encoding: "utf8" }).trim()) || 100;
    const line = readFileSync("/proc/stat", "utf8")
      .split("\n")
      .find((l) => l.startsWith(`cpu${core} `));
    if (line === undefined) return undefined;
    // cpuN user nice system idle iowait irq softirq steal ...
    const [user, nice, system, , , irq, softirq, steal] = line
      .trim()
      .split(/\s+/)
      .slice(1)
      .map(Number);
    const ticks = [user, nice, system, irq, softirq, steal].reduce<number>(
      (sum, v) => sum + (v ?? 0),
      0,
    );
    return Number.isFinite(ticks) ? ticks / clockTicks : undefined;
  } catch {
    return undefined;
  }
}

/**
 * User + system CPU seconds of this process's children that have exited and
 * been waited for (node reaps them before their "exit" event).
 */
export function reapedChildrenCpuSeconds(): number | undefined {
  return statSeconds("self", 16, 17); // cutime, cstime
}

/**
 * Core pinning: with taskset and at least two allowed cores, the servers get
 * the last allowed core and this process (the load generator) the first.
 * `all` is the allowed list as it was (taskset's -c syntax), for setOwnAffinity.
 */
export function planPinning(): { server: number; generator: number; all: string } | undefined {
  try {
    const out = execFileSync("taskset", ["-c", "-p", String(process.pid)], { encoding: "utf8" });
    const list = out.slice(out.lastIndexOf(":") + 1).trim();
    const cores = list.split(",").flatMap((part) => {
      const [from, to] = part.split("-").map(Number);
      if (from === undefined || Number.isNaN(from)) return [];
      const last = to === undefined || Number.isNaN(to) ? from : to;
      return Array.from({ length: last - from + 1 }, (_, i) => from + i);
    });
    const generator = cores[0];
    const server = cores[cores.length - 1];
    if (generator === undefined || server === undefined || generator === server) return undefined;
    execFileSync("taskset", ["-a", "-c", "-p", String(generator), String(process.pid)], {
      stdio: "ignore",
    });
    return { server, generator, all: list };
  } catch {
    return undefined;
  }
}

/**
 * Moves every thread of this process (libuv's pool included) to `cpuList`
 * (taskset -c syntax): widened for work that is not measured, such as minting
 * tokens, then narrowed back to the generator core.
 */
export function setOwnAffinity(cpuList: string | number): void {
  execFileSync("taskset", ["-a", "-c", "-p", String(cpuList), String(process.pid)], {
    stdio: "ignore",
  });
}

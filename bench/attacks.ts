/**
 * What hostile traffic costs a real PDP process on loopback: its resident
 * memory (VmRSS of /proc/<pid>/status, sampled every 50 ms) and its
 * event-loop delay, seen as the latency of GET /health asked in a loop while
 * the attack runs (a blocked loop answers nothing). The attacks:
 *   a. 1 000 clients without a caller key each announce a 1 MiB body to
 *      /access/v1/evaluation, send all of it but the last byte, and hold;
 *   b. one 1 MiB /access/v1/evaluations whose defaults carry a large context
 *      that its 256 items inherit;
 *   c. forward-auth (`batch: authorize_each`) relaying a JSON-RPC batch of
 *      20 000 elements;
 *   d. 4 requests like (b) whose context is in a logged key
 *      (context.session), the decision log going to a file: its bytes.
 *
 * Usage: npm run bench:attacks [-- --root <checkout>]. `--root` runs that
 * checkout's src/main.ts instead of this one's (e.g. a temporary worktree of
 * an older commit, for before/after figures); the same requests and PDP_CONFIG
 * go to either. Loopback only; every process is stopped on exit, error or
 * Ctrl-C; the whole run takes well under two minutes.
 */
import { createHash, randomBytes } from "node:crypto";
import { existsSync, mkdtempSync, readFileSync, rmSync, statSync, writeFileSync } from "node:fs";
import { connect, type Socket } from "node:net";
import { tmpdir } from "node:os";
import { dirname, join, resolve } from "node:path";
import { fileURLToPath } from "node:url";
import {
  freePort,
  killAllNow,
  startServer,
  stopAll,
  stopServer,
  waitReady,
  type Server,
} from "./processes.ts";
import { fixed, heading, SampleBuffer, table, whole } from "./report.ts";

const mib = 1024 * 1024;
const here = dirname(fileURLToPath(import.meta.url));
const rootArg = process.argv.indexOf("--root");
const root = resolve(rootArg === -1 ? join(here, "..") : (process.argv[rootArg + 1] ?? "."));
const pepKey = randomBytes(24).toString("base64url");
const scratch = mkdtempSync(join(tmpdir(), "mcp-pdp-attacks-"));

const sleep = (ms: number): Promise<void> =>
  new Promise((resolveSleep) => {
    setTimeout(resolveSleep, ms);
  });

/** The PDP_CONFIG every run uses: one decision caller, forward-auth evaluating each batch element. */
function writeConfig(): string {
  const file = join(scratch, "pdp-config.json");
  writeFileSync(
    file,
    JSON.stringify({
      callers: [
        {
          name: "pep",
          api_key_sha256: [createHash("sha256").update(pepKey).digest("hex")],
          permissions: ["authzen", "forward_auth"],
        },
      ],
      forward_auth: {
        trusted_proxies: ["127.0.0.1/32"],
        batch: "authorize_each",
        // The deprecated place, on purpose: `--root` runs older checkouts that know only it.
        servers: { files: { resource: "https://mcp.test/files" } },
      },
    }),
  );
  return file;
}

async function startPdp(name: string, env: Record<string, string>): Promise<Server> {
  const port = await freePort();
  const server = startServer({
    name,
    command: process.execPath,
    args: [join(root, "src", "main.ts")],
    cwd: root,
    env: {
      PATH: process.env.PATH ?? "",
      HOME: process.env.HOME ?? "",
      HOST: "127.0.0.1",
      PORT: String(port),
      PDP_CONFIG: writeConfig(),
      PDP_DATA: join(root, "examples", "operator-data.yaml"),
      PDP_DECISION_LOG: "off",
      PDP_DRAIN_DELAY_MS: "0",
      LOG_LEVEL: "warn",
      ...env,
    },
    port,
    cpu: undefined,
    stdout: "ignore",
  });
  await waitReady(server, "/health", 30000);
  return server;
}

function rssMb(pid: number): number | undefined {
  try {
    const line = readFileSync(`/proc/${pid}/status`, "utf8")
      .split("\n")
      .find((l) => l.startsWith("VmRSS:"));
    return line === undefined ? undefined : Number(line.split(/\s+/)[1]) / 1024;
  } catch {
    return undefined;
  }
}

/** RSS and /health latency while `attack` runs, then for `settleMs` after it. */
interface Observation {
  rssBeforeMb: number | undefined;
  rssPeakMb: number;
  rssAfterMb: number | undefined;
  /** GET /health latency in ms; a probe that got no answer within 2 s counts as 2 000. */
  health: ReturnType<SampleBuffer["summary"]>;
  healthFailures: number;
}

async function observe<T>(
  server: Server,
  attack: () => Promise<T>,
  settleMs: number,
): Promise<{ result: T; observation: Observation }> {
  const rssBeforeMb = rssMb(server.pid);
  let rssPeakMb = rssBeforeMb ?? 0;
  const sampler = setInterval(() => {
    rssPeakMb = Math.max(rssPeakMb, rssMb(server.pid) ?? 0);
  }, 50);
  const health = new SampleBuffer(1024);
  let healthFailures = 0;
  const probe = { running: true };
  const prober = (async () => {
    while (probe.running) {
      const started = performance.now();
      try {
        const response = await fetch(`${server.baseUrl}/health`, {
          signal: AbortSignal.timeout(2000),
        });
        await response.arrayBuffer();
        if (!response.ok) healthFailures += 1;
        health.push(performance.now() - started);
      } catch {
        healthFailures += 1;
        health.push(2000);
      }
      await sleep(20);
    }
  })();
  try {
    const result = await attack();
    await sleep(settleMs);
    return {
      result,
      observation: {
        rssBeforeMb,
        rssPeakMb,
        rssAfterMb: rssMb(server.pid),
        health: health.summary(),
        healthFailures,
      },
    };
  } finally {
    probe.running = false;
    clearInterval(sampler);
    await prober;
  }
}

/** One raw HTTP exchange: status, header block size and time to the answer (bounded). */
function exchange(
  port: number,
  request: Buffer,
  timeoutMs: number,
): Promise<{ status: number; headerBytes: number; ms: number; header: string }> {
  return new Promise((resolveExchange) => {
    const started = performance.now();
    const chunks: Buffer[] = [];
    // Not end(): a half-closed socket makes node close the connection before a slow answer is written.
    const socket = connect(port, "127.0.0.1", () => socket.write(request));
    const done = (): void => {
      clearTimeout(timer);
      socket.destroy();
      const text = Buffer.concat(chunks).toString("latin1");
      const end = text.indexOf("\r\n\r\n");
      const header = end === -1 ? "" : text.slice(0, end);
      resolveExchange({
        status: Number(/^HTTP\/1\.1 (\d{3})/.exec(header)?.[1] ?? 0),
        headerBytes: header.length,
        ms: performance.now() - started,
        header,
      });
    };
    const timer = setTimeout(done, timeoutMs);
    socket.on("data", (chunk: Buffer) => {
      chunks.push(chunk);
      // The answer is complete once its declared body has arrived (or the server closes).
      const text = Buffer.concat(chunks).toString("latin1");
      const end = text.indexOf("\r\n\r\n");
      const length = /\r\ncontent-length: (\d+)/i.exec(text.slice(0, end))?.[1];
      if (end !== -1 && length !== undefined && text.length >= end + 4 + Number(length)) done();
    });
    socket.on("close", done);
    socket.on("error", done);
  });
}

function post(path: string, headers: Record<string, string>, body: Buffer): Buffer {
  const head = [`POST ${path} HTTP/1.1`, "Host: 127.0.0.1", "Connection: close"];
  for (const [name, value] of Object.entries(headers)) head.push(`${name}: ${value}`);
  head.push(`Content-Length: ${body.length}`);
  return Buffer.concat([Buffer.from(`${head.join("\r\n")}\r\n\r\n`), body]);
}

/** A /access/v1/evaluations body of about `bytes`, its context inherited by 256 items. */
function inheritedBatch(bytes: number, contextKey: string): Buffer {
  const envelope = {
    subject: { type: "user", id: "alice" },
    action: { name: "tools/call" },
    resource: { type: "tool", id: "files/read_file" },
    context: { device: { trust: "managed" }, [contextKey]: { blob: "" } },
    evaluations: Array.from({ length: 256 }, () => ({})),
  };
  const overhead = Buffer.byteLength(JSON.stringify(envelope));
  envelope.context[contextKey] = { blob: "x".repeat(bytes - overhead - 64) };
  return Buffer.from(JSON.stringify(envelope));
}

const json = { "content-type": "application/json" };
const withKey = { ...json, "x-api-key": pepKey };

// ---------------------------------------------------------------- (a)

interface AttackReport {
  label: string;
  observation: Observation;
  outcome: string;
}

async function stalledBodies(server: Server): Promise<AttackReport> {
  const port = Number(new URL(server.baseUrl).port);
  const count = 1000;
  const head = Buffer.from(
    `POST /access/v1/evaluation HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: application/json\r\nContent-Length: ${mib}\r\n\r\n`,
  );
  const almostAll = Buffer.alloc(mib - 1, 0x20);
  const sockets: Socket[] = [];
  let closedByServer = 0;
  const holdMs = 10000;
  const { result, observation } = await observe(
    server,
    async () => {
      for (let i = 0; i < count; i += 1) {
        const socket = connect(port, "127.0.0.1");
        socket.on("error", () => undefined);
        // Read (and drop) what the PDP answers, or its closing the connection goes unseen here.
        socket.resume();
        socket.once("close", () => {
          closedByServer += 1;
        });
        socket.once("connect", () => {
          socket.write(head);
          socket.write(almostAll);
        });
        sockets.push(socket);
        // Open them at a pace the two cores can follow, all within about a second.
        if (i % 50 === 49) await sleep(50);
      }
      await sleep(holdMs);
      return { openAfterHold: count - closedByServer };
    },
    0,
  );
  for (const socket of sockets) socket.destroy();
  await sleep(500);
  return {
    label: "a. 1 000 stalled 1 MiB bodies, no caller key",
    observation,
    outcome: `${whole(result.openAfterHold)} of ${whole(count)} connections still open after ${holdMs / 1000} s`,
  };
}

// ---------------------------------------------------------------- (b)

async function inheritedDefaults(server: Server): Promise<AttackReport> {
  const port = Number(new URL(server.baseUrl).port);
  const body = inheritedBatch(mib - 1024, "extra");
  const { result, observation } = await observe(
    server,
    () => exchange(port, post("/access/v1/evaluations", withKey, body), 60000),
    300,
  );
  return {
    label: "b. 1 MiB evaluations, 256 items inherit the context",
    observation,
    outcome: `status ${result.status} in ${fixed(result.ms, 0)} ms`,
  };
}

// ---------------------------------------------------------------- (c)

async function authorizeEach(server: Server): Promise<AttackReport> {
  const port = Number(new URL(server.baseUrl).port);
  const elements = 20000;
  const batch = Buffer.from(
    JSON.stringify(
      Array.from({ length: elements }, (_, id) => ({ jsonrpc: "2.0", id, method: "ping" })),
    ),
  );
  const { result, observation } = await observe(
    server,
    () =>
      exchange(
        port,
        post("/forward-auth/files/mcp", { ...withKey, accept: "application/json" }, batch),
        60000,
      ),
    300,
  );
  const ids = /\r\nx-pdp-decision-id: ([^\r]*)/i.exec(result.header)?.[1];
  const decisions = ids === undefined ? 0 : ids.split(",").length;
  return {
    label: `c. forward-auth authorize_each, ${whole(elements)}-element batch`,
    observation,
    outcome: `status ${result.status} in ${fixed(result.ms, 0)} ms; ${whole(decisions)} decision ids in x-pdp-decision-id; response header block ${whole(result.headerBytes)} B (batch body ${fixed(batch.length / mib, 2)} MiB)`,
  };
}

// ---------------------------------------------------------------- (d)

async function loggedContext(): Promise<AttackReport> {
  const logFile = join(scratch, "decisions.log");
  const server = await startPdp("pdp (decision log to a file)", { PDP_DECISION_LOG: logFile });
  try {
    const port = Number(new URL(server.baseUrl).port);
    const body = inheritedBatch(mib - 1024, "session");
    const requests = 4;
    const { result, observation } = await observe(
      server,
      async () => {
        const statuses: number[] = [];
        for (let i = 0; i < requests; i += 1) {
          statuses.push(
            (await exchange(port, post("/access/v1/evaluations", withKey, body), 60000)).status,
          );
        }
        // Until the file stops growing: the log is written behind the answers.
        let size = -1;
        const deadline = Date.now() + 30000;
        while (Date.now() < deadline) {
          const now = existsSync(logFile) ? statSync(logFile).size : 0;
          if (now === size) break;
          size = now;
          await sleep(500);
        }
        return { statuses, logBytes: Math.max(size, 0) };
      },
      0,
    );
    return {
      label: `d. ${requests} × 1 MiB evaluations, context.session logged, log to a file`,
      observation,
      outcome: `statuses ${result.statuses.join(",")}; decision log ${fixed(result.logBytes / mib, 1)} MiB`,
    };
  } finally {
    await stopServer(server);
    rmSync(logFile, { force: true });
  }
}

function cells(observation: Observation): string[] {
  return [
    fixed(observation.rssBeforeMb, 0),
    fixed(observation.rssPeakMb, 0),
    fixed(observation.rssAfterMb, 0),
    fixed(observation.health.p50, 1),
    fixed(observation.health.p99, 0),
    fixed(observation.health.max, 0),
    whole(observation.healthFailures),
  ];
}

async function main(): Promise<void> {
  const started = Date.now();
  process.stdout.write(heading(`Attacks on a real PDP process (${root})`) + "\n");
  const reports: AttackReport[] = [];
  for (const attack of [stalledBodies, inheritedDefaults, authorizeEach]) {
    // A fresh process per attack: what one leaves behind must not count against the next.
    const server = await startPdp("pdp", {});
    try {
      reports.push(await attack(server));
    } finally {
      await stopServer(server);
    }
  }
  reports.push(await loggedContext());
  process.stdout.write(
    table(
      ["attack", "RSS MB before", "peak", "after", "/health p50 ms", "p99", "max", "no answer"],
      reports.map((report) => [report.label, ...cells(report.observation)]),
    ) + "\n\n",
  );
  for (const report of reports) process.stdout.write(`${report.label}: ${report.outcome}\n`);
  process.stdout.write(
    `\n/health: GET /health on the main listener every 20 ms during the attack (2 s timeout; "no answer": timed out, refused or not 2xx). ${fixed((Date.now() - started) / 1000, 0)} s in all.\n`,
  );
}

process.on("exit", () => {
  killAllNow();
});
for (const signal of ["SIGINT", "SIGTERM"] as const) {
  process.once(signal, () => {
    void stopAll().finally(() => process.exit(130));
  });
}

try {
  await main();
} catch (error) {
  process.stderr.write(
    `bench failed: ${error instanceof Error ? (error.stack ?? error.message) : String(error)}\n`,
  );
  process.exitCode = 1;
} finally {
  await stopAll();
  rmSync(scratch, { recursive: true, force: true });
}

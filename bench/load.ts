/** One autocannon run against a loopback server, with per-response latencies and CPU accounting. */
import autocannon, { type Instance, type Request, type Result } from "autocannon";
import { coreBusySeconds, cpuSeconds, type Server } from "./processes.ts";
import { SampleBuffer, type Percentiles } from "./report.ts";

export interface LoadSpec {
  server: Server;
  path: string;
  method: "GET" | "POST";
  body?: string;
  /**
   * Builds the body of each request as it is sent (instead of a fixed `body`),
   * e.g. a new token per request. Called once per request, from this process.
   */
  nextBody?: () => string;
  /** Each response body is passed here; a false counts in `mismatches`. */
  verifyBody?: (body: string) => boolean;
  connections: number;
  /** Seconds to run; with `amount`, only a cap on a run that has not finished by then. */
  durationS: number;
  /** Requests to send in all, as fast as the server answers (a soak), instead of a duration. */
  amount?: number;
  /** Requests/s over all connections; unset means as fast as the server answers. */
  overallRate?: number;
  /** Extra request headers (a caller's X-Api-Key). */
  headers?: Record<string, string>;
}

export interface LoadResult {
  /** Completed requests per second of wall time. */
  rps: number;
  completed: number;
  /** Latency per response in ms, from autocannon's hrtime (write → full response). */
  latencyMs: Percentiles;
  non2xx: number;
  errors: number;
  /** Responses `verifyBody` rejected (0 without it). */
  mismatches: number;
  /** CPU the server used, as a share of one core. */
  serverCpuShare: number | undefined;
  /** Server CPU time per completed request, in µs. */
  serverCpuPerRequestUs: number | undefined;
  /** CPU this process (the load generator) used, as a share of one core. */
  generatorCpuShare: number;
}

const active = new Set<Instance>();

/** Stops every running autocannon instance (Ctrl-C, errors). */
export function stopLoads(): void {
  for (const instance of active) instance.stop();
}

/** A request entry whose body autocannon asks for anew each time it builds the request. */
function bodyPerRequest(spec: LoadSpec, nextBody: () => string): Request {
  return {
    method: spec.method,
    path: spec.path,
    headers: { ...spec.headers, "content-type": "application/json" },
    setupRequest: (request) => ({ ...request, body: nextBody() }),
  };
}

export async function runLoad(spec: LoadSpec): Promise<LoadResult> {
  const samples = new SampleBuffer();
  const serverCpuBefore = cpuSeconds(spec.server.pid);
  const ownCpuBefore = process.cpuUsage();
  const wallBefore = process.hrtime.bigint();

  const result = await new Promise<Result>((resolve, reject) => {
    const instance = autocannon(
      {
        url: `${spec.server.baseUrl}${spec.path}`,
        method: spec.method,
        headers: {
          ...spec.headers,
          ...(spec.body === undefined && spec.nextBody === undefined
            ? {}
            : { "content-type": "application/json" }),
        },
        ...(spec.body === undefined ? {} : { body: spec.body }),
        ...(spec.nextBody === undefined ? {} : { requests: [bodyPerRequest(spec, spec.nextBody)] }),
        ...(spec.verifyBody === undefined ? {} : { verifyBody: spec.verifyBody }),
        connections: spec.connections,
        duration: spec.durationS,
        ...(spec.amount === undefined ? {} : { amount: spec.amount }),
        timeout: 10,
        ...(spec.overallRate === undefined ? {} : { overallRate: spec.overallRate }),
      },
      (error, finished) => {
        clearTimeout(guard);
        active.delete(instance);
        if (error === null) resolve(finished);
        else reject(error);
      },
    );
    active.add(instance);
    instance.on("response", (_client: unknown, _status: number, _bytes: number, ms: number) => {
      samples.push(ms);
    });
    // autocannon ends by itself after durationS; this only bounds a wedged run.
    const guard = setTimeout(
      () => {
        instance.stop();
      },
      (spec.durationS + 15) * 1000,
    );
  });

  const wallS = Number(process.hrtime.bigint() - wallBefore) / 1e9;
  const ownCpu = process.cpuUsage(ownCpuBefore);
  const serverCpuAfter = cpuSeconds(spec.server.pid);
  const serverCpu =
    serverCpuBefore === undefined || serverCpuAfter === undefined
      ? undefined
      : serverCpuAfter - serverCpuBefore;
  const completed = result.requests.total;
  return {
    rps: completed / result.duration,
    completed,
    latencyMs: samples.summary(),
    non2xx: result.non2xx,
    errors: result.errors,
    mismatches: result.mismatches,
    serverCpuShare: serverCpu === undefined ? undefined : serverCpu / wallS,
    serverCpuPerRequestUs:
      serverCpu === undefined || completed === 0 ? undefined : (serverCpu * 1e6) / completed,
    generatorCpuShare: (ownCpu.user + ownCpu.system) / 1e6 / wallS,
  };
}

/** A load result with the share of the server's core that other processes used meanwhile. */
export type Loaded<T extends LoadResult> = T & { otherShare: number | undefined };

/**
 * Runs a load and adds the share of the server's core that other processes
 * used meanwhile (the core's busy time less the server's own CPU): on a shared
 * machine it says which rows were disturbed.
 */
export async function withOtherLoad<T extends LoadResult>(
  core: number | undefined,
  load: () => Promise<T>,
): Promise<Loaded<T>> {
  const busyBefore = core === undefined ? undefined : coreBusySeconds(core);
  const wallBefore = process.hrtime.bigint();
  const result = await load();
  const wallS = Number(process.hrtime.bigint() - wallBefore) / 1e9;
  const busyAfter = core === undefined ? undefined : coreBusySeconds(core);
  const otherShare =
    busyBefore === undefined || busyAfter === undefined || result.serverCpuShare === undefined
      ? undefined
      : Math.max(0, (busyAfter - busyBefore) / wallS - result.serverCpuShare);
  return { ...result, otherShare };
}

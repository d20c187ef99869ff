/**
 * The part of autocannon 9's programmatic API the benchmark uses (the package
 * ships no types). See node_modules/autocannon/README.md, "API".
 */
declare module "autocannon" {
  import type { EventEmitter } from "node:events";

  /** One request as autocannon builds it; setupRequest gets and returns this shape. */
  export interface RequestParams {
    method?: "GET" | "POST";
    path?: string;
    headers?: Record<string, string>;
    body?: string;
  }

  /** An entry of `requests`: each connection cycles through them. */
  export interface Request extends RequestParams {
    /** Called each time this entry is built: for every request when present. */
    setupRequest?: (
      request: RequestParams,
      context: Record<string, unknown>,
    ) => RequestParams | null;
  }

  export interface Options {
    url: string;
    method?: "GET" | "POST";
    headers?: Record<string, string>;
    body?: string;
    connections?: number;
    /** Seconds. */
    duration?: number;
    /** Requests to send in all; when set, duration is ignored. */
    amount?: number;
    /** Requests per second over all connections (applied per connection, per second). */
    overallRate?: number;
    /** Seconds before a request counts as timed out. */
    timeout?: number;
    title?: string;
    /** Requests each connection cycles through, instead of method/body alone. */
    requests?: Request[];
    /** A response whose body this rejects counts as a mismatch. */
    verifyBody?: (body: string) => boolean;
  }

  /** An hdr-histogram-percentiles-obj summary. */
  export interface Histogram {
    average: number;
    mean: number;
    stddev: number;
    min: number;
    max: number;
    total: number;
    p50: number;
    p90: number;
    p99: number;
  }

  export interface Result {
    title?: string;
    url: string;
    requests: Histogram & { sent: number };
    latency: Histogram;
    throughput: Histogram;
    /** Seconds. */
    duration: number;
    errors: number;
    timeouts: number;
    mismatches: number;
    non2xx: number;
    statusCodeStats: Record<string, { count: number }>;
  }

  /** A running benchmark; emits `response` (client, statusCode, resBytes, responseTimeMs) per response. */
  export interface Instance extends EventEmitter {
    stop: () => void;
  }

  export default function autocannon(
    options: Options,
    callback: (error: Error | null, result: Result) => void,
  ): Instance;
}

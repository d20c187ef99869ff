/**
 * The PDP the conformance runs enforce with: the real process
 * (`node src/main.ts`, started as the transport tests start it),
 * its policy a bundle compiled here by the
 * real `opa build -t wasm` that allows every request it is asked about, and
 * its decision log in a file, so that a test can count the decisions and see
 * that each one was an allow.
 *
 * Allow-all is a policy of its own rather than the default policy opened up
 * with operator data: the default policy wants a token for almost everything
 * (the suite's client sends none), and data that switched each requirement
 * off would be a long way of saying the same thing less plainly.
 */
import { existsSync, readFileSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { stringify as toYaml } from "yaml";
import { httpsStatus, type ClientTls } from "../e2e/support/processes.ts";
import { startMain, waitUntil, type MainProcess } from "../support/main-process.ts";
import { buildWasmBundle } from "../support/opa.ts";

/** The decision entrypoint of the allow-all bundle. */
export const allowAllEntrypoint = "conformance/decision";

const allowAllRego = `package conformance

# Every request is allowed: enforcement that allows must not change what the
# MCP server's clients see.
decision := {"allow": true}
`;

/** Compiles the allow-all policy into `<dir>/bundle.tar.gz` with the real opa. */
export function buildAllowAllBundle(dir: string): string {
  return buildWasmBundle(dir, { "conformance.rego": allowAllRego }, [allowAllEntrypoint]);
}

/** One decision record of the PDP's decision log (the fields these tests read). */
export interface DecisionRecord {
  decision_id: string;
  endpoint: string;
  action: string;
  outcome: string;
  resource: { type: string; id: string | null; server: string | null };
}

export interface AllowAllPdp {
  /** e.g. http://127.0.0.1:40123, or https:// with mTLS */
  url: string;
  process: MainProcess;
  /** The decision records logged so far. */
  decisions: () => DecisionRecord[];
}

/**
 * Starts the PDP on `port` with `config` (PDP_CONFIG, written as YAML to
 * `dir`) and the allow-all `bundle`; waits for /ready (over mTLS when `tls`
 * says what a client presents).
 */
export async function startAllowAllPdp(options: {
  dir: string;
  port: number;
  bundle: string;
  config: Record<string, unknown>;
  tls?: ClientTls | undefined;
}): Promise<AllowAllPdp> {
  const configFile = join(options.dir, "pdp-config.yaml");
  const decisionLog = join(options.dir, "decisions.log");
  writeFileSync(configFile, toYaml(options.config));
  const started = startMain({
    HOST: "127.0.0.1",
    PORT: String(options.port),
    PDP_CONFIG: configFile,
    PDP_BUNDLE: options.bundle,
    PDP_ENTRYPOINT: allowAllEntrypoint,
    // The bundle has no configuration check: none is asked for.
    PDP_CONFIG_ENTRYPOINT: "",
    // A file, not stdout: every record is read back, none mixed with diagnostics.
    PDP_DECISION_LOG: decisionLog,
    LOG_LEVEL: "warn",
    PDP_DRAIN_DELAY_MS: "0",
  });
  const tls = options.tls;
  const url = `${tls === undefined ? "http" : "https"}://127.0.0.1:${options.port}`;
  try {
    await waitUntil(
      `${url}/ready`,
      async () => {
        if (tls !== undefined) return (await httpsStatus(`${url}/ready`, tls)) === 200;
        const response = await fetch(`${url}/ready`, { signal: AbortSignal.timeout(2000) });
        await response.body?.cancel();
        return response.status === 200;
      },
      30_000,
      started,
    );
  } catch (error) {
    await started.kill();
    throw error;
  }
  return {
    url,
    process: started,
    decisions: () =>
      (existsSync(decisionLog) ? readFileSync(decisionLog, "utf8") : "")
        .split("\n")
        .filter((line) => line.startsWith("{"))
        .map((line) => JSON.parse(line) as Record<string, unknown>)
        .filter((record) => record.log === "decision")
        .map((record) => record as unknown as DecisionRecord),
  };
}

import { readFileSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { parse as parseYaml, stringify as toYaml } from "yaml";
import { repoRoot } from "../../support/opa.js";
import { filesResource, issuer } from "./identity.js";
import { freePort, spawnManaged, waitForHttp, type Managed } from "./processes.js";

export interface PdpProcess {
  /** e.g. http://127.0.0.1:40123 */
  url: string;
  port: number;
  process: Managed;
  /** The PDP_CONFIG the process runs with, as written (YAML). */
  configText: string;
}

/** The forward_auth section the e2e PDP runs with (also shown in the README). */
export const forwardAuthSettings = {
  trusted_proxies: ["127.0.0.1/32", "::1/128"],
  context_headers: { "x-device-trust": "device.trust" },
};

/** The servers registry the e2e PDP runs with (also shown in the README). */
export const serverSettings = {
  files: {
    resource: filesResource,
    // Opted in: behind headers-only proxies the Mcp-* headers are believed. Only safe with an MCP
    // server that refuses header/body mismatches (SEP-2243); the "KNOWN LIMIT" test shows why.
    enforces_mcp_headers: true,
  },
};

/**
 * The example operator data with two changes, so that allows can be shown
 * at any hour of a test run and from loopback:
 * - `destructive.hours_utc: null`: a separate PDP process has the real clock,
 *   and the example only allows destructive calls 07:00–19:00 UTC;
 * - `write.networks: [127.0.0.0/8]`: every client here is on loopback, and
 *   the example's 10.0.0.0/8 would deny every write for that reason alone.
 * Every other requirement (scopes, device trust, auth age, acr, the catalog,
 * unknown tools → destructive) is the example's own, so the denies are honest.
 */
export function writeE2eOperatorData(dir: string): string {
  const example = parseYaml(
    readFileSync(join(repoRoot, "examples", "operator-data.yaml"), "utf8"),
  ) as { risk_classes: Record<string, Record<string, unknown>> };
  const classes = example.risk_classes;
  const destructive = classes.destructive;
  const write = classes.write;
  if (destructive === undefined || write === undefined) {
    throw new Error("examples/operator-data.yaml lost its write or destructive class");
  }
  destructive.hours_utc = null;
  write.networks = ["127.0.0.0/8"];
  const file = join(dir, "operator-data.yaml");
  writeFileSync(file, toYaml(example));
  return file;
}

/** Starts `node --import tsx src/main.ts` as an operator would, and waits for /ready. */
export async function startPdpProcess(options: {
  dir: string;
  jwksUrl: string;
}): Promise<PdpProcess> {
  const data = writeE2eOperatorData(options.dir);
  const config = {
    issuers: [{ issuer, jwks_uri: options.jwksUrl, audiences: [filesResource] }],
    servers: serverSettings,
    forward_auth: forwardAuthSettings,
  };
  const configText = toYaml(config);
  const configFile = join(options.dir, "pdp-config.yaml");
  writeFileSync(configFile, configText);
  const port = await freePort();
  const managed = spawnManaged(
    "pdp",
    process.execPath,
    ["--import", "tsx", join(repoRoot, "src", "main.ts")],
    {
      cwd: repoRoot,
      env: {
        PATH: process.env.PATH ?? "",
        HOME: process.env.HOME ?? "",
        HOST: "127.0.0.1",
        PORT: String(port),
        PDP_DATA: data,
        PDP_CONFIG: configFile,
        LOG_LEVEL: "warn",
      },
    },
  );
  const url = `http://127.0.0.1:${port}`;
  await waitForHttp(`${url}/ready`, managed);
  return { url, port, process: managed, configText };
}

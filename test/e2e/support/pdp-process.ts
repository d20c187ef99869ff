import { createHash } from "node:crypto";
import { readFileSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { parse as parseYaml, stringify as toYaml } from "yaml";
import type { CertificateFiles, TestPki } from "../../support/certs.ts";
import { repoRoot } from "../../support/opa.ts";
import { issuer } from "./identity.ts";
import { freePort, spawnManaged, waitForHttp, type ClientTls, type Managed } from "./processes.ts";
import { serverRegistry, siteNames, sites } from "./sites.ts";
import { pdpArgs } from "../../support/pdp-command.ts";

/**
 * How the proxy proves itself to the PDP (`callers` is configured, as it must
 * be off loopback): an API key in X-Api-Key, sent by the proxy on the auth
 * request only (NGINX, Caddy), or a client certificate (Traefik, Envoy).
 */
export type ProxyCredential =
  { kind: "api-key"; key: string } | { kind: "mtls"; pki: TestPki; client: CertificateFiles };

export interface PdpProcess {
  /** e.g. http://127.0.0.1:40123, or https:// with mTLS */
  url: string;
  port: number;
  process: Managed;
  /** The PDP_CONFIG the process runs with, as written (YAML). */
  configText: string;
  /** With mTLS: what a client of the PDP must present. */
  tls: ClientTls | undefined;
}

/** The forward_auth section the e2e PDP runs with (also shown in the README). */
export const forwardAuthSettings = {
  trusted_proxies: ["127.0.0.1/32", "::1/128"],
  context_headers: { "x-device-trust": "device.trust" },
};

/** SHA-256 of an API key, hex: what `api_key_sha256` stores. */
export function apiKeyDigest(key: string): string {
  return createHash("sha256").update(key, "utf8").digest("hex");
}

/**
 * `callers` for a proxy with an API key: only the key's digest is in the
 * file, and the one permission a proxy needs.
 */
export function apiKeyCallers(digest: string): Record<string, unknown> {
  return {
    callers: [{ name: "proxy", api_key_sha256: [digest], permissions: ["forward_auth"] }],
  };
}

/** `callers` and `tls` for a proxy with a client certificate: the PDP listens with mTLS. */
export function mtlsCallers(options: {
  subject: string;
  certFile: string;
  keyFile: string;
  clientCaFile: string;
}): Record<string, unknown> {
  return {
    callers: [{ name: "proxy", mtls_subjects: [options.subject], permissions: ["forward_auth"] }],
    tls: {
      cert_file: options.certFile,
      key_file: options.keyFile,
      client_ca_file: options.clientCaFile,
    },
  };
}

/**
 * The PDP side of "Putting it behind a proxy": the issuer, the servers it
 * protects (safe defaults: no `enforces_mcp_headers`), the proxy as its one
 * caller, and forward_auth. The README shows it with placeholders; the e2e
 * PDP runs it with this run's JWKS URL, key digest or certificates.
 */
export function proxyPdpConfig(options: {
  issuer: string;
  jwksUri: string;
  servers: Record<string, unknown>;
  callers: Record<string, unknown>;
}): Record<string, unknown> {
  return {
    issuers: [{ issuer: options.issuer, jwks_uri: options.jwksUri }],
    servers: options.servers,
    ...options.callers,
    forward_auth: forwardAuthSettings,
  };
}

/** The e2e servers' names (`files`, …) → their catalog entries, copied from files' own. */
function catalogForEveryServer(tools: Record<string, string>): Record<string, string> {
  const catalog: Record<string, string> = { ...tools };
  for (const [pattern, riskClass] of Object.entries(tools)) {
    if (!pattern.startsWith("files/")) continue;
    for (const name of siteNames) {
      catalog[`${sites[name].server}/${pattern.slice("files/".length)}`] = riskClass;
    }
  }
  return catalog;
}

/**
 * The example operator data with these changes, so that allows can be shown
 * at any hour of a test run and from loopback:
 * - `destructive.hours_utc: null`: a separate PDP process has the real clock,
 *   and the example only allows destructive calls 07:00–19:00 UTC;
 * - `write.networks: [127.0.0.0/8]`: every client here is on loopback, and
 *   the example's 10.0.0.0/8 would deny every write for that reason alone;
 * - the catalog's `files/…` entries also for the other e2e servers, which
 *   serve the same tools under their own names.
 * Every other requirement (scopes, device trust, auth age, acr, unknown tools
 * → destructive) is the example's own, so the denies are honest.
 */
export function writeE2eOperatorData(dir: string): string {
  const example = parseYaml(
    readFileSync(join(repoRoot, "examples", "operator-data.yaml"), "utf8"),
  ) as { tools: Record<string, string>; risk_classes: Record<string, Record<string, unknown>> };
  const classes = example.risk_classes;
  const destructive = classes.destructive;
  const write = classes.write;
  if (destructive === undefined || write === undefined) {
    throw new Error("examples/operator-data.yaml lost its write or destructive class");
  }
  destructive.hours_utc = null;
  write.networks = ["127.0.0.0/8"];
  example.tools = catalogForEveryServer(example.tools);
  const file = join(dir, "operator-data.yaml");
  writeFileSync(file, toYaml(example));
  return file;
}

/** The PDP_CONFIG of the e2e PDP: the README's shape with every e2e server and this run's credential. */
function e2eConfig(jwksUrl: string, credential: ProxyCredential): Record<string, unknown> {
  const callers =
    credential.kind === "api-key"
      ? apiKeyCallers(apiKeyDigest(credential.key))
      : mtlsCallers({
          subject: proxyCertificateName,
          certFile: credential.pki.server.certFile,
          keyFile: credential.pki.server.keyFile,
          clientCaFile: credential.pki.ca.certFile,
        });
  return proxyPdpConfig({ issuer, jwksUri: jwksUrl, servers: serverRegistry(), callers });
}

/** The CN of the proxy's client certificate (mTLS). */
export const proxyCertificateName = "proxy.mcp.internal";

/** Starts `node src/main.ts` as an operator would, and waits for /ready. */
export async function startPdpProcess(options: {
  dir: string;
  jwksUrl: string;
  credential: ProxyCredential;
}): Promise<PdpProcess> {
  const data = writeE2eOperatorData(options.dir);
  const configText = toYaml(e2eConfig(options.jwksUrl, options.credential));
  const configFile = join(options.dir, "pdp-config.yaml");
  writeFileSync(configFile, configText);
  const port = await freePort();
  const managed = spawnManaged("pdp", process.execPath, pdpArgs(), {
    cwd: repoRoot,
    env: {
      PATH: process.env.PATH ?? "",
      HOME: process.env.HOME ?? "",
      HOST: "127.0.0.1",
      PORT: String(port),
      PDP_DATA: data,
      PDP_CONFIG: configFile,
      LOG_LEVEL: "warn",
      // Tests stop it at teardown: no readiness grace for endpoints that do not exist here.
      PDP_DRAIN_DELAY_MS: "0",
    },
  });
  const credential = options.credential;
  const tls =
    credential.kind === "mtls"
      ? { ca: credential.pki.ca.cert, cert: credential.client.cert, key: credential.client.key }
      : undefined;
  const url = `${tls === undefined ? "http" : "https"}://127.0.0.1:${port}`;
  await waitForHttp(`${url}/ready`, managed, undefined, undefined, tls);
  return { url, port, process: managed, configText, tls };
}

import { randomBytes } from "node:crypto";
import { mkdirSync, mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { generateTestPki } from "../../support/certs.ts";
import { Identity } from "./identity.ts";
import { FilesMcpServer } from "./mcp-server.ts";
import {
  proxyCertificateName,
  startPdpProcess,
  type PdpProcess,
  type ProxyCredential,
} from "./pdp-process.ts";
import type { Managed } from "./processes.ts";

/**
 * How the proxy of a test file authenticates to the PDP: `api-key` (the key
 * is made by `makeKey`, default: 32 random bytes in base64, as
 * `openssl rand -base64 32` would) or `mtls` (a client certificate from a
 * test PKI generated for this run).
 */
export type CredentialOption =
  { kind: "api-key"; makeKey?: (dir: string) => string } | { kind: "mtls" };

/**
 * What every proxy path needs, started once per test file: the issuer's JWKS
 * endpoint, the PDP as a real process with `callers` configured (the proxy is
 * its one caller), and the MCP server. Proxies are started by the test file
 * and registered here to be stopped with the rest.
 */
export class E2eEnvironment {
  readonly root = mkdtempSync(join(tmpdir(), "mcp-pdp-e2e-"));
  private started:
    | { identity: Identity; pdp: PdpProcess; mcp: FilesMcpServer; credential: ProxyCredential }
    | undefined;
  private readonly extra: Managed[] = [];
  private readonly cleanups: (() => void)[] = [];

  private readonly credentialOption: CredentialOption;

  constructor(credentialOption: CredentialOption) {
    this.credentialOption = credentialOption;
  }

  async start(): Promise<void> {
    const identity = await Identity.start();
    try {
      const credential = this.makeCredential();
      const pdp = await startPdpProcess({
        dir: this.dir("pdp"),
        jwksUrl: identity.jwks.url,
        credential,
      });
      const mcp = await FilesMcpServer.start();
      this.started = { identity, pdp, mcp, credential };
    } catch (error) {
      await identity.close();
      throw error;
    }
  }

  private makeCredential(): ProxyCredential {
    const option = this.credentialOption;
    if (option.kind === "api-key") {
      const make = option.makeKey ?? (() => randomBytes(32).toString("base64"));
      return { kind: "api-key", key: make(this.dir("key")) };
    }
    const pki = generateTestPki();
    this.cleanups.push(pki.remove);
    const client = pki.issue("proxy", { commonName: proxyCertificateName, usage: "client" });
    return { kind: "mtls", pki, client };
  }

  private get running(): {
    identity: Identity;
    pdp: PdpProcess;
    mcp: FilesMcpServer;
    credential: ProxyCredential;
  } {
    if (this.started === undefined) throw new Error("the e2e environment is not started");
    return this.started;
  }

  get identity(): Identity {
    return this.running.identity;
  }

  get pdp(): PdpProcess {
    return this.running.pdp;
  }

  get mcp(): FilesMcpServer {
    return this.running.mcp;
  }

  /** What the proxy presents to the PDP. */
  get credential(): ProxyCredential {
    return this.running.credential;
  }

  /** The PDP's host:port and the MCP server's listeners, for the proxies' configurations. */
  get upstreams(): { pdp: string; mcp: FilesMcpServer["addresses"] } {
    return { pdp: `127.0.0.1:${this.running.pdp.port}`, mcp: this.running.mcp.addresses };
  }

  /** A fresh subdirectory of the scratch directory. */
  dir(name: string): string {
    const path = join(this.root, name);
    mkdirSync(path, { recursive: true });
    return path;
  }

  /** Stops `managed` with the environment. */
  own(managed: Managed): void {
    this.extra.push(managed);
  }

  /** Stops proxies, the PDP and the servers (SIGTERM, then SIGKILL), then removes the scratch directory. */
  async stop(): Promise<void> {
    for (const managed of this.extra.reverse()) await managed.stop();
    if (this.started !== undefined) {
      await this.started.pdp.process.stop();
      await this.started.mcp.close();
      await this.started.identity.close();
    }
    for (const cleanup of this.cleanups) cleanup();
    rmSync(this.root, { recursive: true, force: true });
  }

  /** Output of the PDP and every proxy, for a failing test's message. */
  diagnostics(): string {
    const parts = [...this.extra, ...(this.started ? [this.started.pdp.process] : [])].map(
      (m) => `--- ${m.name}\n${m.output().slice(-4000)}`,
    );
    return parts.join("\n");
  }
}

import { mkdirSync, mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { Identity } from "./identity.js";
import { FilesMcpServer } from "./mcp-server.js";
import { startPdpProcess, type PdpProcess } from "./pdp-process.js";
import type { Managed } from "./processes.js";

/**
 * What every proxy path needs, started once per test file: the issuer's JWKS
 * endpoint, the PDP as a real process, and the MCP server. Proxies are
 * started by the test file and registered here to be stopped with the rest.
 */
export class E2eEnvironment {
  readonly root = mkdtempSync(join(tmpdir(), "mcp-pdp-e2e-"));
  private started: { identity: Identity; pdp: PdpProcess; mcp: FilesMcpServer } | undefined;
  private readonly extra: Managed[] = [];

  async start(): Promise<void> {
    const identity = await Identity.start();
    try {
      const pdp = await startPdpProcess({ dir: this.dir("pdp"), jwksUrl: identity.jwks.url });
      const mcp = await FilesMcpServer.start();
      this.started = { identity, pdp, mcp };
    } catch (error) {
      await identity.close();
      throw error;
    }
  }

  private get running(): { identity: Identity; pdp: PdpProcess; mcp: FilesMcpServer } {
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

  get ports(): { pdp: number; mcp: number } {
    return { pdp: this.running.pdp.port, mcp: this.running.mcp.port };
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

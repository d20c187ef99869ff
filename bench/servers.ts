/**
 * The command lines of the servers `npm run bench` and `npm run bench:soak`
 * compare: the PDP on a given Node build with a given worker count, the bare
 * node:http floor (bench/floor-server.ts), and OPA on the same Rego and data.
 * Each starts on 127.0.0.1 through processes.ts (pinned to a core or not) and
 * is returned once it answers.
 */
import { execFileSync } from "node:child_process";
import { join } from "node:path";
import { freePort, startServer, waitReady, type Server } from "./processes.ts";

export interface NodeBuild {
  /** "22" or "24": the major scripts/ensure-node.sh installs. */
  major: string;
  /** The node binary of that build. */
  node: string;
  /** Its `node --version`. */
  version: string;
}

/** The pinned Node build of `major` (scripts/ensure-node.sh installs it when missing). */
export function nodeBuild(root: string, major: "22" | "24"): NodeBuild {
  const bin = execFileSync(join(root, "scripts", "ensure-node.sh"), [major], {
    encoding: "utf8",
    stdio: ["ignore", "pipe", "inherit"],
  }).trim();
  const node = join(bin, "node");
  return { major, node, version: execFileSync(node, ["--version"], { encoding: "utf8" }).trim() };
}

export interface PdpOptions {
  name: string;
  root: string;
  build: NodeBuild;
  operatorData: string;
  /** PDP_WORKERS; unset leaves the PDP's default. */
  workers?: number;
  /** Core to pin to, or undefined for all cores. */
  cpu: number | undefined;
}

/** The PDP from the sources (Node.js strips the types), decision logging off, diagnostics at warn. */
export async function startPdp(options: PdpOptions): Promise<Server> {
  const port = await freePort();
  const server = startServer({
    name: options.name,
    command: options.build.node,
    args: ["src/main.ts"],
    cwd: options.root,
    env: {
      ...process.env,
      HOST: "127.0.0.1",
      PORT: String(port),
      PDP_DATA: options.operatorData,
      LOG_LEVEL: "warn",
      // Like OPA, whose decision logging is off unless configured; section 6 measures it on.
      PDP_DECISION_LOG: "off",
      ...(options.workers === undefined ? {} : { PDP_WORKERS: String(options.workers) }),
    },
    port,
    cpu: options.cpu,
  });
  await waitReady(server, "/ready", 30_000);
  return server;
}

/** The transport floor (bench/floor-server.ts) on `build`. */
export async function startFloor(
  root: string,
  build: NodeBuild,
  cpu: number | undefined,
): Promise<Server> {
  const port = await freePort();
  const server = startServer({
    name: `floor (Node ${build.major})`,
    command: build.node,
    args: ["bench/floor-server.ts"],
    cwd: root,
    env: { ...process.env, HOST: "127.0.0.1", PORT: String(port) },
    port,
    cpu,
  });
  await waitReady(server, "/", 30_000);
  return server;
}

/**
 * OPA's arguments: the policy from the Rego sources, as the bundle is built
 * (no tests, no cases), and `mergedFile`, the data the PDP evaluates (bundle
 * data.json merged with the operator file; rego/data.json is ignored since the
 * merged file already holds it).
 */
export function opaArgs(port: number, mergedFile: string): string[] {
  return [
    "run",
    "--server",
    "--addr",
    `127.0.0.1:${port}`,
    "--log-level",
    "error",
    "--skip-version-check",
    "--ignore",
    "*_test.rego",
    "--ignore",
    "cases",
    "--ignore",
    "data.json",
    "rego",
    mergedFile,
  ];
}

/** `opa run --server` on the same Rego and data; GOMAXPROCS follows its affinity mask. */
export async function startOpa(
  root: string,
  opa: string,
  mergedFile: string,
  cpu: number | undefined,
  name = "OPA",
): Promise<{ server: Server; args: string[] }> {
  const port = await freePort();
  const args = opaArgs(port, mergedFile);
  const server = startServer({ name, command: opa, args, cwd: root, env: process.env, port, cpu });
  await waitReady(server, "/health", 30_000);
  return { server, args };
}

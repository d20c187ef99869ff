/**
 * A real NGINX serving files from `<dir>/www` on a free loopback port, as a
 * bundle server or an object store's HTTP endpoint would: its own ETag and
 * 304, its own Content-Length. `locations` are the server block's location
 * blocks (one per path the test needs).
 */
import { chmodSync, mkdirSync } from "node:fs";
import { join } from "node:path";
import { spawnManaged, waitForHttp, type Managed } from "../e2e/support/processes.ts";
import { writeNginxConf } from "./nginx-conf.ts";
import { freePort } from "./ports.ts";

export interface StaticNginx {
  origin: string;
  process: Managed;
}

export async function startStaticNginx(
  dir: string,
  options: { locations: string; readyPath: string },
): Promise<StaticNginx> {
  // Workers run as an unprivileged user when nginx starts as root: let them read.
  chmodSync(dir, 0o755);
  mkdirSync(join(dir, "www"), { recursive: true, mode: 0o755 });
  chmodSync(join(dir, "www"), 0o755);
  const port = await freePort();
  const { binary, args } = writeNginxConf({
    dir,
    workerConnections: 64,
    http: `    default_type application/octet-stream;
    server {
        listen 127.0.0.1:${port};
${options.locations}
    }`,
  });
  const process = spawnManaged("nginx", binary, args, {
    cwd: dir,
    logFile: join(dir, "error.log"),
  });
  const origin = `http://127.0.0.1:${port}`;
  await waitForHttp(`${origin}${options.readyPath}`, process);
  return { origin, process };
}

/**
 * A real NGINX serving files from `<dir>/www` on a free loopback port, as a
 * bundle server or an object store's HTTP endpoint would: its own ETag and
 * 304, its own Content-Length. `locations` are the server block's location
 * blocks (one per path the test needs).
 */
import { execFileSync } from "node:child_process";
import { chmodSync, mkdirSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import {
  findExecutable,
  spawnManaged,
  waitForHttp,
  type Managed,
} from "../e2e/support/processes.js";
import { freePort } from "./ports.js";

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
  const conf = `daemon off;
worker_processes 1;
pid ${dir}/nginx.pid;
error_log ${dir}/error.log info;
events {
    worker_connections 64;
}
http {
    access_log ${dir}/access.log;
    client_body_temp_path ${dir}/client_body;
    proxy_temp_path ${dir}/proxy;
    fastcgi_temp_path ${dir}/fastcgi;
    uwsgi_temp_path ${dir}/uwsgi;
    scgi_temp_path ${dir}/scgi;
    default_type application/octet-stream;
    server {
        listen 127.0.0.1:${port};
${options.locations}
    }
}
`;
  const confFile = join(dir, "nginx.conf");
  writeFileSync(confFile, conf);
  const binary = findExecutable("nginx", ["/usr/sbin/nginx", "/usr/local/sbin/nginx"]);
  const args = ["-p", dir, "-e", join(dir, "error.log"), "-c", confFile];
  // Fail with nginx's own words when the configuration is refused.
  execFileSync(binary, ["-t", "-q", ...args], { stdio: ["ignore", "pipe", "pipe"] });
  const process = spawnManaged("nginx", binary, args, {
    cwd: dir,
    logFile: join(dir, "error.log"),
  });
  const origin = `http://127.0.0.1:${port}`;
  await waitForHttp(`${origin}${options.readyPath}`, process);
  return { origin, process };
}

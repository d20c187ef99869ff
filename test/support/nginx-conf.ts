/**
 * The one nginx.conf frame of every test NGINX: a foreground master in its own
 * directory (pid, logs and temp paths there, so no test touches /var), one
 * worker, and the `http` block a test supplies. nginx checks the file first,
 * so a refused configuration fails with nginx's own words.
 */
import { execFileSync } from "node:child_process";
import { writeFileSync } from "node:fs";
import { join } from "node:path";
import { findExecutable } from "../e2e/support/processes.ts";

export interface NginxConf {
  /** The prefix directory: nginx.conf, nginx.pid, error.log and the temp paths live there. */
  dir: string;
  workerConnections: number;
  /** Dynamic modules to load (e.g. njs). */
  modules?: readonly string[];
  /** The inside of the `http { … }` block. */
  http: string;
}

/** Writes `dir/nginx.conf`, checks it with `nginx -t`, and returns how to start that nginx. */
export function writeNginxConf(conf: NginxConf): { binary: string; args: string[] } {
  const { dir } = conf;
  const text = `daemon off;
worker_processes 1;
pid ${dir}/nginx.pid;
error_log ${dir}/error.log info;
${(conf.modules ?? []).map((module) => `load_module ${module};\n`).join("")}events {
    worker_connections ${conf.workerConnections};
}
http {
    access_log ${dir}/access.log;
    client_body_temp_path ${dir}/client_body;
    proxy_temp_path ${dir}/proxy;
    fastcgi_temp_path ${dir}/fastcgi;
    uwsgi_temp_path ${dir}/uwsgi;
    scgi_temp_path ${dir}/scgi;
${conf.http}
}
`;
  const confFile = join(dir, "nginx.conf");
  writeFileSync(confFile, text);
  const binary = findExecutable("nginx", ["/usr/sbin/nginx", "/usr/local/sbin/nginx"]);
  const args = ["-p", dir, "-e", join(dir, "error.log"), "-c", confFile];
  try {
    execFileSync(binary, ["-t", "-q", ...args], { stdio: ["ignore", "pipe", "pipe"] });
  } catch (error) {
    const stderr = (error as { stderr?: Buffer }).stderr?.toString("utf8") ?? String(error);
    throw new Error(`nginx refused ${confFile}:\n${stderr}`, { cause: error });
  }
  return { binary, args };
}

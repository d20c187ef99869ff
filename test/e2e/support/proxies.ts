import { execFileSync } from "node:child_process";
import { chmodSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { repoRoot } from "../../support/opa.js";
import { findExecutable, freePort, spawnManaged, waitForHttp, type Managed } from "./processes.js";

/**
 * Proxy configurations for mcp-pdp's forward-auth endpoint. The README's
 * "Putting it behind a proxy" snippets are these functions' output (with
 * placeholder addresses); the tests run them on ephemeral loopback ports.
 */
export interface Upstreams {
  /** host:port of the PDP. */
  pdp: string;
  /** host:port of the MCP server. */
  mcp: string;
}

/** The http-level upstreams both NGINX variants use. */
export function nginxUpstreams(upstreams: Upstreams): string {
  return `upstream mcp_pdp {
    server ${upstreams.pdp};
}
upstream mcp_files {
    server ${upstreams.mcp};
}
`;
}

/**
 * The auth subrequest to the PDP. The proxy sets every X-Forwarded-* and
 * X-Original-* header itself: the PDP reads the original method and URI from
 * them, and a client must not be able to send its own.
 */
function nginxPdpLocation(name: string, withBody: boolean): string {
  const body = withBody
    ? ["# The body is the one the njs handler gives its subrequest."]
    : [
        "proxy_pass_request_body off;    # auth_request sends headers only",
        'proxy_set_header Content-Length "";',
      ];
  const lines = [
    `location = ${name} {`,
    "    internal;",
    "    proxy_pass http://mcp_pdp/forward-auth/files;",
    ...body.map((line) => `    ${line}`),
    "    proxy_set_header X-Original-Method $request_method;",
    "    proxy_set_header X-Original-URI $request_uri;",
    "    proxy_set_header X-Forwarded-Method $request_method;",
    "    proxy_set_header X-Forwarded-Uri $request_uri;",
    "    proxy_set_header X-Forwarded-Host $host;",
    "    proxy_set_header X-Forwarded-Proto $scheme;",
    "    proxy_set_header X-Forwarded-For $remote_addr;",
    "    # Authorization, Mcp-Method, Mcp-Name and Mcp-Session-Id pass as the client sent them.",
    "    # So does X-Device-Trust in this example: set it from what the proxy verified, or clear it.",
    "}",
  ];
  return `${lines.map((line) => `    ${line}`).join("\n")}\n`;
}

/** NGINX auth_request: headers only (the PDP never sees the JSON-RPC body). */
export function nginxAuthRequestServer(options: { listen: string }): string {
  return `server {
    listen ${options.listen};

    location /mcp {
        auth_request /_mcp_pdp;
        auth_request_set $pdp_decision_id $upstream_http_x_pdp_decision_id;
        auth_request_set $pdp_subject $upstream_http_x_pdp_subject;
        auth_request_set $pdp_risk $upstream_http_x_pdp_risk;
        auth_request_set $pdp_www_authenticate $upstream_http_www_authenticate;
        error_page 401 = @mcp_pdp_401;
        error_page 403 = @mcp_pdp_403;

        proxy_set_header X-Pdp-Decision-Id $pdp_decision_id;
        proxy_set_header X-Pdp-Subject $pdp_subject;
        proxy_set_header X-Pdp-Risk $pdp_risk;
        proxy_http_version 1.1;
        proxy_buffering off;             # SSE responses stream through
        proxy_pass http://mcp_files;
    }

${nginxPdpLocation("/_mcp_pdp", false)}
    # auth_request itself relays a 401's WWW-Authenticate (resource_metadata);
    # a 403's challenge (insufficient_scope, scope=…) needs add_header.
    location @mcp_pdp_401 {
        add_header X-Pdp-Decision-Id $pdp_decision_id always;
        default_type application/json;
        return 401 '{"code":"unauthenticated","decision_id":"$pdp_decision_id"}';
    }
    location @mcp_pdp_403 {
        add_header WWW-Authenticate $pdp_www_authenticate always;
        add_header X-Pdp-Decision-Id $pdp_decision_id always;
        default_type application/json;
        return 403 '{"code":"access_denied","decision_id":"$pdp_decision_id"}';
    }
}
`;
}

/** NGINX + njs: the handler reads the body and sends it to the PDP in a subrequest. */
export function nginxNjsServer(options: { listen: string; script: string }): string {
  return `js_import mcp_pdp from ${options.script};
js_var $njs_pdp_decision_id;
js_var $njs_pdp_subject;
js_var $njs_pdp_risk;

server {
    listen ${options.listen};
    # Keep bodies in memory: njs reads r.requestText only from memory
    # (a body that is not there reaches the PDP as an opaque POST: highest risk).
    client_max_body_size 1m;
    client_body_buffer_size 1m;

    location /mcp {
        js_content mcp_pdp.authorize;
    }

${nginxPdpLocation("/_mcp_pdp_body", true)}
    location @mcp_files {
        proxy_set_header X-Pdp-Decision-Id $njs_pdp_decision_id;
        proxy_set_header X-Pdp-Subject $njs_pdp_subject;
        proxy_set_header X-Pdp-Risk $njs_pdp_risk;
        proxy_http_version 1.1;
        proxy_buffering off;
        proxy_pass http://mcp_files;
    }
}
`;
}

/** The njs module of the njs variant (njs 0.7+). */
export const njsScript = `// mcp-pdp.js: send the MCP request, body included, to mcp-pdp's forward-auth endpoint.
async function authorize(r) {
  // js_content reads the body first; requestText is undefined when there is none
  // (or when it was buffered to a file: then the PDP judges an opaque POST).
  const body = r.requestText || "";
  let reply;
  try {
    // The client's own method: the PDP refuses a POST reported as anything else.
    reply = await r.subrequest("/_mcp_pdp_body", { method: r.method, body: body });
  } catch (e) {
    r.error("mcp-pdp subrequest failed: " + e);
    r.return(502);
    return;
  }
  if (reply.status >= 200 && reply.status < 300) {
    r.variables.njs_pdp_decision_id = reply.headersOut["X-Pdp-Decision-Id"] || "";
    r.variables.njs_pdp_subject = reply.headersOut["X-Pdp-Subject"] || "";
    r.variables.njs_pdp_risk = reply.headersOut["X-Pdp-Risk"] || "";
    r.internalRedirect("@mcp_files");
    return;
  }
  // A deny: relay the PDP's status, challenge and JSON(-RPC) error body as they are.
  ["WWW-Authenticate", "X-Pdp-Decision-Id"].forEach(function (name) {
    const value = reply.headersOut[name];
    if (value) r.headersOut[name] = value;
  });
  r.headersOut["Content-Type"] = reply.headersOut["Content-Type"] || "application/json";
  r.return(reply.status, reply.responseText || "");
}

export default { authorize };
`;

/** Caddy forward_auth: a GET with X-Forwarded-Method/-Uri, never the body. */
export function caddySite(options: { site: string; bind?: string } & Upstreams): string {
  const bind = options.bind === undefined ? "" : `    bind ${options.bind}\n`;
  return `${options.site} {
${bind}    handle /mcp* {
        forward_auth ${options.pdp} {
            uri /forward-auth/files
            copy_headers X-Pdp-Decision-Id X-Pdp-Subject X-Pdp-Risk
            # X-Device-Trust reaches the PDP as the client sent it in this example:
            # set it from what Caddy verified (header_up) or strip it (header_up -X-Device-Trust).
        }
        reverse_proxy ${options.mcp} {
            flush_interval -1
        }
    }
}
`;
}

/** Traefik ForwardAuth with forwardBody (file provider, dynamic configuration). */
export function traefikDynamic(options: Upstreams & { entryPoint: string }): string {
  return `http:
  middlewares:
    mcp-pdp:
      forwardAuth:
        address: "http://${options.pdp}/forward-auth/files"
        forwardBody: true # the PDP reads the JSON-RPC body
        maxBodySize: 1048576 # larger bodies are refused (401), never passed unread
        trustForwardHeader: false # drop the client's X-Forwarded-*, set our own
        authResponseHeaders:
          - X-Pdp-Decision-Id
          - X-Pdp-Subject
          - X-Pdp-Risk
  routers:
    mcp-files:
      entryPoints: [${options.entryPoint}]
      rule: "PathPrefix(\`/mcp\`)"
      middlewares: [mcp-pdp]
      service: mcp-files
  services:
    mcp-files:
      loadBalancer:
        servers:
          - url: "http://${options.mcp}"
`;
}

/** A running proxy and where clients reach the MCP server through it. */
export interface RunningProxy {
  process: Managed;
  /** Base URL of the proxy, e.g. http://127.0.0.1:40123 */
  origin: string;
  dir: string;
}

/** Ready when an unauthenticated GET /mcp gets the PDP's 401 through the proxy. */
async function waitUntilGuarded(origin: string, managed: Managed): Promise<void> {
  await waitForHttp(`${origin}/mcp`, managed, (status) => status === 401, 30000);
}

const nginxBinary = () => findExecutable("nginx", ["/usr/sbin/nginx", "/usr/local/sbin/nginx"]);
export const njsModule = "/usr/lib/nginx/modules/ngx_http_js_module.so";

/** One NGINX instance serving both variants: auth_request (plain) and njs. */
export async function startNginx(
  dir: string,
  ports: { pdp: number; mcp: number },
): Promise<{ plain: RunningProxy; njs: RunningProxy }> {
  const plainPort = await freePort();
  const njsPort = await freePort();
  // Workers run as an unprivileged user when nginx starts as root: let them in.
  chmodSync(dir, 0o755);
  const script = join(dir, "mcp-pdp.js");
  writeFileSync(script, njsScript);
  const conf = `daemon off;
worker_processes 1;
pid ${dir}/nginx.pid;
error_log ${dir}/error.log info;
load_module ${njsModule};
events {
    worker_connections 256;
}
http {
    access_log ${dir}/access.log;
    client_body_temp_path ${dir}/client_body;
    proxy_temp_path ${dir}/proxy;
    fastcgi_temp_path ${dir}/fastcgi;
    uwsgi_temp_path ${dir}/uwsgi;
    scgi_temp_path ${dir}/scgi;

${indent(nginxUpstreams({ pdp: `127.0.0.1:${ports.pdp}`, mcp: `127.0.0.1:${ports.mcp}` }))}
${indent(nginxAuthRequestServer({ listen: `127.0.0.1:${plainPort}` }))}
${indent(nginxNjsServer({ listen: `127.0.0.1:${njsPort}`, script }))}
}
`;
  const confFile = join(dir, "nginx.conf");
  writeFileSync(confFile, conf);
  const binary = nginxBinary();
  // Fail with nginx's own words when the configuration is refused.
  try {
    execFileSync(binary, ["-t", "-q", "-p", dir, "-e", join(dir, "error.log"), "-c", confFile], {
      stdio: ["ignore", "pipe", "pipe"],
    });
  } catch (error) {
    const stderr = (error as { stderr?: Buffer }).stderr?.toString("utf8") ?? String(error);
    throw new Error(`nginx refused ${confFile}:\n${stderr}`, { cause: error });
  }
  const managed = spawnManaged(
    "nginx",
    binary,
    ["-p", dir, "-e", join(dir, "error.log"), "-c", confFile],
    { cwd: dir, logFile: join(dir, "error.log") },
  );
  const plain = { process: managed, origin: `http://127.0.0.1:${plainPort}`, dir };
  const njs = { process: managed, origin: `http://127.0.0.1:${njsPort}`, dir };
  await waitUntilGuarded(plain.origin, managed);
  await waitUntilGuarded(njs.origin, managed);
  return { plain, njs };
}

/** Caddy with forward_auth, its own config, no admin endpoint, no automatic HTTPS. */
export async function startCaddy(
  dir: string,
  ports: { pdp: number; mcp: number },
): Promise<RunningProxy> {
  const port = await freePort();
  const caddyfile = `{
    admin off
    auto_https off
}

${caddySite({
  site: `http://127.0.0.1:${port}`,
  bind: "127.0.0.1",
  pdp: `127.0.0.1:${ports.pdp}`,
  mcp: `127.0.0.1:${ports.mcp}`,
})}`;
  const file = join(dir, "Caddyfile");
  writeFileSync(file, caddyfile);
  const managed = spawnManaged(
    "caddy",
    findExecutable("caddy", ["/usr/bin/caddy", "/usr/local/bin/caddy"]),
    ["run", "--config", file, "--adapter", "caddyfile"],
    {
      cwd: dir,
      env: {
        PATH: process.env.PATH ?? "",
        HOME: dir,
        XDG_CONFIG_HOME: join(dir, "config"),
        XDG_DATA_HOME: join(dir, "data"),
      },
    },
  );
  const origin = `http://127.0.0.1:${port}`;
  await waitUntilGuarded(origin, managed);
  return { process: managed, origin, dir };
}

/** The pinned Traefik (scripts/ensure-traefik.sh installs it when missing). */
export function traefikBinary(): string {
  return execFileSync(join(repoRoot, "scripts", "ensure-traefik.sh"), {
    encoding: "utf8",
    stdio: ["ignore", "pipe", "inherit"],
  }).trim();
}

/** Traefik v3 with a static file and a file-provider dynamic configuration. */
export async function startTraefik(
  dir: string,
  ports: { pdp: number; mcp: number },
): Promise<RunningProxy> {
  const binary = traefikBinary();
  const port = await freePort();
  const dynamic = join(dir, "dynamic.yml");
  writeFileSync(
    dynamic,
    traefikDynamic({
      pdp: `127.0.0.1:${ports.pdp}`,
      mcp: `127.0.0.1:${ports.mcp}`,
      entryPoint: "web",
    }),
  );
  const staticFile = join(dir, "traefik.yml");
  writeFileSync(
    staticFile,
    `global:
  checkNewVersion: false
  sendAnonymousUsage: false
entryPoints:
  web:
    address: "127.0.0.1:${port}"
providers:
  file:
    filename: "${dynamic}"
    watch: false
log:
  level: INFO
`,
  );
  const managed = spawnManaged("traefik", binary, [`--configFile=${staticFile}`], {
    cwd: dir,
    env: { PATH: process.env.PATH ?? "", HOME: dir },
  });
  const origin = `http://127.0.0.1:${port}`;
  await waitUntilGuarded(origin, managed);
  return { process: managed, origin, dir };
}

function indent(text: string): string {
  return text
    .split("\n")
    .map((line) => (line === "" ? line : `    ${line}`))
    .join("\n");
}

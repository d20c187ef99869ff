import { execFileSync } from "node:child_process";
import { chmodSync, readFileSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { writeNginxConf } from "../../support/nginx-conf.ts";
import { repoRoot } from "../../support/opa.ts";
import type { E2eEnvironment } from "./environment.ts";
import { findExecutable, freePort, spawnManaged, type Managed } from "./processes.ts";
import { siteNames, sites, type SiteName } from "./sites.ts";

/**
 * Proxy configurations for mcp-pdp's forward-auth endpoint. The README's
 * "Putting it behind a proxy" snippets are these functions' output for the
 * `files` server (with placeholder addresses and paths); the tests run the
 * same functions once per e2e server, each on its own loopback port.
 *
 * Every configuration authenticates the proxy to the PDP (`callers` is
 * configured, as it must be off loopback) on the auth request only: NGINX
 * and Caddy with an API key in X-Api-Key, Traefik with a client certificate.
 * The credential never reaches the MCP server.
 */

/** The http-level upstreams of the NGINX variants: the PDP and each MCP server (name → host:port). */
export function nginxUpstreams(options: { pdp: string; mcp: Record<string, string> }): string {
  const blocks = [
    `upstream mcp_pdp {\n    server ${options.pdp};\n}\n`,
    ...Object.entries(options.mcp).map(
      ([server, address]) => `upstream ${nginxUpstreamName(server)} {\n    server ${address};\n}\n`,
    ),
  ];
  return blocks.join("");
}

/** `files` → `mcp_files`: the NGINX upstream of an MCP server. */
function nginxUpstreamName(server: string): string {
  return `mcp_${server.replace(/[^A-Za-z0-9]/g, "_")}`;
}

/** The file holding the proxy's `proxy_set_header X-Api-Key …;` line (see `nginxKeyCommands`). */
export const readmeNginxKeyFile = "/etc/nginx/mcp-pdp-key.conf";

/**
 * How an operator makes the NGINX proxy's key: the include file with the
 * header line, readable by root only, and the digest for the PDP's callers.
 * The nginx e2e test runs exactly these commands (with its own path).
 */
export function nginxKeyCommands(keyFile: string): string {
  return `PDP_API_KEY="$(openssl rand -base64 32)"
printf 'proxy_set_header X-Api-Key "%s";\\n' "$PDP_API_KEY" > ${keyFile}
chmod 600 ${keyFile}
printf %s "$PDP_API_KEY" | sha256sum   # the digest for callers[].api_key_sha256 in PDP_CONFIG
`;
}

/**
 * The auth subrequest to the PDP. The proxy sets every X-Forwarded-* and
 * X-Original-* header itself: the PDP reads the original method and URI from
 * them, and a client must not be able to send its own. The proxy's key comes
 * from an include file, so the main configuration holds no secret; it is set
 * on this subrequest only, overwriting any X-Api-Key the client sent.
 */
function nginxPdpLocation(options: {
  location: string;
  server: string;
  keyFile: string;
  withBody: boolean;
}): string {
  const body = options.withBody
    ? ["# The body is the one the njs handler gives its subrequest."]
    : [
        "proxy_pass_request_body off;    # auth_request sends headers only",
        'proxy_set_header Content-Length "";',
      ];
  const lines = [
    `location = ${options.location} {`,
    "    internal;",
    `    proxy_pass http://mcp_pdp/forward-auth/${options.server};`,
    ...body.map((line) => `    ${line}`),
    "    # The proxy's credential at the PDP: X-Api-Key, from a file only root can read.",
    `    include ${options.keyFile};`,
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
export function nginxAuthRequestServer(options: {
  listen: string;
  server: string;
  keyFile: string;
}): string {
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
        proxy_pass http://${nginxUpstreamName(options.server)};
    }

${nginxPdpLocation({ location: "/_mcp_pdp", server: options.server, keyFile: options.keyFile, withBody: false })}
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

/** The http-level lines of the njs variant (once per NGINX, however many servers). */
export function nginxNjsHttp(options: { script: string }): string {
  return `js_import mcp_pdp from ${options.script};
js_var $njs_pdp_decision_id;
js_var $njs_pdp_subject;
js_var $njs_pdp_risk;
`;
}

/** NGINX + njs: the handler reads the body and sends it to the PDP in a subrequest. */
export function nginxNjsServer(options: {
  listen: string;
  server: string;
  keyFile: string;
}): string {
  return `server {
    listen ${options.listen};
    # Keep bodies in memory: njs reads r.requestText only from memory
    # (a body that is not there reaches the PDP as an opaque POST: highest risk).
    client_max_body_size 1m;
    client_body_buffer_size 1m;

    location /mcp {
        js_content mcp_pdp.authorize;
    }

${nginxPdpLocation({ location: "/_mcp_pdp_body", server: options.server, keyFile: options.keyFile, withBody: true })}
    location @mcp_files {
        proxy_set_header X-Pdp-Decision-Id $njs_pdp_decision_id;
        proxy_set_header X-Pdp-Subject $njs_pdp_subject;
        proxy_set_header X-Pdp-Risk $njs_pdp_risk;
        proxy_http_version 1.1;
        proxy_buffering off;
        proxy_pass http://${nginxUpstreamName(options.server)};
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

/**
 * Caddy forward_auth: a GET with X-Forwarded-Method/-Uri, never the body. The
 * proxy's key comes from Caddy's environment (`PDP_API_KEY`) at request time
 * and is set on the auth request only, replacing any X-Api-Key the client sent.
 */
export function caddySite(options: {
  site: string;
  bind?: string;
  pdp: string;
  mcp: string;
  server: string;
}): string {
  const bind = options.bind === undefined ? "" : `    bind ${options.bind}\n`;
  return `${options.site} {
${bind}    handle /mcp* {
        forward_auth ${options.pdp} {
            uri /forward-auth/${options.server}
            # The proxy's credential at the PDP, from Caddy's environment: on the auth request only.
            header_up X-Api-Key {env.PDP_API_KEY}
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

/** Where Traefik finds what it presents to the PDP (mTLS). */
export interface TraefikClientTls {
  ca: string;
  cert: string;
  key: string;
}

/**
 * Traefik ForwardAuth with forwardBody (file provider, dynamic
 * configuration), one middleware, router and service per MCP server. Traefik
 * cannot set a header on the auth request alone (a headers middleware changes
 * the upstream request too), so it authenticates to the
 * PDP with a client certificate (`tls`), which never reaches the MCP server.
 */
export function traefikDynamic(options: {
  pdp: string;
  tls: TraefikClientTls;
  sites: { server: string; mcp: string; entryPoint: string }[];
}): string {
  const middlewares = options.sites.map(
    (site) => `    mcp-pdp-${site.server}:
      forwardAuth:
        address: "https://${options.pdp}/forward-auth/${site.server}"
        tls: # the proxy's credential at the PDP: a client certificate (mTLS)
          ca: ${options.tls.ca}
          cert: ${options.tls.cert}
          key: ${options.tls.key}
        forwardBody: true # the PDP reads the JSON-RPC body
        maxBodySize: 1048576 # larger bodies are refused (401), never passed unread
        trustForwardHeader: false # drop the client's X-Forwarded-*, set our own
        authResponseHeaders:
          - X-Pdp-Decision-Id
          - X-Pdp-Subject
          - X-Pdp-Risk
`,
  );
  const routers = options.sites.map(
    (site) => `    mcp-${site.server}:
      entryPoints: [${site.entryPoint}]
      rule: "PathPrefix(\`/mcp\`)"
      middlewares: [mcp-pdp-${site.server}]
      service: mcp-${site.server}
`,
  );
  const services = options.sites.map(
    (site) => `    mcp-${site.server}:
      loadBalancer:
        servers:
          - url: "http://${site.mcp}"
`,
  );
  return `http:
  middlewares:
${middlewares.join("")}  routers:
${routers.join("")}  services:
${services.join("")}`;
}

/**
 * Envoy ext_authz (HTTP service) and the cluster that reaches the PDP with a
 * client certificate. Not run: no Envoy package exists on the machines this
 * project is tested on; the README shows it and a test parses it.
 */
export function envoyConfig(options: {
  pdp: { address: string; port: number; name: string };
  server: string;
  tls: { ca: string; cert: string; key: string };
}): string {
  return `http_filters:
  - name: envoy.filters.http.ext_authz
    typed_config:
      "@type": type.googleapis.com/envoy.extensions.filters.http.ext_authz.v3.ExtAuthz
      http_service:
        server_uri:
          uri: https://${options.pdp.name}:${options.pdp.port}
          cluster: mcp_pdp
          timeout: 1s
        path_prefix: /forward-auth/${options.server} # Envoy appends the client's path
        authorization_response:
          allowed_upstream_headers:
            patterns:
              - prefix: x-pdp-
      allowed_headers: # Envoy 1.24+; before: http_service.authorization_request.allowed_headers
        patterns:
          - exact: authorization
          - exact: mcp-method
          - exact: mcp-name
          - exact: mcp-protocol-version
          - exact: mcp-session-id
          - exact: x-forwarded-for
          - exact: x-device-trust
      with_request_body:
        max_request_bytes: 1048576
        allow_partial_message: false # a larger body is refused (413), never judged unread
      failure_mode_allow: false
  - name: envoy.filters.http.router
    typed_config:
      "@type": type.googleapis.com/envoy.extensions.filters.http.router.v3.Router

clusters:
  - name: mcp_pdp
    type: STATIC
    connect_timeout: 1s
    load_assignment:
      cluster_name: mcp_pdp
      endpoints:
        - lb_endpoints:
            - endpoint:
                address:
                  socket_address:
                    address: ${options.pdp.address}
                    port_value: ${options.pdp.port}
    transport_socket: # the proxy's credential at the PDP: a client certificate (mTLS)
      name: envoy.transport_sockets.tls
      typed_config:
        "@type": type.googleapis.com/envoy.extensions.transport_sockets.tls.v3.UpstreamTlsContext
        sni: ${options.pdp.name}
        common_tls_context:
          tls_certificates:
            - certificate_chain:
                filename: ${options.tls.cert}
              private_key:
                filename: ${options.tls.key}
          validation_context:
            trusted_ca:
              filename: ${options.tls.ca}
            match_typed_subject_alt_names:
              - san_type: DNS
                matcher:
                  exact: ${options.pdp.name}
`;
}

/** A running proxy and where clients reach each e2e server through it. */
export interface RunningProxy {
  process: Managed;
  /** Base URL of each site on the proxy, e.g. http://127.0.0.1:40123 */
  origins: Record<SiteName, string>;
  dir: string;
}

/**
 * Ready when an unauthenticated GET /mcp of every site gets the PDP's own
 * answer through the proxy: the token challenge (401 `Bearer …`) of a
 * registered server, 403 for the unregistered one. A proxy whose credential
 * the PDP refuses gets `ApiKey` challenges instead and never becomes ready.
 */
async function waitUntilGuarded(
  origins: Record<SiteName, string>,
  managed: Managed,
  timeoutMs = 30000,
): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  let exitCode: number | null | undefined;
  void managed.exited.then((code) => {
    exitCode = code;
  });
  for (const name of siteNames) {
    const url = `${origins[name]}/mcp`;
    const registered = sites[name].registration !== undefined;
    let last = "no answer";
    for (;;) {
      if (exitCode !== undefined) {
        throw new Error(`${managed.name} exited (${String(exitCode)}):\n${managed.output()}`);
      }
      if (Date.now() > deadline) {
        await managed.stop();
        throw new Error(`${managed.name} not ready at ${url} (${last}):\n${managed.output()}`);
      }
      try {
        const response = await fetch(url, { signal: AbortSignal.timeout(2000) });
        await response.body?.cancel();
        const challenge = response.headers.get("www-authenticate") ?? "";
        if (
          registered
            ? response.status === 401 && challenge.startsWith("Bearer")
            : response.status === 403
        ) {
          break;
        }
        last = `status ${response.status}, WWW-Authenticate: ${challenge}`;
      } catch (error) {
        last = error instanceof Error ? error.message : String(error);
      }
      await new Promise((resolve) => setTimeout(resolve, 100));
    }
  }
}

/** A free loopback port for every site. */
async function sitePorts(): Promise<Record<SiteName, number>> {
  const ports: Partial<Record<SiteName, number>> = {};
  for (const name of siteNames) ports[name] = await freePort();
  return ports as Record<SiteName, number>;
}

function originsOf(ports: Record<SiteName, number>): Record<SiteName, string> {
  const origins: Partial<Record<SiteName, string>> = {};
  for (const name of siteNames) origins[name] = `http://127.0.0.1:${ports[name]}`;
  return origins as Record<SiteName, string>;
}

/** The MCP server listener (host:port) of every e2e server. */
function mcpAddresses(env: E2eEnvironment): Record<string, string> {
  const addresses: Record<string, string> = {};
  for (const name of siteNames) {
    addresses[sites[name].server] = env.upstreams.mcp[sites[name].upstream];
  }
  return addresses;
}

function apiKeyOf(env: E2eEnvironment): string {
  const credential = env.credential;
  if (credential.kind !== "api-key") throw new Error("this proxy authenticates with an API key");
  return credential.key;
}

export const njsModule = "/usr/lib/nginx/modules/ngx_http_js_module.so";

/**
 * One NGINX instance serving both variants, auth_request (plain) and njs,
 * each with a server block per e2e server. `keyFile` holds the proxy's
 * `proxy_set_header X-Api-Key …;` line.
 */
export async function startNginx(
  dir: string,
  env: E2eEnvironment,
  keyFile: string,
): Promise<{ plain: RunningProxy; njs: RunningProxy }> {
  const plainPorts = await sitePorts();
  const njsPorts = await sitePorts();
  // Workers run as an unprivileged user when nginx starts as root: let them in.
  chmodSync(dir, 0o755);
  const script = join(dir, "mcp-pdp.js");
  writeFileSync(script, njsScript);
  const servers = siteNames.flatMap((name) => [
    nginxAuthRequestServer({
      listen: `127.0.0.1:${plainPorts[name]}`,
      server: sites[name].server,
      keyFile,
    }),
    nginxNjsServer({ listen: `127.0.0.1:${njsPorts[name]}`, server: sites[name].server, keyFile }),
  ]);
  const { binary, args } = writeNginxConf({
    dir,
    workerConnections: 256,
    modules: [njsModule],
    http: `
${indent(nginxUpstreams({ pdp: env.upstreams.pdp, mcp: mcpAddresses(env) }))}
${indent(nginxNjsHttp({ script }))}
${servers.map(indent).join("\n")}`,
  });
  const managed = spawnManaged("nginx", binary, args, {
    cwd: dir,
    logFile: join(dir, "error.log"),
  });
  const plain = { process: managed, origins: originsOf(plainPorts), dir };
  const njs = { process: managed, origins: originsOf(njsPorts), dir };
  await waitUntilGuarded(plain.origins, managed);
  await waitUntilGuarded(njs.origins, managed);
  return { plain, njs };
}

/** Where `makeNginxKey` writes the include file in `dir`. */
export function nginxKeyFile(dir: string): string {
  return join(dir, "mcp-pdp-key.conf");
}

/**
 * Runs the README's key commands (`nginxKeyCommands`) with bash in `dir`:
 * returns the key the include file holds, after checking that the digest
 * the commands print is the key's.
 */
export function makeNginxKey(dir: string, digestOf: (key: string) => string): string {
  const keyFile = nginxKeyFile(dir);
  const printed = execFileSync("bash", ["-eo", "pipefail", "-c", nginxKeyCommands(keyFile)], {
    cwd: dir,
    encoding: "utf8",
    env: { PATH: process.env.PATH ?? "" },
  });
  const line = readFileSync(keyFile, "utf8");
  const match = /^proxy_set_header X-Api-Key "([A-Za-z0-9+/=]+)";\n$/.exec(line);
  if (match?.[1] === undefined) throw new Error(`unexpected key include file: ${line}`);
  const digest = printed.trim().split(/\s+/)[0];
  if (digest !== digestOf(match[1])) {
    throw new Error(`the printed digest ${digest} is not the key's`);
  }
  return match[1];
}

/** Caddy with forward_auth, a site per e2e server, no admin endpoint, no automatic HTTPS. */
export async function startCaddy(dir: string, env: E2eEnvironment): Promise<RunningProxy> {
  const ports = await sitePorts();
  const addresses = mcpAddresses(env);
  const siteBlocks = siteNames.map((name) =>
    caddySite({
      site: `http://127.0.0.1:${ports[name]}`,
      bind: "127.0.0.1",
      pdp: env.upstreams.pdp,
      mcp: addresses[sites[name].server] ?? "",
      server: sites[name].server,
    }),
  );
  const managed = spawnCaddy(dir, siteBlocks, apiKeyOf(env));
  const origins = originsOf(ports);
  await waitUntilGuarded(origins, managed);
  return { process: managed, origins, dir };
}

/**
 * Caddy in the foreground in `dir` (its home, config and data there), serving
 * `siteBlocks` with the admin API and automatic HTTPS off; `apiKey` is the
 * `{$PDP_API_KEY}` the site blocks send to the PDP.
 */
export function spawnCaddy(dir: string, siteBlocks: readonly string[], apiKey: string): Managed {
  const file = join(dir, "Caddyfile");
  writeFileSync(file, `{\n    admin off\n    auto_https off\n}\n\n${siteBlocks.join("\n")}`);
  return spawnManaged(
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
        PDP_API_KEY: apiKey,
      },
    },
  );
}

/** The pinned Traefik (scripts/ensure-traefik.sh installs it when missing). */
export function traefikBinary(): string {
  return execFileSync(join(repoRoot, "scripts", "ensure-traefik.sh"), {
    encoding: "utf8",
    stdio: ["ignore", "pipe", "inherit"],
  }).trim();
}

/** Traefik's static configuration: entry points (name → host:port), the dynamic file, no phoning home. */
export function traefikStatic(entryPoints: Record<string, string>, dynamicFile: string): string {
  const points = Object.entries(entryPoints)
    .map(([name, address]) => `  ${name}:\n    address: "${address}"\n`)
    .join("");
  return `global:
  checkNewVersion: false
  sendAnonymousUsage: false
entryPoints:
${points}providers:
  file:
    filename: "${dynamicFile}"
    watch: false
log:
  level: INFO
`;
}

/** Traefik v3 with a static file and a file-provider dynamic configuration, an entry point per e2e server. */
export async function startTraefik(dir: string, env: E2eEnvironment): Promise<RunningProxy> {
  const credential = env.credential;
  if (credential.kind !== "mtls")
    throw new Error("Traefik authenticates with a client certificate");
  const binary = traefikBinary();
  const ports = await sitePorts();
  const addresses = mcpAddresses(env);
  const dynamic = join(dir, "dynamic.yml");
  writeFileSync(
    dynamic,
    traefikDynamic({
      pdp: env.upstreams.pdp,
      tls: {
        ca: credential.pki.ca.certFile,
        cert: credential.client.certFile,
        key: credential.client.keyFile,
      },
      sites: siteNames.map((name) => ({
        server: sites[name].server,
        mcp: addresses[sites[name].server] ?? "",
        entryPoint: `site-${name}`,
      })),
    }),
  );
  const entryPoints: Record<string, string> = {};
  for (const name of siteNames) entryPoints[`site-${name}`] = `127.0.0.1:${ports[name]}`;
  const staticFile = join(dir, "traefik.yml");
  writeFileSync(staticFile, traefikStatic(entryPoints, dynamic));
  const managed = spawnManaged("traefik", binary, [`--configFile=${staticFile}`], {
    cwd: dir,
    env: { PATH: process.env.PATH ?? "", HOME: dir },
  });
  const origins = originsOf(ports);
  await waitUntilGuarded(origins, managed);
  return { process: managed, origins, dir };
}

function indent(text: string): string {
  return text
    .split("\n")
    .map((line) => (line === "" ? line : `    ${line}`))
    .join("\n");
}

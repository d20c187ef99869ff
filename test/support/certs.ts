/**
 * Test PKI made with the openssl CLI in a temporary directory: nothing is
 * committed, everything is generated per test run and removed afterwards.
 *
 * - `ca`: the CA the PDP trusts for client certificates (tls.client_ca_file);
 *   it also signs the server certificate, so clients pass it as `ca`.
 * - `server`: for 127.0.0.1 (SAN IP:127.0.0.1, DNS:localhost).
 * - `clients.gateway`: CN=gateway.internal, no SAN.
 * - `clients.files`: CN=mcp-files with the DNS SAN files.mcp.internal.
 * - `clients.stranger`: CN=stranger.internal, signed by `ca`, configured nowhere.
 * - `clients.untrusted`: CN=gateway.internal, signed by `untrustedCa`, which
 *   the PDP does not trust.
 */
import { execFileSync } from "node:child_process";
import { randomBytes } from "node:crypto";
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";

/** A certificate and its private key, as files and as PEM text. */
export interface CertificateFiles {
  certFile: string;
  keyFile: string;
  cert: string;
  key: string;
}

export interface TestPki {
  dir: string;
  ca: CertificateFiles;
  untrustedCa: CertificateFiles;
  server: CertificateFiles;
  clients: {
    gateway: CertificateFiles;
    files: CertificateFiles;
    stranger: CertificateFiles;
    untrusted: CertificateFiles;
  };
  /** Issues one more certificate signed by `ca` (or `signer`). */
  issue: (
    name: string,
    options: {
      commonName: string;
      subjectAltNames?: readonly string[];
      usage: "client" | "server";
      signer?: CertificateFiles;
    },
  ) => CertificateFiles;
  remove: () => void;
}

/** The names the generated client certificates carry. */
export const certificateNames = {
  gateway: "gateway.internal",
  filesCommonName: "mcp-files",
  filesDnsSan: "files.mcp.internal",
  stranger: "stranger.internal",
} as const;

const openssl = "/usr/bin/openssl";

function run(args: readonly string[]): void {
  try {
    execFileSync(openssl, args, { stdio: ["ignore", "pipe", "pipe"] });
  } catch (error) {
    const stderr = (error as { stderr?: Buffer }).stderr?.toString() ?? "";
    throw new Error(`openssl ${args.join(" ")} failed: ${stderr}`);
  }
}

/** An openssl config with a fixed subject (CN only) and the extensions in section [ext]. */
function opensslConfig(commonName: string, extensions: readonly string[]): string {
  return [
    "[req]",
    "distinguished_name = dn",
    "prompt = no",
    "[dn]",
    `CN = ${commonName}`,
    "[ext]",
    ...extensions,
    "",
  ].join("\n");
}

const keyOptions = ["-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1", "-nodes"];

function read(certFile: string, keyFile: string): CertificateFiles {
  return {
    certFile,
    keyFile,
    cert: readFileSync(certFile, "utf8"),
    key: readFileSync(keyFile, "utf8"),
  };
}

function createCa(dir: string, name: string, commonName: string): CertificateFiles {
  const configFile = join(dir, `${name}.cnf`);
  writeFileSync(
    configFile,
    opensslConfig(commonName, [
      "basicConstraints = critical,CA:TRUE",
      "keyUsage = critical,keyCertSign,cRLSign",
      "subjectKeyIdentifier = hash",
    ]),
  );
  const certFile = join(dir, `${name}.crt`);
  const keyFile = join(dir, `${name}.key`);
  run([
    "req",
    "-x509",
    "-new",
    ...keyOptions,
    "-keyout",
    keyFile,
    "-out",
    certFile,
    "-days",
    "2",
    "-config",
    configFile,
    "-extensions",
    "ext",
  ]);
  return read(certFile, keyFile);
}

function issueCertificate(
  dir: string,
  name: string,
  signer: CertificateFiles,
  options: { commonName: string; subjectAltNames?: readonly string[]; usage: "client" | "server" },
): CertificateFiles {
  const extensions = [
    "basicConstraints = critical,CA:FALSE",
    "keyUsage = critical,digitalSignature",
    `extendedKeyUsage = ${options.usage === "client" ? "clientAuth" : "serverAuth"}`,
    "subjectKeyIdentifier = hash",
    "authorityKeyIdentifier = keyid",
  ];
  const sans = options.subjectAltNames ?? [];
  if (sans.length > 0) extensions.push(`subjectAltName = ${sans.join(", ")}`);
  const configFile = join(dir, `${name}.cnf`);
  writeFileSync(configFile, opensslConfig(options.commonName, extensions));
  const certFile = join(dir, `${name}.crt`);
  const keyFile = join(dir, `${name}.key`);
  const csrFile = join(dir, `${name}.csr`);
  run(["req", "-new", ...keyOptions, "-keyout", keyFile, "-out", csrFile, "-config", configFile]);
  run([
    "x509",
    "-req",
    "-in",
    csrFile,
    "-CA",
    signer.certFile,
    "-CAkey",
    signer.keyFile,
    "-set_serial",
    `0x${randomBytes(8).toString("hex")}`,
    "-days",
    "2",
    "-out",
    certFile,
    "-extfile",
    configFile,
    "-extensions",
    "ext",
  ]);
  return read(certFile, keyFile);
}

/** Generates the test PKI (a few hundred milliseconds). Call `remove()` when done. */
export function generateTestPki(): TestPki {
  const dir = mkdtempSync(join(tmpdir(), "mcp-pdp-pki-"));
  try {
    const ca = createCa(dir, "ca", "mcp-pdp test CA");
    const untrustedCa = createCa(dir, "untrusted-ca", "mcp-pdp untrusted test CA");
    const issue: TestPki["issue"] = (name, options) =>
      issueCertificate(dir, name, options.signer ?? ca, options);
    return {
      dir,
      ca,
      untrustedCa,
      server: issue("server", {
        commonName: "127.0.0.1",
        subjectAltNames: ["IP:127.0.0.1", "DNS:localhost"],
        usage: "server",
      }),
      clients: {
        gateway: issue("gateway", { commonName: certificateNames.gateway, usage: "client" }),
        files: issue("files", {
          commonName: certificateNames.filesCommonName,
          subjectAltNames: [`DNS:${certificateNames.filesDnsSan}`],
          usage: "client",
        }),
        stranger: issue("stranger", { commonName: certificateNames.stranger, usage: "client" }),
        untrusted: issue("untrusted", {
          commonName: certificateNames.gateway,
          usage: "client",
          signer: untrustedCa,
        }),
      },
      issue,
      remove: () => {
        rmSync(dir, { recursive: true, force: true });
      },
    };
  } catch (error) {
    rmSync(dir, { recursive: true, force: true });
    throw error;
  }
}

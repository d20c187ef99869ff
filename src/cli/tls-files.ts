import { readFileSync } from "node:fs";
import type { Config } from "../config/index.ts";
import { StartupError } from "../errors.ts";

/** The PEM files `tls` names, read: what the HTTPS listener is built from. */
export interface TlsFiles {
  cert: Buffer;
  key: Buffer;
  /** With it, the handshake requires a client certificate signed by this CA (mTLS). */
  clientCa: Buffer | undefined;
}

/**
 * Reads the certificate, key and client CA named in PDP_CONFIG `tls`, or
 * undefined without `tls`. Throws one StartupError naming every file that
 * cannot be read (serve and check both call it, so check refuses what serve
 * would).
 */
export function readTlsFiles(config: Config): TlsFiles | undefined {
  const tls = config.auth.tls;
  if (tls === undefined) return undefined;
  const problems: string[] = [];
  const read = (key: string, path: string): Buffer => {
    try {
      return readFileSync(path);
    } catch (error) {
      problems.push(
        `PDP_CONFIG tls.${key}: ${path}: ${error instanceof Error ? error.message : String(error)}`,
      );
      return Buffer.alloc(0);
    }
  };
  const files = {
    cert: read("cert_file", tls.certFile),
    key: read("key_file", tls.keyFile),
    clientCa: tls.clientCaFile === undefined ? undefined : read("client_ca_file", tls.clientCaFile),
  };
  if (problems.length > 0) throw new StartupError("config_invalid", problems);
  return files;
}

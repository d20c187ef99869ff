/**
 * The PDP configuration the PEP library tests run against: one issuer that
 * mints tokens for every registered MCP server, and the PEP as the one caller,
 * authenticated by its API key with the `authzen` permission.
 */
import { createHash } from "node:crypto";
import { writeFileSync } from "node:fs";
import { join } from "node:path";

export interface PdpConfigForPep {
  issuer: string;
  jwksUrl: string;
  /** Registered servers: name → resource URI (each an audience of the issuer). */
  servers: Record<string, string>;
  /** The PEP's API key; the file holds only its SHA-256. */
  apiKey: string;
}

/** Writes the configuration to `dir`/pdp-config.json and returns the path (for PDP_CONFIG). */
export function writePdpConfigForPep(dir: string, options: PdpConfigForPep): string {
  const file = join(dir, "pdp-config.json");
  const resources = Object.values(options.servers);
  writeFileSync(
    file,
    JSON.stringify({
      issuers: [
        {
          issuer: options.issuer,
          jwks_uri: options.jwksUrl,
          audiences: resources,
          algorithms: ["ES256"],
        },
      ],
      servers: Object.fromEntries(
        Object.entries(options.servers).map(([name, resource]) => [name, { resource }]),
      ),
      callers: [
        {
          name: "files-mcp",
          api_key_sha256: [createHash("sha256").update(options.apiKey).digest("hex")],
          permissions: ["authzen"],
        },
      ],
    }),
  );
  return file;
}

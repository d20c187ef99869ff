import { JwksServer } from "../../support/jwks-server.ts";
import { generateTestKey, mint, type TestKey } from "../../support/tokens.ts";
import { resourceOf } from "./sites.ts";

/** The token issuer the PDP trusts in the end-to-end tests. */
export const issuer = "https://issuer.e2e.test";
/** The README's MCP server's canonical resource URI: the audience its tokens must carry. */
export const filesResource = resourceOf("files");

/**
 * Who calls, as the tests use them. Every persona is otherwise "perfect"
 * (compliant device, MFA, fresh sign-in) unless its name says what is wrong,
 * so that each deny has exactly the reason the scenario is about.
 */
export interface Persona {
  sub: string;
  scope: string;
  acr: string;
  /** Seconds since the user signed in, relative to the moment the token is minted. */
  authAgeS: number;
  audience: string;
}

export const personas = {
  /** mcp:read only. */
  reader: {
    sub: "reader-1",
    scope: "mcp:read",
    acr: "mfa",
    authAgeS: 120,
    audience: filesResource,
  },
  /** mcp:read + mcp:write, no mcp:admin. */
  writer: {
    sub: "writer-1",
    scope: "mcp:read mcp:write",
    acr: "mfa",
    authAgeS: 120,
    audience: filesResource,
  },
  /** Everything, signed in two minutes ago with MFA. */
  admin: {
    sub: "admin-1",
    scope: "mcp:read mcp:write mcp:admin",
    acr: "mfa",
    authAgeS: 120,
    audience: filesResource,
  },
  /** The admin, but the sign-in is older than the destructive class's 900 s. */
  staleAdmin: {
    sub: "admin-1",
    scope: "mcp:read mcp:write mcp:admin",
    acr: "mfa",
    authAgeS: 1000,
    audience: filesResource,
  },
  /** The admin's token for a resource no server of this PDP has. */
  otherAudience: {
    sub: "admin-1",
    scope: "mcp:read mcp:write mcp:admin",
    acr: "mfa",
    authAgeS: 120,
    audience: "https://mcp.example.com/other",
  },
} satisfies Record<string, Persona>;

export type PersonaName = keyof typeof personas;

/** The JWKS endpoint and signing key of the test issuer. */
export class Identity {
  readonly jwks: JwksServer;
  private readonly key: TestKey;

  private constructor(jwks: JwksServer, key: TestKey) {
    this.jwks = jwks;
    this.key = key;
  }

  static async start(): Promise<Identity> {
    const key = await generateTestKey("ES256");
    const jwks = await JwksServer.start([key.publicJwk]);
    return new Identity(jwks, key);
  }

  /**
   * A fresh access token for `name`, minted relative to the real clock (the PDP
   * runs apart), for `audience` (default: the persona's, the files server).
   */
  token(name: PersonaName, audience?: string): Promise<string> {
    const persona: Persona = personas[name];
    const now = Math.floor(Date.now() / 1000);
    return mint(this.key, {
      iss: issuer,
      sub: persona.sub,
      aud: audience ?? persona.audience,
      iat: now,
      exp: now + 600,
      scope: persona.scope,
      acr: persona.acr,
      auth_time: now - persona.authAgeS,
      client_id: "e2e-client",
    });
  }

  close(): Promise<void> {
    return this.jwks.close();
  }
}

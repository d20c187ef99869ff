import type { AccessRequest, Entity } from "../decision/decision.ts";
import { ApiError, TokenError } from "../errors.ts";
import type { Caller } from "./caller.ts";
import type { TokenVerifier } from "./jwt-verifier.ts";
import type { ServerSettings } from "../config/index.ts";
import type { ServerRegistry } from "./servers.ts";
import { subjectFromToken } from "./subject-builder.ts";

/** Subject properties only the PDP may set; a caller's values are dropped. */
const pdpOwnedProperties = [
  "authenticated",
  "authentication",
  "token_error",
  "auth_age_s",
  "token",
];

/** Told about every token verification: "valid", or the failure (never the token itself). */
export type TokenOutcomeListener = (result: "valid" | { code: string; message: string }) => void;

/**
 * Decides who the subject of a request is, before any policy sees it:
 *
 * - `subject.properties.token` null: the enforcement point says the user sent
 *   no token; the subject is anonymous (`token_missing`), whoever the caller.
 * - `subject.properties.token` present: the token is verified for the server
 *   the resource belongs to (`resource.properties.server`, see
 *   resource-identity.ts) and the subject is rebuilt from its claims alone; on
 *   failure, or when that server is not registered (`server_unknown`), the
 *   subject is anonymous with `authenticated: false` and `token_error {code,
 *   message}`.
 * - no token, and the caller may assert subjects (trusted-gateway mode): the
 *   subject is taken as sent, marked `authenticated: true, authentication:
 *   "asserted"`.
 * - no token, and the caller may not: sending subject properties is refused
 *   (403 `subject_assertion_forbidden`), since silently dropping them would
 *   hide a misconfigured PEP; a bare subject is anonymous (`token_missing`).
 */
export class SubjectResolver {
  private readonly verifier: TokenVerifier | undefined;
  private readonly servers: ServerRegistry;
  private readonly onToken: TokenOutcomeListener;

  constructor(
    verifier: TokenVerifier | undefined,
    servers: ServerRegistry,
    onToken: TokenOutcomeListener = () => undefined,
  ) {
    this.verifier = verifier;
    this.servers = servers;
    this.onToken = onToken;
  }

  /**
   * `verified` memoizes verifications within one request, so a batch whose
   * items share a token verifies it once.
   */
  async resolve(
    request: AccessRequest,
    caller: Caller,
    nowMs: number,
    verified: Map<string, Promise<Entity>> = new Map(),
  ): Promise<AccessRequest> {
    const properties = request.subject.properties ?? {};
    const token = properties.token;
    // The AuthZEN MCP binding names an mcp_server by its resource URI: the token binds to it too.
    request = this.servers.withBindingServer(request);
    if (token === null) {
      return {
        ...request,
        subject: anonymous(
          request.subject.type,
          new TokenError("token_missing", "the enforcement point reports no token"),
        ),
      };
    }
    if (typeof token === "string") {
      return {
        ...request,
        subject: await this.subjectForToken(
          token,
          request.subject.type,
          nowMs,
          this.servers.serverFor(request.resource),
          verified,
        ),
      };
    }
    if (caller.assertSubject) {
      const asserted: Record<string, unknown> = {};
      for (const [key, value] of Object.entries(properties)) {
        if (!pdpOwnedProperties.includes(key)) asserted[key] = value;
      }
      asserted.authenticated = true;
      asserted.authentication = "asserted";
      return { ...request, subject: { ...request.subject, properties: asserted } };
    }
    if (Object.keys(properties).length > 0) {
      throw new ApiError(
        "subject_assertion_forbidden",
        `caller ${caller.name} may not assert subject properties; send the user's token in subject.properties.token`,
        "/subject/properties",
      );
    }
    return {
      ...request,
      subject: anonymous(
        request.subject.type,
        new TokenError("token_missing", "no token was sent"),
      ),
    };
  }

  /**
   * The subject of a bearer token used on `server`, or an anonymous subject
   * carrying why there is none (`token` may already be a TokenError, e.g. from
   * a malformed Authorization header). The token must be for that server's
   * resource; without a registered server the answer is `server_unknown`,
   * whatever the token.
   */
  subjectForToken(
    token: string | TokenError,
    type: string,
    nowMs: number,
    server: ServerSettings | undefined,
    verified?: Map<string, Promise<Entity>>,
  ): Promise<Entity> {
    // A request for no registered server is refused for that, whether or not a token came.
    if (server === undefined) {
      return Promise.resolve(
        this.fail(
          type,
          new TokenError(
            "server_unknown",
            "the request is for no registered server (servers in PDP_CONFIG), so no token can be accepted",
          ),
        ),
      );
    }
    if (token instanceof TokenError) return Promise.resolve(this.fail(type, token));
    // A token verified for one server proves nothing for another: the memo is per server (and
    // per subject type, which an anonymous subject keeps).
    const key = `${server.name} ${type} ${token}`;
    let subject = verified?.get(key);
    if (subject === undefined) {
      subject = this.verify(token, type, nowMs, server.resource);
      verified?.set(key, subject);
    }
    return subject;
  }

  private async verify(
    token: string,
    type: string,
    nowMs: number,
    audience: string,
  ): Promise<Entity> {
    if (this.verifier === undefined) {
      return this.fail(
        type,
        new TokenError("token_wrong_issuer", "no trusted issuers are configured"),
      );
    }
    try {
      const subject = subjectFromToken(await this.verifier.verify(token, nowMs, audience));
      this.onToken("valid");
      return subject;
    } catch (error) {
      if (error instanceof TokenError) return this.fail(type, error);
      throw error;
    }
  }

  private fail(type: string, error: TokenError): Entity {
    this.onToken({ code: error.code, message: error.message });
    return anonymous(type, error);
  }
}

function anonymous(type: string, error: TokenError): Entity {
  return {
    type,
    id: "",
    properties: { authenticated: false, token_error: { code: error.code, message: error.message } },
  };
}

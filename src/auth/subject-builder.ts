import type { Entity } from "../decision/decision.ts";
import type { VerifiedToken } from "./jwt-verifier.ts";

/**
 * The AuthZEN subject of a verified token: `id` = `sub`; `type` from the
 * issuer's rule (a claim naming it, else `clientCredentials` when `sub` is the
 * client itself as in a client-credentials grant, else `default`); properties
 * from the verified claims only. The token itself is never included.
 */
export function subjectFromToken(verified: VerifiedToken): Entity {
  const { claims, issuer } = verified;
  const clientId = stringClaim(claims.client_id) ?? stringClaim(claims.azp);
  const typeClaim =
    issuer.subjectType.claim === undefined
      ? undefined
      : stringClaim(claims[issuer.subjectType.claim]);
  const type =
    typeClaim ??
    (clientId !== undefined && clientId === claims.sub
      ? issuer.subjectType.clientCredentials
      : issuer.subjectType.default);

  const properties: Record<string, unknown> = {
    authenticated: true,
    authentication: "token",
    issuer: claims.iss,
    scopes: scopesOf(claims),
    claims,
  };
  if (clientId !== undefined) properties.client_id = clientId;
  if (typeof claims.acr === "string") properties.acr = claims.acr;
  if (Array.isArray(claims.amr)) properties.amr = claims.amr.filter((m) => typeof m === "string");
  if (typeof claims.auth_time === "number") properties.auth_time = claims.auth_time;
  return { type, id: claims.sub, properties };
}

/** OAuth's space-separated `scope`, or an `scp` array (as some issuers send). */
function scopesOf(claims: Record<string, unknown>): string[] {
  if (typeof claims.scope === "string") return claims.scope.split(" ").filter((s) => s.length > 0);
  if (Array.isArray(claims.scp))
    return claims.scp.filter((s): s is string => typeof s === "string");
  if (typeof claims.scp === "string") return claims.scp.split(" ").filter((s) => s.length > 0);
  return [];
}

function stringClaim(value: unknown): string | undefined {
  return typeof value === "string" && value !== "" ? value : undefined;
}

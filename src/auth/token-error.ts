/**
 * Why a bearer token was not accepted. Each code reaches the policy
 * (subject.properties.token_error) and the PEP (the decision's reasons).
 */
export const tokenErrorCodes = [
  "token_missing",
  "token_malformed",
  "token_too_large",
  "token_encrypted",
  "token_alg_not_allowed",
  "token_unknown_key",
  "token_bad_signature",
  "token_crit_unsupported",
  "token_wrong_type",
  "token_wrong_issuer",
  "token_wrong_audience",
  "token_expired",
  "token_not_yet_valid",
  "token_issued_in_future",
  "token_claim_missing",
  "token_claim_invalid",
  "jwks_unavailable",
  // The request is for no registered server, so no audience could bind the token (servers.ts).
  "server_unknown",
] as const;

export type TokenErrorCode = (typeof tokenErrorCodes)[number];

/** A token that failed verification. The message is for operators and never contains the token. */
export class TokenError extends Error {
  readonly code: TokenErrorCode;

  constructor(code: TokenErrorCode, message: string) {
    super(message);
    this.name = "TokenError";
    this.code = code;
  }
}

import { PdpError, type TokenErrorCode } from "../errors.js";

// The codes and their statuses live in the one registry (errors.ts); re-exported for auth/.
export { tokenErrorCodes, type TokenErrorCode } from "../errors.js";

/** A token that failed verification. The message is for operators and never contains the token. */
export class TokenError extends PdpError<TokenErrorCode> {}

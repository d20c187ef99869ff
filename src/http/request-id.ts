import { randomUUID } from "node:crypto";

/** A request id a client may choose: printable ASCII without spaces, bounded. */
const acceptable = /^[\x21-\x7e]{1,128}$/;

export function acceptableRequestId(value: string): boolean {
  return acceptable.test(value);
}

/** The X-Request-ID a response echoes: the client's when well-formed, else a fresh one. */
export function requestIdOf(incoming: string | string[] | undefined): string {
  return typeof incoming === "string" && acceptableRequestId(incoming) ? incoming : randomUUID();
}

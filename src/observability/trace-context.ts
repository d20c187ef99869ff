/** W3C Trace Context: version-traceid-parentid-flags. */
const traceparent = /^[0-9a-f]{2}-([0-9a-f]{32})-[0-9a-f]{16}-[0-9a-f]{2}$/;

/** The trace id of a `traceparent` header, or undefined when absent or malformed (or all zeros). */
export function traceIdOf(header: string | undefined): string | undefined {
  const match = header === undefined ? null : traceparent.exec(header.trim().toLowerCase());
  const id = match?.[1];
  return id === undefined || /^0+$/.test(id) ? undefined : id;
}

import type { Socket } from "node:net";
import { TLSSocket } from "node:tls";

/**
 * The names of a verified client certificate (subject CN and DNS SANs), or
 * undefined on plain HTTP or without a CA-verified certificate.
 */
export function tlsClientOf(socket: Socket): { names: string[] } | undefined {
  if (!(socket instanceof TLSSocket) || !socket.authorized) return undefined;
  const certificate = socket.getPeerCertificate();
  const names: string[] = [];
  const commonName = certificate.subject.CN;
  if (typeof commonName === "string") names.push(commonName);
  for (const entry of (certificate.subjectaltname ?? "").split(", ")) {
    if (entry.startsWith("DNS:")) names.push(entry.slice(4));
  }
  return { names };
}

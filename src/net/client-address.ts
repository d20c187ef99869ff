import { BlockList, isIP } from "node:net";

/** A parsed CIDR, or undefined when the text is not one. */
export function parseCidr(
  cidr: string,
): { address: string; prefix: number; family: "ipv4" | "ipv6" } | undefined {
  const slash = cidr.indexOf("/");
  if (slash === -1) return undefined;
  const address = cidr.slice(0, slash);
  const prefixText = cidr.slice(slash + 1);
  const version = isIP(address);
  if (version === 0 || !/^\d{1,3}$/.test(prefixText)) return undefined;
  const prefix = Number(prefixText);
  if (prefix > (version === 4 ? 32 : 128)) return undefined;
  return { address, prefix, family: version === 4 ? "ipv4" : "ipv6" };
}

/** An IPv4-mapped address as WHATWG URL serializes it: `[::ffff:a01:203]`. */
const canonicalMapped = /^\[::ffff:([0-9a-f]{1,4}):([0-9a-f]{1,4})\]$/;

/**
 * An IPv4-mapped IPv6 address (`::ffff:10.1.2.3`, how node reports IPv4 peers
 * on a dual-stack socket, or any other spelling: `::ffff:a01:203`,
 * `0:0:0:0:0:ffff:10.1.2.3`, upper case) → its IPv4 address `10.1.2.3`, so
 * that it matches IPv4 CIDRs in trusted_proxies and in policies. Anything
 * else is returned unchanged. Used for every client address the PDP reads or
 * hands to the policy (forward-auth's peer and X-Forwarded-For, AuthZEN's
 * `context.ip`).
 */
export function normalizeAddress(address: string): string {
  // Only IPv6 text that spells ffff can be IPv4-mapped: skips the URL parser for the rest.
  if (!/ffff/i.test(address) || isIP(address) !== 6) return address;
  let host: string;
  try {
    host = new URL(`http://[${address}]/`).hostname;
  } catch {
    return address; // a zone id (fe80::1%eth0): not a mapped address
  }
  const mapped = canonicalMapped.exec(host);
  if (mapped === null) return address;
  const high = Number.parseInt(mapped[1] ?? "", 16);
  const low = Number.parseInt(mapped[2] ?? "", 16);
  return `${high >> 8}.${high & 0xff}.${low >> 8}.${low & 0xff}`;
}

/**
 * The proxies whose X-Forwarded-For (and forwarded context headers) the PDP
 * believes. The client address is the peer itself unless the peer is trusted;
 * then it is the right-most X-Forwarded-For entry that is not a trusted proxy,
 * since every hop appends and only the trusted hops' appends can be believed.
 */
export class TrustedProxies {
  private readonly list = new BlockList();
  private readonly empty: boolean;

  constructor(cidrs: readonly string[]) {
    for (const cidr of cidrs) {
      const parsed = parseCidr(cidr);
      if (parsed !== undefined) this.list.addSubnet(parsed.address, parsed.prefix, parsed.family);
    }
    this.empty = cidrs.length === 0;
  }

  trusts(address: string | undefined): boolean {
    if (this.empty || address === undefined) return false;
    const normalized = normalizeAddress(address);
    const version = isIP(normalized);
    return version !== 0 && this.list.check(normalized, version === 4 ? "ipv4" : "ipv6");
  }

  clientAddress(peer: string | undefined, forwardedFor: string | undefined): string | undefined {
    const direct = peer === undefined ? undefined : normalizeAddress(peer);
    if (!this.trusts(direct) || forwardedFor === undefined) return direct;
    const hops = forwardedFor
      .split(",")
      .map((hop) => normalizeAddress(hop.trim()))
      .filter((hop) => hop !== "");
    for (let index = hops.length - 1; index >= 0; index--) {
      const hop = hops[index] as string;
      if (isIP(hop) === 0) return direct;
      if (!this.trusts(hop)) return hop;
    }
    return hops[0] ?? direct;
  }
}

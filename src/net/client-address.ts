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

/** `::ffff:10.1.2.3` (how node reports IPv4 peers on a dual-stack socket) → `10.1.2.3`. */
function normalize(address: string): string {
  const mapped = /^::ffff:(\d{1,3}(?:\.\d{1,3}){3})$/i.exec(address);
  return mapped?.[1] ?? address;
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
    const normalized = normalize(address);
    const version = isIP(normalized);
    return version !== 0 && this.list.check(normalized, version === 4 ? "ipv4" : "ipv6");
  }

  clientAddress(peer: string | undefined, forwardedFor: string | undefined): string | undefined {
    const direct = peer === undefined ? undefined : normalize(peer);
    if (!this.trusts(direct) || forwardedFor === undefined) return direct;
    const hops = forwardedFor
      .split(",")
      .map((hop) => normalize(hop.trim()))
      .filter((hop) => hop !== "");
    for (let index = hops.length - 1; index >= 0; index--) {
      const hop = hops[index] as string;
      if (isIP(hop) === 0) return direct;
      if (!this.trusts(hop)) return hop;
    }
    return hops[0] ?? direct;
  }
}

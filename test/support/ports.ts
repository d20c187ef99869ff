import { once } from "node:events";
import { readFileSync } from "node:fs";
import { createServer, type AddressInfo } from "node:net";

/**
 * The kernel's ephemeral range: the local ports it gives outgoing connections
 * and `listen(0)`. A port taken from it and handed to another process can be
 * taken by any connection in the meantime (a Traefik entry point once failed
 * with "address already in use" that way), so free ports come from below it.
 */
function ephemeralRange(): [number, number] {
  try {
    const [low, high] = readFileSync("/proc/sys/net/ipv4/ip_local_port_range", "utf8")
      .trim()
      .split(/\s+/)
      .map(Number);
    if (low !== undefined && high !== undefined && low > 0 && high >= low) return [low, high];
  } catch {
    // Not Linux: the IANA dynamic range.
  }
  return [49152, 65535];
}

const lowestPort = 20000;

/** Listens on 127.0.0.1:`port` and closes again; the port, or undefined when it is taken. */
async function probe(port: number): Promise<number | undefined> {
  const server = createServer();
  server.listen(port, "127.0.0.1");
  try {
    await Promise.race([
      once(server, "listening"),
      once(server, "error").then(([error]) => Promise.reject(error as Error)),
    ]);
  } catch {
    return undefined;
  }
  const { port: bound } = server.address() as AddressInfo;
  server.close();
  await once(server, "close");
  return bound;
}

/**
 * A TCP port on 127.0.0.1 that was free a moment ago (for processes that must be told a port):
 * a random one below the ephemeral range, or (should 50 tries all be taken) one the kernel picks.
 */
export async function freePort(): Promise<number> {
  const [ephemeralLow] = ephemeralRange();
  const span = ephemeralLow - lowestPort;
  for (let attempt = 0; span > 0 && attempt < 50; attempt += 1) {
    const port = await probe(lowestPort + Math.floor(Math.random() * span));
    if (port !== undefined) return port;
  }
  const port = await probe(0);
  if (port === undefined) throw new Error("no free TCP port on 127.0.0.1");
  return port;
}

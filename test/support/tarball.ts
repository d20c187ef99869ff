import { gzipSync } from "node:zlib";

/**
 * A ustar writer small enough to read, so each hostile archive says exactly
 * which header field is hostile. Test-only: the PDP never writes tarballs.
 */
export interface TarEntryOptions {
  /** The type flag: "0" file, "1" hard link, "2" symlink, "3" char device, "5" directory, "6" fifo, "x" pax. */
  type?: string;
  linkname?: string;
  /** The size the header claims; defaults to the body's. */
  size?: number;
  badChecksum?: boolean;
}

export function tarHeader(name: string, bodyLength: number, options: TarEntryOptions = {}): Buffer {
  const block = Buffer.alloc(512);
  block.write(name, 0, 100, "utf8");
  block.write("0000644\0", 100);
  block.write("0000000\0", 108);
  block.write("0000000\0", 116);
  block.write(`${(options.size ?? bodyLength).toString(8).padStart(11, "0")}\0`, 124);
  block.write("00000000000\0", 136);
  block.write(options.type ?? "0", 156);
  block.write(options.linkname ?? "", 157, 100, "utf8");
  block.write("ustar\0", 257);
  block.write("00", 263);
  block.fill(" ", 148, 156);
  let sum = 0;
  for (const byte of block) sum += byte;
  if (options.badChecksum === true) sum += 1;
  block.write(`${sum.toString(8).padStart(6, "0")}\0 `, 148);
  return block;
}

export function tarEntry(
  name: string,
  body: string | Buffer = "",
  options: TarEntryOptions = {},
): Buffer {
  const content = typeof body === "string" ? Buffer.from(body) : body;
  const padding = (512 - (content.length % 512)) % 512;
  return Buffer.concat([tarHeader(name, content.length, options), content, Buffer.alloc(padding)]);
}

/** A pax extended header giving the next entry this path. */
export function paxPath(path: string): Buffer {
  const record = (length: number): string => `${length} path=${path}\n`;
  let length = record(0).length;
  while (record(length).length !== length) length = record(length).length;
  return tarEntry("PaxHeader", record(length), { type: "x" });
}

/** Entries followed by the two zero blocks that end an archive. */
export function tarArchive(...entries: Buffer[]): Buffer {
  return Buffer.concat([...entries, Buffer.alloc(1024)]);
}

/** A bundle's files (keyed `/path`) packed as a `.tar.gz` the way `opa build` writes it. */
export function packBundle(files: ReadonlyMap<string, Buffer>): Buffer {
  return gzipSync(tarArchive(...[...files].map(([path, content]) => tarEntry(path, content))));
}

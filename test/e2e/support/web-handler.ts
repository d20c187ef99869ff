/**
 * The v2 MCP SDK (`@modelcontextprotocol/server`) serves web-standard
 * Requests; the test servers run on express. These two functions carry one
 * exchange across, as `toNodeHandler` of `@modelcontextprotocol/node` does:
 * the request as express received and parsed it (so a PEP in front judged
 * exactly what the SDK gets), and the Response written back through `res`'s
 * writeHead, write and end (what the PEP's tools/list filter intercepts).
 */
import type { IncomingMessage, ServerResponse } from "node:http";

/** The node request as a web Request; `body` is what express.json() parsed (re-serialized). */
export function toWebRequest(req: IncomingMessage, body: unknown, signal?: AbortSignal): Request {
  const headers = new Headers();
  for (const [name, value] of Object.entries(req.headers)) {
    if (value !== undefined) headers.set(name, Array.isArray(value) ? value.join(", ") : value);
  }
  const url = new URL(req.url ?? "/", `http://${req.headers.host ?? "localhost"}`);
  return new Request(url, {
    method: req.method ?? "GET",
    headers,
    ...(signal === undefined ? {} : { signal }),
    ...(req.method === "POST" ? { body: JSON.stringify(body) } : {}),
  });
}

/** Writes `response` to `res` as it streams (SSE events go out one by one). */
export async function sendWebResponse(res: ServerResponse, response: Response): Promise<void> {
  res.writeHead(response.status, Object.fromEntries(response.headers));
  if (response.body !== null) {
    for await (const chunk of response.body) res.write(chunk);
  }
  res.end();
}

/** Serves one express exchange with a fetch-shaped handler (a client that goes away aborts it). */
export async function serveWithFetchHandler(
  fetchHandler: (request: Request, options: { parsedBody: unknown }) => Promise<Response>,
  req: IncomingMessage & { body?: unknown },
  res: ServerResponse,
): Promise<void> {
  const aborted = new AbortController();
  res.on("close", () => {
    aborted.abort();
  });
  const request = toWebRequest(req, req.body, aborted.signal);
  await sendWebResponse(res, await fetchHandler(request, { parsedBody: req.body }));
}

/**
 * The transport floor of the benchmark: a bare node:http server that reads the
 * JSON body, JSON.parse's it and answers a fixed JSON document. What the PDP
 * costs beyond this is its own work (routing, validation, policy, metrics),
 * measured on the same Node and the same core. Listens on HOST:PORT
 * (127.0.0.1 and a required PORT); SIGTERM closes it.
 */
import { createServer } from "node:http";

const port = Number(process.env.PORT);
if (!Number.isInteger(port) || port <= 0) {
  process.stderr.write("floor-server: set PORT to the port to listen on\n");
  process.exit(2);
}
const host = process.env.HOST ?? "127.0.0.1";
// The same shape as the PDP's typical answer, built once: the floor does no work per reply.
const answer = Buffer.from('{"decision":true,"context":{"reasons":[]}}');

const server = createServer((request, response) => {
  const chunks: Buffer[] = [];
  request.on("data", (chunk: Buffer) => chunks.push(chunk));
  request.on("end", () => {
    if (chunks.length > 0) {
      try {
        JSON.parse(Buffer.concat(chunks).toString("utf8"));
      } catch {
        response.writeHead(400, { "content-type": "application/json" }).end('{"error":"json"}');
        return;
      }
    }
    response
      .writeHead(200, { "content-type": "application/json", "content-length": answer.length })
      .end(answer);
  });
});
server.listen(port, host);
process.once("SIGTERM", () => {
  server.close();
  server.closeAllConnections();
});

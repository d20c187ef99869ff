/**
 * A forward-auth request for `files` as NGINX `auth_request` relays it: a GET
 * subrequest carrying the client's headers and no body, over a fresh
 * connection (node's http keeps repeated header lines apart, which fetch
 * would fold into one value).
 */
import { request as httpRequest } from "node:http";

/**
 * The PDP's status for a subrequest with `token` and the client's `headers`
 * (a list is sent as repeated lines; a header given here replaces the
 * subrequest's default of the same name).
 */
export function subrequestStatus(
  pdpUrl: string,
  token: string,
  headers: Record<string, string | string[]>,
): Promise<number> {
  const { port } = new URL(pdpUrl);
  return new Promise((resolve, reject) => {
    const outgoing = httpRequest(
      {
        host: "127.0.0.1",
        port,
        method: "GET",
        path: "/forward-auth/files",
        agent: false,
        headers: {
          authorization: `Bearer ${token}`,
          "content-type": "application/json",
          accept: "application/json, text/event-stream",
          host: "pdp.internal",
          "x-original-uri": "/mcp",
          "x-original-method": "POST",
          "x-forwarded-for": "10.1.2.3",
          "x-device-trust": "compliant",
          ...headers,
        },
      },
      (response) => {
        response.resume();
        response.on("error", reject);
        response.on("end", () => {
          resolve(response.statusCode ?? 0);
        });
      },
    );
    outgoing.on("error", reject);
    outgoing.end();
  });
}

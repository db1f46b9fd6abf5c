/**
 * GET /console and GET /console/{file+}: the web console's static files. Public: the page
 * asks for an API key itself and sends it only to the API on the same origin. Deployed, the
 * files sit next to this function's bundle (wiring: `assetsFolder`); locally they are read
 * from console/ in the repo.
 */
import { existsSync } from "node:fs";
import { readFile } from "node:fs/promises";
import { extname, resolve, sep } from "node:path";
import { fileURLToPath } from "node:url";
import type { APIGatewayProxyEventV2, APIGatewayProxyStructuredResultV2 } from "aws-lambda";
import { withLambdaContext } from "../../shared/logger.ts";

const root = [new URL("./console/", import.meta.url), new URL("../../console/", import.meta.url)]
  .map((url) => fileURLToPath(url))
  .find((folder) => existsSync(folder));

const textTypes: Record<string, string> = {
  ".html": "text/html; charset=utf-8",
  ".js": "text/javascript; charset=utf-8",
  ".css": "text/css; charset=utf-8",
  ".svg": "image/svg+xml",
};
const binaryTypes: Record<string, string> = { ".png": "image/png", ".ico": "image/x-icon" };

const notFound = (): APIGatewayProxyStructuredResultV2 => ({
  statusCode: 404,
  headers: { "content-type": "text/plain; charset=utf-8" },
  body: "Not found",
});

export const handler = withLambdaContext<APIGatewayProxyEventV2, APIGatewayProxyStructuredResultV2>(async (event) => {
  const requested = event.pathParameters?.file;
  // /console → /console/index.html, so the page's relative links resolve under any stage
  // prefix (a bare /console/ is not routed reliably: the greedy parameter needs a name).
  if (!requested) return { statusCode: 308, headers: { location: "console/index.html" } };
  const file = resolve(root ?? "/nonexistent", requested);
  const type = textTypes[extname(file)] ?? binaryTypes[extname(file)];
  // The greedy parameter arrives decoded, so `..` segments are caught here, after resolving.
  if (!root || !type || !file.startsWith(root.endsWith(sep) ? root : `${root}${sep}`)) return notFound();
  let content: Buffer;
  try {
    content = await readFile(file);
  } catch {
    return notFound();
  }
  const binary = extname(file) in binaryTypes;
  return {
    statusCode: 200,
    headers: { "content-type": type, "cache-control": "no-cache" },
    body: content.toString(binary ? "base64" : "utf8"),
    isBase64Encoded: binary,
  };
});

/**
 * The web console's static files (console/ at the repo root) for the local gateway:
 * GET /console, /console/ and /console/<file>. Same origin as the API, so the page calls
 * the API without CORS. Deployed, the same folder can be served as static assets.
 */
import { readFile } from "node:fs/promises";
import { extname, resolve, sep } from "node:path";
import { fileURLToPath } from "node:url";
import type { GatewayResponse } from "./http-gateway.ts";

const root = fileURLToPath(new URL("../../console/", import.meta.url));
const types: Record<string, string> = {
  ".html": "text/html; charset=utf-8",
  ".js": "text/javascript; charset=utf-8",
  ".css": "text/css; charset=utf-8",
  ".svg": "image/svg+xml",
  ".png": "image/png",
  ".ico": "image/x-icon",
};

export async function serveConsole(method: string, rawPath: string): Promise<GatewayResponse | undefined> {
  if (method !== "GET" || (rawPath !== "/console" && !rawPath.startsWith("/console/"))) return undefined;
  let relative: string;
  try {
    relative = decodeURIComponent(rawPath.slice("/console".length).replace(/^\/+/, "")) || "index.html";
  } catch {
    return undefined;
  }
  const file = resolve(root, relative);
  const type = types[extname(file)];
  if (!file.startsWith(root.endsWith(sep) ? root : `${root}${sep}`) || !type) return notFound();
  try {
    const body = await readFile(file);
    return { statusCode: 200, headers: { "content-type": type, "cache-control": "no-cache" }, cookies: [], body };
  } catch {
    return notFound();
  }
}

const notFound = (): GatewayResponse => ({
  statusCode: 404,
  headers: { "content-type": "text/plain" },
  cookies: [],
  body: Buffer.from("Not found"),
});

/**
 * The web console as deployed: the console routes' function is bundled by esbuild (offline,
 * as `npm run synth` does) with console/ copied next to the bundle, and that bundle — not
 * the repo's source — serves the page and its assets.
 */
import { existsSync, mkdtempSync, readdirSync, readFileSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { pathToFileURL } from "node:url";
import { App, RemovalPolicy, Stack } from "aws-cdk-lib";
import { RetentionDays } from "aws-cdk-lib/aws-logs";
import type { APIGatewayProxyEventV2, APIGatewayProxyStructuredResultV2 } from "aws-lambda";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { ServiceFunction } from "../../infra/stack/service-function.ts";
import { wiring } from "../../shared/wiring.ts";

const projectRoot = new URL("../..", import.meta.url).pathname.replace(/\/$/, "");
type Handler = (event: APIGatewayProxyEventV2) => Promise<APIGatewayProxyStructuredResultV2>;

const request = (rawPath: string, file?: string) =>
  ({ rawPath, ...(file === undefined ? {} : { pathParameters: { file } }) }) as unknown as APIGatewayProxyEventV2;

describe("the web console's deployed bundle", () => {
  let outdir: string;
  let bundle: string;
  let handler: Handler;

  beforeAll(async () => {
    outdir = mkdtempSync(join(tmpdir(), "mcj-console-bundle-"));
    const entry = wiring.routes.find((route) => route.id === "api-get-console-file");
    if (!entry) throw new Error("no console route in the wiring");
    const app = new App({ outdir });
    new ServiceFunction(new Stack(app, "ConsoleBundle"), entry.id, {
      entry,
      environment: {},
      projectRoot,
      logRetention: RetentionDays.ONE_DAY,
      logRemovalPolicy: RemovalPolicy.DESTROY,
    });
    app.synth();
    const assets = readdirSync(outdir).filter((name) => name.startsWith("asset."));
    const found = assets.map((name) => join(outdir, name)).find((dir) => existsSync(join(dir, "index.mjs")));
    if (!found) throw new Error(`no bundled function among ${assets.join(", ")}`);
    bundle = found;
    // The bundle is moved away from the repo so it cannot fall back to the repo's console/.
    handler = ((await import(pathToFileURL(join(bundle, "index.mjs")).href)) as { handler: Handler }).handler;
  }, 120_000);
  afterAll(() => {
    if (outdir) rmSync(outdir, { recursive: true, force: true });
  });

  it("ships a source map that names the sources without embedding them (a smaller bundle, a faster cold start)", () => {
    const map = JSON.parse(readFileSync(join(bundle, "index.mjs.map"), "utf8")) as {
      sources: string[];
      sourcesContent?: unknown[];
    };
    expect(map.sources.some((source) => source.endsWith("functions/api/get-console.ts"))).toBe(true);
    expect(map.sourcesContent ?? []).toHaveLength(0);
  });

  it("copies every console file next to the bundle", () => {
    expect(readdirSync(join(bundle, "console")).sort()).toEqual(readdirSync(join(projectRoot, "console")).sort());
  });

  it("serves the page, its assets and nothing outside the console folder", async () => {
    const redirect = await handler(request("/prod/console"));
    expect(redirect.statusCode).toBe(308);
    expect(redirect.headers?.location).toBe("console/index.html");

    const page = await handler(request("/prod/console/index.html", "index.html"));
    expect(page.statusCode).toBe(200);
    expect(page.headers?.["content-type"]).toContain("text/html");
    expect(page.body).toContain("<title>Metric collection console</title>");

    const script = await handler(request("/prod/console/app.js", "app.js"));
    expect(script.headers?.["content-type"]).toContain("javascript");
    expect(script.body).toContain("API_ROOT");

    expect((await handler(request("/prod/console/../index.mjs", "../index.mjs"))).statusCode).toBe(404);
    expect((await handler(request("/prod/console/missing.css", "missing.css"))).statusCode).toBe(404);
    expect((await handler(request("/prod/console/index.mjs.map", "index.mjs.map"))).statusCode).toBe(404);
  });
});

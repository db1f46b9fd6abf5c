/**
 * Traces in Lambda: an invocation's segment names its organization (annotation), model and
 * HTTP calls appear as subsegments, and no response body is captured. The X-Ray SDK runs as
 * in Lambda (its environment variables) and sends to a UDP socket on 127.0.0.1 standing in
 * for the X-Ray daemon.
 */
import { createSocket, type Socket } from "node:dgram";
import { createServer, type Server } from "node:http";
import type { AddressInfo } from "node:net";
import { afterAll, beforeAll, describe, expect, it } from "vitest";

type Document = Record<string, any>;
const documents: Document[] = [];
let daemon: Socket;
let upstream: Server;
let upstreamUrl: string;

beforeAll(async () => {
  daemon = createSocket("udp4");
  daemon.on("message", (packet) => {
    // Each packet: a header line, then one segment or subsegment document.
    const [, body] = packet.toString("utf8").split("\n");
    if (body) documents.push(JSON.parse(body) as Document);
  });
  await new Promise<void>((resolve) => daemon.bind(0, "127.0.0.1", resolve));
  upstream = createServer((_req, res) =>
    res.writeHead(200, { "content-type": "application/json" }).end('{"secret":"x"}'),
  );
  await new Promise<void>((resolve) => upstream.listen(0, "127.0.0.1", resolve));
  upstreamUrl = `http://127.0.0.1:${(upstream.address() as AddressInfo).port}/model`;
  Object.assign(process.env, {
    AWS_EXECUTION_ENV: "AWS_Lambda_nodejs24.x",
    LAMBDA_TASK_ROOT: "/var/task",
    _HANDLER: "index.handler",
    _X_AMZN_TRACE_ID: "Root=1-6750a1b2-0123456789abcdef01234567;Parent=53995c3f42cd8ad8;Sampled=1",
    AWS_XRAY_DAEMON_ADDRESS: `127.0.0.1:${daemon.address().port}`,
    AWS_XRAY_CONTEXT_MISSING: "IGNORE_ERROR",
  });
});
afterAll(() => {
  daemon?.close();
  upstream?.close();
});

describe("traces", () => {
  it("annotate the organization, show outgoing calls as subsegments, and never hold a response", async () => {
    // Imported here (none above imports them): the tracer decides whether it runs in Lambda
    // when first loaded.
    const { apiRoute } = await import("../../shared/http/api-handler.ts");
    const { authorizedRequest, lambdaContext } = await import("../support/lambda.ts");
    const route = apiRoute({ roles: ["member"] }, async () => {
      await (await fetch(upstreamUrl)).text();
      return { ok: "tenant data" };
    });
    const response = await route(authorizedRequest("org-traced", "apigw-1"), lambdaContext("api-list-calls"));
    expect(response).toMatchObject({ statusCode: 200 });
    const handlerSegment = await waitForDocument((d) => d.name === "## index.handler");
    expect(handlerSegment.annotations).toMatchObject({ ColdStart: expect.any(Boolean), orgId: "org-traced" });
    const all = JSON.stringify(documents);
    expect(all).toContain("127.0.0.1");
    expect(all).not.toContain("tenant data");
    expect(all).not.toContain('"secret"');
  });
});

async function waitForDocument(match: (document: Document) => boolean): Promise<Document> {
  const nested = (document: Document): Document[] => [
    document,
    ...((document.subsegments as Document[] | undefined) ?? []).flatMap(nested),
  ];
  for (let attempt = 0; attempt < 100; attempt++) {
    const found = documents.flatMap(nested).find(match);
    if (found) return found;
    await new Promise((resolve) => setTimeout(resolve, 20));
  }
  throw new Error(`no such trace document; got ${JSON.stringify(documents).slice(0, 500)}`);
}

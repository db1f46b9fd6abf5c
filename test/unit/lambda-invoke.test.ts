import { createServer, type IncomingHttpHeaders } from "node:http";
import type { AddressInfo } from "node:net";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { lambdaInvoker } from "../../infra/scripts/lambda-invoke.ts";

/** A stand-in for the Lambda endpoint: records each request, answers as the test says. */
const requests: { method?: string; url?: string; headers: IncomingHttpHeaders; body: string }[] = [];
let answer: { status: number; headers?: Record<string, string>; body: string } = { status: 200, body: "{}" };
const server = createServer((request, response) => {
  let body = "";
  request.on("data", (chunk) => {
    body += chunk;
  });
  request.on("end", () => {
    requests.push({ method: request.method, url: request.url, headers: request.headers, body });
    response.writeHead(answer.status, { "content-type": "application/json", ...answer.headers });
    response.end(answer.body);
  });
});
let endpoint = "";

beforeAll(async () => {
  await new Promise<void>((resolve) => server.listen(0, "127.0.0.1", resolve));
  endpoint = `http://127.0.0.1:${(server.address() as AddressInfo).port}`;
});
afterAll(() => new Promise<void>((resolve) => server.close(() => resolve())));

const invoke = () =>
  lambdaInvoker({
    region: "eu-west-1",
    endpoint,
    credentials: async () => ({ accessKeyId: "AKIDEXAMPLE", secretAccessKey: "secret" }),
  });
const functionArn = "arn:aws:lambda:eu-west-1:123456789012:function:McjService-streamrouterFunction1A2B3C-AbCdEf";

describe("lambdaInvoker", () => {
  it("sends a SigV4-signed synchronous Invoke with the event and returns the function's response", async () => {
    answer = { status: 200, body: JSON.stringify({ batchItemFailures: [] }) };
    const event = { Records: [{ eventName: "INSERT" as const }] };
    expect(await invoke()(functionArn, event)).toEqual({ batchItemFailures: [] });
    const request = requests.at(-1);
    expect(request?.method).toBe("POST");
    expect(request?.url).toBe(`/2015-03-31/functions/${encodeURIComponent(functionArn)}/invocations`);
    expect(JSON.parse(request?.body ?? "")).toEqual(event);
    expect(request?.headers["x-amz-invocation-type"]).toBe("RequestResponse");
    expect(request?.headers.authorization).toMatch(
      /^AWS4-HMAC-SHA256 Credential=AKIDEXAMPLE\/\d{8}\/eu-west-1\/lambda\/aws4_request, SignedHeaders=[^,]*host[^,]*, Signature=[0-9a-f]{64}$/,
    );
  });

  it("rejects when the function failed (X-Amz-Function-Error) or the call was refused", async () => {
    answer = { status: 200, headers: { "x-amz-function-error": "Unhandled" }, body: '{"errorMessage":"boom"}' };
    await expect(invoke()(functionArn, { Records: [] })).rejects.toThrow(/failed \(Unhandled\).*boom/);
    answer = { status: 403, body: '{"message":"not authorized"}' };
    await expect(invoke()(functionArn, { Records: [] })).rejects.toThrow(/HTTP 403.*not authorized/);
  });
});

/** Signed completion webhooks on the local engines: delivery, retries, status, SSRF refusals. */
import { createServer, type IncomingMessage } from "node:http";
import type { AddressInfo } from "node:net";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { verifyWebhook } from "../../shared/webhooks/signature.ts";
import { createCalls, createMetrics, standardMetrics } from "../support/fixtures.ts";
import { startTestStack, type TestStack, waitFor, waitForJobEnd } from "../support/stack.ts";

interface Received {
  headers: IncomingMessage["headers"];
  body: string;
  at: number;
}

describe("completion webhooks", () => {
  let stack: TestStack;
  let receiverUrl: string;
  const received: Received[] = [];
  /** Status codes to answer, in order; 200 once they run out. */
  let script: number[] = [];
  const receiver = createServer((req, res) => {
    const chunks: Buffer[] = [];
    req.on("data", (chunk: Buffer) => chunks.push(chunk));
    req.on("end", () => {
      received.push({ headers: req.headers, body: Buffer.concat(chunks).toString("utf8"), at: Date.now() });
      res.writeHead(script.shift() ?? 200).end();
    });
  });

  beforeAll(async () => {
    stack = await startTestStack();
    await new Promise<void>((resolve) => receiver.listen(0, "127.0.0.1", resolve));
    receiverUrl = `http://127.0.0.1:${(receiver.address() as AddressInfo).port}/hooks`;
  });
  afterAll(async () => {
    receiver.close();
    await stack?.stop();
  });

  async function jobWithWebhook(slug: string) {
    const callIds = await createCalls(stack.api, 2);
    const [metric] = await createMetrics(stack.api, [{ ...standardMetrics[0], slug }]);
    const created = await stack.api("POST", "/v1/metric/collection-jobs", {
      callIds,
      metrics: [{ id: metric!.id }],
      webhookUrl: receiverUrl,
    });
    expect(created.status).toBe(201);
    expect(created.body.data.webhookUrl).toBe(receiverUrl);
    return created.body.data.id as string;
  }

  it("POSTs a signed event when the job completes, retrying 500s with the same id", async () => {
    received.length = 0;
    script = [500, 503];
    const jobId = await jobWithWebhook("webhook-1");
    await waitForJobEnd(stack.api, jobId);
    const job = await waitFor(
      async () => {
        const { body } = await stack.api("GET", `/v1/metric/collection-jobs/${jobId}`);
        return body.data.webhook?.status === "delivered" ? body.data : undefined;
      },
      { timeoutMs: 30_000, what: "the webhook to be delivered" },
    );
    expect(job.webhook).toMatchObject({ status: "delivered", attempts: 3, lastResponseCode: 200 });
    expect(received).toHaveLength(3);
    const ids = new Set(received.map((r) => r.headers["x-webhook-id"]));
    expect(ids.size).toBe(1);

    const { body: secret } = await stack.api("GET", "/v1/webhook-secret");
    for (const delivery of received) {
      const verified = verifyWebhook(
        secret.data.secret,
        {
          id: String(delivery.headers["x-webhook-id"]),
          timestamp: String(delivery.headers["x-webhook-timestamp"]),
          signature: String(delivery.headers["x-webhook-signature"]),
        },
        delivery.body,
      );
      expect(verified).toBe(true);
    }
    const event = JSON.parse(received[2]!.body);
    expect(event).toMatchObject({ type: "collection_job.completed", data: { id: jobId, status: "COMPLETED" } });
    expect(event.data.webhookUrl).toBeUndefined();
    // Retries wait: the third attempt comes at least a second after the first.
    expect(received[2]!.at - received[0]!.at).toBeGreaterThanOrEqual(1000);
  });

  it("announces a canceled job, once", async () => {
    received.length = 0;
    script = [];
    const jobId = await jobWithWebhook("webhook-2");
    await stack.api("POST", `/v1/metric/collection-jobs/${jobId}/cancel`);
    await waitFor(async () => (received.length > 0 ? true : undefined), { what: "a webhook" });
    await new Promise((resolve) => setTimeout(resolve, 1500));
    const mine = received.filter((r) => JSON.parse(r.body).data.id === jobId);
    expect(mine).toHaveLength(1);
    expect(JSON.parse(mine[0]!.body).type).toMatch(/^collection_job\.(canceled|completed)$/);
  });

  it("refuses internal addresses at job creation", async () => {
    const callIds = await createCalls(stack.api, 1);
    const [metric] = await createMetrics(stack.api, [{ ...standardMetrics[0], slug: "webhook-3" }]);
    for (const webhookUrl of ["https://10.0.0.1/hook", "http://169.254.169.254/latest", "https://[fd00::1]/x"]) {
      const response = await stack.api("POST", "/v1/metric/collection-jobs", {
        callIds,
        metrics: [{ id: metric!.id }],
        webhookUrl,
      });
      expect(response.status, webhookUrl).toBe(400);
      expect(response.body.error.message).toMatch(/^Invalid webhookUrl/);
    }
  });

  it("shows the signing secret to admins, rotates it, and hides it from members", async () => {
    const first = await stack.api("GET", "/v1/webhook-secret");
    expect(first.body.data.secret).toMatch(/^whsec_/);
    const rotated = await stack.api("POST", "/v1/webhook-secret");
    expect(rotated.status).toBe(201);
    expect(rotated.body.data.secret).not.toBe(first.body.data.secret);
    expect((await stack.api("GET", "/v1/webhook-secret")).body.data.secret).toBe(rotated.body.data.secret);

    const { createApiKey } = await import("../../shared/store/organizations.ts");
    const { apiKey } = await createApiKey(stack.orgId, { role: "member", name: "member" });
    expect((await stack.client(apiKey)("GET", "/v1/webhook-secret")).status).toBe(403);
  });
});

/** Signed completion webhooks on the local engines: delivery, retries, status, SSRF refusals. */
import { createServer, type IncomingMessage } from "node:http";
import type { AddressInfo } from "node:net";
import { GetQueueAttributesCommand } from "@aws-sdk/client-sqs";
import { UpdateCommand } from "@aws-sdk/lib-dynamodb";
import { marshall } from "@aws-sdk/util-dynamodb";
import type { DynamoDBRecord, SQSRecord } from "aws-lambda";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { dynamo, sqs } from "../../shared/aws.ts";
import { config } from "../../shared/config.ts";
import { keys } from "../../shared/keys.ts";
import { finalizeJobs } from "../../shared/pipeline/finalize.ts";
import { defaultWebhookDeps, deliveryIdFor } from "../../shared/webhooks/deliver.ts";
import { verifyWebhook } from "../../shared/webhooks/signature.ts";
import { createCalls, createMetrics, jobValues, llmMetric, standardMetrics } from "../support/fixtures.ts";
import { sendWebhookBatch } from "../support/lambda.ts";
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
    // A short delivery deadline: the tests below wait for it to pass.
    stack = await startTestStack({ env: { WEBHOOK_TIMEOUT_MS: "3000" } });
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

  it("carries each metric's summary, the links to the job and its values, and the values of a small job", async () => {
    received.length = 0;
    script = [];
    const callIds = await createCalls(stack.api, 3);
    const metrics = await createMetrics(stack.api, [
      llmMetric("webhook-polite", "BOOLEAN", "Was the agent polite?"),
      { ...standardMetrics[0], slug: "webhook-duration" },
      { ...standardMetrics[1], slug: "webhook-turns" },
    ]);
    const created = await stack.api("POST", "/v1/metric/collection-jobs", {
      callIds,
      metrics: metrics.map(({ id }) => ({ id })),
      webhookUrl: receiverUrl,
    });
    const jobId = created.body.data.id as string;
    await waitForJobEnd(stack.api, jobId);
    const delivered = await waitFor(async () => received.find((r) => JSON.parse(r.body).data.id === jobId), {
      timeoutMs: 30_000,
      what: "the webhook",
    });
    const event = JSON.parse(delivered.body);
    const values = await jobValues(stack.api, jobId);
    expect(values).toHaveLength(9);
    const byKey = (v: any) => `${v.callId}|${v.metricDefinitionId}`;
    // The API's rows, without the slug jobValues adds from each row's group.
    const rows = values.map(({ slug: _slug, ...row }) => row);
    expect([...event.results.values].sort((a, b) => byKey(a).localeCompare(byKey(b)))).toEqual(
      rows.sort((a, b) => byKey(a).localeCompare(byKey(b))),
    );
    expect(event.results.links).toEqual({
      job: `/v1/metric/collection-jobs/${jobId}`,
      values: `/v1/metric/collection-jobs/${jobId}/metric-values?status=all`,
    });
    const [polite, duration, turns] = metrics.map((metric) => values.filter((v) => v.metricDefinitionId === metric.id));
    const numbers = (of: any[]) => of.map((v) => v.value as number);
    const mean = (of: number[]) => of.reduce((sum, n) => sum + n, 0) / of.length;
    expect(event.results.metrics).toEqual([
      {
        metricDefinitionId: metrics[0]!.id,
        slug: "webhook-polite",
        version: 1,
        counts: { SUCCESS: 3, NOT_APPLICABLE: 0, DATA_MISSING: 0, ERROR: 0 },
        passRate: polite!.filter((v) => v.value === true).length / 3,
      },
      {
        metricDefinitionId: metrics[1]!.id,
        slug: "webhook-duration",
        version: 1,
        counts: { SUCCESS: 3, NOT_APPLICABLE: 0, DATA_MISSING: 0, ERROR: 0 },
        average: mean(numbers(duration!)),
        min: Math.min(...numbers(duration!)),
        max: Math.max(...numbers(duration!)),
      },
      {
        metricDefinitionId: metrics[2]!.id,
        slug: "webhook-turns",
        version: 1,
        counts: { SUCCESS: 3, NOT_APPLICABLE: 0, DATA_MISSING: 0, ERROR: 0 },
        average: mean(numbers(turns!)),
        min: Math.min(...numbers(turns!)),
        max: Math.max(...numbers(turns!)),
      },
    ]);
  });

  it("signs with a job's own secret, shown once at creation, when the job asks for one", async () => {
    received.length = 0;
    script = [];
    const callIds = await createCalls(stack.api, 1);
    const [metric] = await createMetrics(stack.api, [{ ...standardMetrics[0], slug: "webhook-own-secret" }]);
    const body = { callIds, metrics: [{ id: metric!.id }], webhookSigning: "job" };
    const withoutUrl = await stack.api("POST", "/v1/metric/collection-jobs", body);
    expect(withoutUrl.status).toBe(400);
    expect(withoutUrl.body.error.details).toEqual([expect.objectContaining({ field: "body.webhookSigning" })]);
    const created = await stack.api("POST", "/v1/metric/collection-jobs", { ...body, webhookUrl: receiverUrl });
    expect(created.status).toBe(201);
    const jobSecret = created.body.data.webhookSecret as string;
    expect(jobSecret).toMatch(/^whsec_/);
    const jobId = created.body.data.id as string;
    await waitForJobEnd(stack.api, jobId);
    const shown = await stack.api("GET", `/v1/metric/collection-jobs/${jobId}`);
    expect(shown.body.data.webhookSecret).toBeUndefined();
    expect(shown.body.data.webhookSigning).toBe("job");
    expect(JSON.stringify((await stack.api("GET", "/v1/metric/collection-jobs")).body)).not.toContain(jobSecret);

    const delivery = await waitFor(async () => received.find((r) => JSON.parse(r.body).data.id === jobId), {
      timeoutMs: 30_000,
      what: "the webhook",
    });
    const signed = {
      id: String(delivery.headers["x-webhook-id"]),
      timestamp: String(delivery.headers["x-webhook-timestamp"]),
      signature: String(delivery.headers["x-webhook-signature"]),
    };
    expect(verifyWebhook(jobSecret, signed, delivery.body)).toBe(true);
    const { body: orgSecret } = await stack.api("GET", "/v1/webhook-secret");
    expect(verifyWebhook(orgSecret.data.secret, signed, delivery.body)).toBe(false);
    expect(delivery.body).not.toContain(jobSecret);
  });

  it("sends a progress event when a job that asks for them passes a tenth of its items", async () => {
    received.length = 0;
    script = [];
    // A slow judge keeps the job running while its progress is announced.
    stack.anthropic.configure({ latencyMs: 6000 });
    try {
      const callIds = await createCalls(stack.api, 1);
      const [metric] = await createMetrics(stack.api, [llmMetric("webhook-progress", "BOOLEAN", 'A "refund"?')]);
      const body = { callIds, metrics: [{ id: metric!.id }], webhookProgress: true };
      const withoutUrl = await stack.api("POST", "/v1/metric/collection-jobs", body);
      expect(withoutUrl.status).toBe(400);
      expect(withoutUrl.body.error.details).toEqual([expect.objectContaining({ field: "body.webhookProgress" })]);
      const created = await stack.api("POST", "/v1/metric/collection-jobs", { ...body, webhookUrl: receiverUrl });
      expect(created.status).toBe(201);
      expect(created.body.data.webhookProgress).toBe(true);
      const jobId = created.body.data.id as string;
      // The event carries the job as it is when sent: wait for it to leave PENDING (a loaded
      // machine dispatches it later) before feeding the finalizer records that say PROCESSING.
      await waitFor(
        async () =>
          (await stack.api("GET", `/v1/metric/collection-jobs/${jobId}`)).body.data.status === "PROCESSING"
            ? true
            : undefined,
        { timeoutMs: 30_000, what: "the job to be PROCESSING" },
      );

      // Stream records of the running job: 2 → 5 of 10 items passes 50 %; 5 → 5 (twice) passes nothing.
      const image = (done: number) =>
        marshall({
          entity: "Job",
          orgId: stack.orgId,
          id: jobId,
          status: "PROCESSING",
          totalItems: 10,
          completedItems: done,
          failedItems: 0,
          webhookUrl: receiverUrl,
          webhookProgress: true,
        });
      const record = (from: number, to: number, sequence: string) =>
        ({
          eventName: "MODIFY",
          dynamodb: { SequenceNumber: sequence, OldImage: image(from), NewImage: image(to) },
        }) as unknown as DynamoDBRecord;
      expect(await finalizeJobs([record(2, 5, "1"), record(5, 5, "2"), record(5, 5, "3")])).toEqual({
        batchItemFailures: [],
      });
      const delivered = await waitFor(
        async () => received.find((r) => JSON.parse(r.body).type === "collection_job.progress"),
        { timeoutMs: 30_000, what: "the progress event" },
      );
      const event = JSON.parse(delivered.body);
      expect(event).toMatchObject({ progress: { percent: 50 }, data: { id: jobId, status: "PROCESSING" } });
      expect(delivered.headers["x-webhook-id"]).toBe(`whd_${jobId}_progress_50`);
      const { body: secret } = await stack.api("GET", "/v1/webhook-secret");
      const signed = {
        id: String(delivered.headers["x-webhook-id"]),
        timestamp: String(delivered.headers["x-webhook-timestamp"]),
        signature: String(delivered.headers["x-webhook-signature"]),
      };
      expect(verifyWebhook(secret.data.secret, signed, delivered.body)).toBe(true);
    } finally {
      stack.anthropic.configure({ latencyMs: 0 });
    }
    const progressEvents = () => received.filter((r) => JSON.parse(r.body).type === "collection_job.progress");
    await waitFor(
      async () => (received.some((r) => JSON.parse(r.body).type === "collection_job.completed") ? true : undefined),
      { timeoutMs: 30_000, what: "the completion event" },
    );
    expect(progressEvents()).toHaveLength(1);
  });

  it("announces a canceled job, once", async () => {
    received.length = 0;
    script = [];
    const jobId = await jobWithWebhook("webhook-2");
    await stack.api("POST", `/v1/metric/collection-jobs/${jobId}/cancel`);
    // Delivered, and no other message left that could deliver it a second time.
    await waitFor(
      async () => {
        const { body } = await stack.api("GET", `/v1/metric/collection-jobs/${jobId}`);
        if (body.data.webhook?.status !== "delivered") return undefined;
        const { Attributes } = await sqs().send(
          new GetQueueAttributesCommand({
            QueueUrl: stack.queueUrls.webhook,
            AttributeNames: ["ApproximateNumberOfMessages", "ApproximateNumberOfMessagesNotVisible"],
          }),
        );
        const left =
          Number(Attributes?.ApproximateNumberOfMessages) + Number(Attributes?.ApproximateNumberOfMessagesNotVisible);
        return left === 0 ? true : undefined;
      },
      { what: "the webhook to be delivered and its queue to drain" },
    );
    const mine = received.filter((r) => JSON.parse(r.body).data.id === jobId);
    expect(mine).toHaveLength(1);
    expect(JSON.parse(mine[0]!.body).type).toMatch(/^collection_job\.(canceled|completed)$/);
  });

  /** A finished job (no webhook of its own) whose webhook URL is then set to `url`, and its delivery message. */
  async function finishedJobDeliveringTo(url: string, slug: string): Promise<{ jobId: string; record: SQSRecord }> {
    const callIds = await createCalls(stack.api, 1);
    const [metric] = await createMetrics(stack.api, [{ ...standardMetrics[0], slug }]);
    const created = await stack.api("POST", "/v1/metric/collection-jobs", { callIds, metrics: [{ id: metric!.id }] });
    const job = await waitForJobEnd(stack.api, created.body.data.id);
    await dynamo().send(
      new UpdateCommand({
        TableName: config().tableName,
        Key: keys.job(stack.orgId, job.id),
        UpdateExpression: "SET webhookUrl = :url",
        ExpressionAttributeValues: { ":url": url },
      }),
    );
    const message = {
      orgId: stack.orgId,
      jobId: job.id,
      deliveryId: deliveryIdFor(job.id, job.status),
      queuedAt: new Date().toISOString(),
    };
    return {
      jobId: job.id,
      record: { messageId: job.id, receiptHandle: job.id, body: JSON.stringify(message) } as SQSRecord,
    };
  }

  const deliveryOf = async (jobId: string) =>
    (await stack.api("GET", `/v1/metric/collection-jobs/${jobId}`)).body.data.webhook;

  it("delivers to a fast endpoint while another endpoint of the same batch hangs", async () => {
    let hangingOpen = false;
    let hangingOpenWhenFastServed: boolean | undefined;
    const hanging = createServer((req) => {
      hangingOpen = true;
      req.on("close", () => {
        hangingOpen = false;
      });
    });
    // The fast endpoint answers once the hanging one holds its request (or after half the
    // deadline): concurrent deliveries see it open, one after the other never does.
    const fast = createServer(async (req, res) => {
      req.resume();
      const giveUpAt = Date.now() + 1500;
      while (!hangingOpen && Date.now() < giveUpAt) await new Promise((resolve) => setTimeout(resolve, 10));
      hangingOpenWhenFastServed = hangingOpen;
      res.writeHead(204).end();
    });
    await Promise.all(
      [hanging, fast].map((server) => new Promise<void>((resolve) => server.listen(0, "127.0.0.1", resolve))),
    );
    const urlOf = (server: typeof fast) => `http://127.0.0.1:${(server.address() as AddressInfo).port}/hook`;
    try {
      const slowJob = await finishedJobDeliveringTo(urlOf(hanging), "webhook-hanging");
      const fastJob = await finishedJobDeliveringTo(urlOf(fast), "webhook-fast");
      const delayed: string[] = [];
      let settled = false;
      // The hanging endpoint comes first in the batch.
      const batch = sendWebhookBatch([slowJob.record, fastJob.record], {
        ...defaultWebhookDeps,
        delay: async (handle) => {
          delayed.push(handle);
        },
      }).finally(() => {
        settled = true;
      });

      await waitFor(async () => ((await deliveryOf(fastJob.jobId))?.status === "delivered" ? true : undefined), {
        what: "the fast endpoint's delivery to be recorded",
      });
      expect(hangingOpenWhenFastServed).toBe(true);
      expect(settled).toBe(false);

      const response = await batch;
      expect(response.batchItemFailures).toEqual([{ itemIdentifier: slowJob.record.messageId }]);
      expect(delayed).toEqual([slowJob.record.receiptHandle]);
      expect(await deliveryOf(slowJob.jobId)).toMatchObject({ status: "pending", attempts: 1, lastError: "timed out" });
    } finally {
      hanging.closeAllConnections();
      hanging.close();
      fast.close();
    }
  });

  it("bounds the DNS lookup of a delivery by its deadline too", async () => {
    const { jobId, record } = await finishedJobDeliveringTo("http://never-answers.example/hook", "webhook-dns");
    const delayed: string[] = [];
    const response = await sendWebhookBatch([record], {
      ...defaultWebhookDeps,
      resolveHost: () => new Promise<string[]>(() => {}),
      delay: async (handle) => {
        delayed.push(handle);
      },
    });
    expect(response.batchItemFailures).toEqual([{ itemIdentifier: record.messageId }]);
    expect(delayed).toEqual([record.receiptHandle]);
    expect(await deliveryOf(jobId)).toMatchObject({ status: "pending", attempts: 1, lastError: "timed out" });
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

/**
 * SSRF refusals with the AWS setting (no loopback allowed): internal targets are refused when
 * a job, policy or backfill is saved, and again when a delivery is attempted (DNS rebinding).
 */
import { UpdateCommand } from "@aws-sdk/lib-dynamodb";
import type { SQSRecord } from "aws-lambda";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { dynamo } from "../../shared/aws.ts";
import { config } from "../../shared/config.ts";
import { keys } from "../../shared/keys.ts";
import { deliveryIdFor } from "../../shared/webhooks/deliver.ts";
import { createCalls, createMetrics, standardMetrics } from "../support/fixtures.ts";
import { sendWebhookBatch } from "../support/lambda.ts";
import { startTestStack, type TestStack, waitForJobEnd } from "../support/stack.ts";

describe("webhook SSRF guard (loopback not allowed)", () => {
  let stack: TestStack;
  let callIds: string[];
  beforeAll(async () => {
    stack = await startTestStack({ env: { WEBHOOK_ALLOW_LOOPBACK: "false" } });
    callIds = await createCalls(stack.api, 1);
    await createMetrics(stack.api, [{ ...standardMetrics[0], slug: "ssrf-metric" }]);
  });
  afterAll(() => stack?.stop());

  const refused: [string, RegExp][] = [
    ["https://localhost/hook", /localhost resolves to .*loopback/],
    ["https://127.0.0.1/hook", /loopback/],
    ["https://[::1]/hook", /loopback/],
    ["https://[::ffff:127.0.0.1]/hook", /loopback/],
    ["https://0.0.0.0/hook", /private, link-local or reserved/],
    ["https://10.0.0.1/hook", /private/],
    ["https://172.16.5.4/hook", /private/],
    ["https://192.168.1.1/hook", /private/],
    ["https://100.64.0.1/hook", /private/],
    ["https://169.254.169.254/latest/meta-data", /link-local/],
    ["https://[fd12::1]/hook", /private/],
    ["https://[fe80::1]/hook", /link-local/],
    ["http://hooks.example.com/hook", /must use https/],
  ];

  it("refuses internal and non-https URLs on jobs", async () => {
    for (const [webhookUrl, reason] of refused) {
      const response = await stack.api("POST", "/v1/metric/collection-jobs", {
        callIds,
        metrics: [{ id: "ssrf-metric" }],
        webhookUrl,
      });
      expect(response.status, webhookUrl).toBe(400);
      expect(response.body.error.message, webhookUrl).toMatch(/^Invalid webhookUrl/);
      expect(response.body.error.message, webhookUrl).toMatch(reason);
    }
    const { body } = await stack.api("GET", "/v1/metric/collection-jobs");
    expect(body.data).toEqual([]);
  });

  it("refuses them on policies and backfills too, on create and on update", async () => {
    const policy = await stack.api("POST", "/v1/metric/policies", {
      name: "p",
      metrics: [{ id: "ssrf-metric" }],
      webhookUrl: "https://localhost/hook",
    });
    expect(policy.status).toBe(400);
    expect(policy.body.error.message).toMatch(/Invalid webhookUrl: localhost resolves to/);
    const okPolicy = await stack.api("POST", "/v1/metric/policies", { name: "p", metrics: [{ id: "ssrf-metric" }] });
    const updated = await stack.api("PUT", `/v1/metric/policies/${okPolicy.body.data.id}`, {
      webhookUrl: "https://169.254.169.254/x",
    });
    expect(updated.status).toBe(400);

    const backfill = await stack.api("POST", "/v1/backfills", {
      name: "b",
      schedule: "rate(1 day)",
      metrics: [{ id: "ssrf-metric" }],
      webhookUrl: "https://[::1]/hook",
    });
    expect(backfill.status).toBe(400);
    expect(backfill.body.error.message).toMatch(/Invalid webhookUrl/);
  });

  it("checks again at delivery time: a host that now resolves to loopback gets nothing", async () => {
    // The job ends without a webhook; then its URL "re-resolves" to 127.0.0.1 (localhost
    // stands in for a rebinding DNS name) and a delivery is attempted.
    const created = await stack.api("POST", "/v1/metric/collection-jobs", {
      callIds,
      metrics: [{ id: "ssrf-metric" }],
    });
    const job = await waitForJobEnd(stack.api, created.body.data.id);
    await dynamo().send(
      new UpdateCommand({
        TableName: config().tableName,
        Key: keys.job(stack.orgId, job.id),
        UpdateExpression: "SET webhookUrl = :url",
        ExpressionAttributeValues: { ":url": "https://localhost:9/hook" },
      }),
    );
    const fetched: string[] = [];
    const delayed: number[] = [];
    const message = {
      orgId: stack.orgId,
      jobId: job.id,
      deliveryId: deliveryIdFor(job.id, job.status),
      queuedAt: new Date().toISOString(),
    };
    const record = { messageId: "m1", receiptHandle: "r1", body: JSON.stringify(message) } as SQSRecord;
    const response = await sendWebhookBatch([record], {
      fetch: async (input) => {
        fetched.push(String(input));
        return new Response(null, { status: 200 });
      },
      delay: async (_handle, seconds) => {
        delayed.push(seconds);
      },
      now: () => new Date(),
    });
    expect(response.batchItemFailures).toEqual([]);
    expect(fetched).toEqual([]);
    expect(delayed).toEqual([]);
    const { body } = await stack.api("GET", `/v1/metric/collection-jobs/${job.id}`);
    expect(body.data.webhook).toMatchObject({
      id: message.deliveryId,
      status: "failed",
      attempts: 1,
      lastError: expect.stringMatching(/localhost resolves to .*loopback/),
    });
  });
});

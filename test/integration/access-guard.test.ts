/**
 * The local runtime enforces the wiring's grants as IAM does in AWS: a function reaches the
 * table, the queues and the model only as its access allows — a missing grant fails here.
 */
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { handler as probe } from "../fixtures/access-probe.ts";
import { startTestStack, type TestStack } from "../support/stack.ts";

describe("the local runtime's access guard", () => {
  let stack: TestStack;
  beforeAll(async () => {
    // Two real wiring entries run the probe: their grants are the wiring's, not the probe's.
    stack = await startTestStack({
      runtime: { handlerOverrides: { "api-list-calls": probe, "api-create-collection-job": probe } },
    });
  });
  afterAll(() => stack?.stop());

  it("lets a route granted table reads read, and refuses its writes, sends and model calls", async () => {
    const { status, body } = await stack.api("GET", "/v1/call?try=read,write,send-work,model");
    expect(status).toBe(200);
    expect(body.read).toBe("allowed");
    expect(body.write).toBe(
      'AccessDeniedException: AccessDenied: api-list-calls may not call dynamodb:PutItem: its access grants table "read" (shared/wiring.ts)',
    );
    expect(body["send-work"]).toMatch(/^AccessDeniedException: .*api-list-calls may not call sqs:SendMessage on work/);
    expect(body.model).toMatch(/^AccessDeniedException: .*api-list-calls may not call the model/);
  });

  it("lets a function send only to the queues its sendTo names", async () => {
    const { body } = await stack.api("POST", "/v1/metric/collection-jobs?try=write,send-dispatch,send-work,model", {});
    expect(body).toMatchObject({ write: "allowed", "send-dispatch": "allowed" });
    expect(body["send-work"]).toContain('its access has sendTo ["dispatch"]');
    expect(body.model).toContain('lacks secrets ["anthropic"]');
  });

  it("runs each scheduled function by hand with the grants its entry gives it", async () => {
    // Each would reject with AccessDeniedException on a request its grants do not cover.
    const outcomes = await Promise.allSettled(
      ["reconciler", "rollup-sweeper", "policy-flusher", "backfill-runner", "batch-collector"].map((id) =>
        stack.runSchedule(id),
      ),
    );
    expect(outcomes.filter((outcome) => outcome.status === "rejected")).toEqual([]);
    await expect(stack.runSchedule("no-such-schedule")).rejects.toThrow('No schedule "no-such-schedule"');
  });

  it("checks nothing outside an invocation: tests and pollers act as the platform", async () => {
    const { body } = await (await import("../fixtures/access-probe.ts"))
      .handler({
        queryStringParameters: { try: "write,send-work" },
      } as never)
      .then((r) => ({ body: JSON.parse(String(r.body)) }));
    expect(body).toEqual({ write: "allowed", "send-work": "allowed" });
  });
});

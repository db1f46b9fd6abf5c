import type { DynamoDBBatchResponse, DynamoDBRecord } from "aws-lambda";
import { describe, expect, it } from "vitest";
import { streamRoutes } from "../../functions/workers/stream-router.ts";
import { matchesFilterPattern } from "../../infra/local/event-filter.ts";
import { routeStreamRecords, type StreamRoute } from "../../shared/pipeline/stream-router.ts";
import { CALL_ENTITY, JOB_ENTITY, ROLLUP_DELTA_ENTITY } from "../../shared/stream-entities.ts";
import { wiring } from "../../shared/wiring.ts";

const record = (eventName: "INSERT" | "MODIFY", entity: string, sequenceNumber: string): DynamoDBRecord => ({
  eventName,
  dynamodb: { NewImage: { entity: { S: entity } }, SequenceNumber: sequenceNumber },
});

/** A route that records what it was given and answers with `respond`. */
function recordingRoute(
  entity: string,
  eventName: "INSERT" | "MODIFY",
  respond: (records: DynamoDBRecord[]) => Promise<DynamoDBBatchResponse> = async () => ({ batchItemFailures: [] }),
) {
  const received: string[][] = [];
  const route: StreamRoute = {
    name: entity,
    eventName,
    entity,
    handle: async (records) => {
      received.push(records.map((r) => r.dynamodb?.SequenceNumber ?? ""));
      return respond(records);
    },
  };
  return { route, received };
}

describe("routeStreamRecords", () => {
  it("hands each route its own records in stream order and skips records no route wants", async () => {
    const jobs = recordingRoute(JOB_ENTITY, "MODIFY");
    const calls = recordingRoute(CALL_ENTITY, "INSERT");
    const response = await routeStreamRecords(
      [
        record("INSERT", CALL_ENTITY, "1"),
        record("MODIFY", JOB_ENTITY, "2"),
        record("INSERT", JOB_ENTITY, "3"),
        record("INSERT", CALL_ENTITY, "4"),
        record("MODIFY", JOB_ENTITY, "5"),
      ],
      [jobs.route, calls.route],
    );
    expect(response).toEqual({ batchItemFailures: [] });
    expect(jobs.received).toEqual([["2", "5"]]);
    expect(calls.received).toEqual([["1", "4"]]);
  });

  it("reports the earliest failure of all routes, comparing sequence numbers as numbers", async () => {
    const jobs = recordingRoute(JOB_ENTITY, "MODIFY", async () => ({ batchItemFailures: [{ itemIdentifier: "100" }] }));
    const calls = recordingRoute(CALL_ENTITY, "INSERT", async () => ({
      batchItemFailures: [{ itemIdentifier: "99" }],
    }));
    const response = await routeStreamRecords(
      [record("INSERT", CALL_ENTITY, "99"), record("MODIFY", JOB_ENTITY, "100")],
      [jobs.route, calls.route],
    );
    expect(response).toEqual({ batchItemFailures: [{ itemIdentifier: "99" }] });
  });

  it("fails a route that throws from its first record, while the other route still runs", async () => {
    const jobs = recordingRoute(JOB_ENTITY, "MODIFY", async () => {
      throw new Error("table unavailable");
    });
    const calls = recordingRoute(CALL_ENTITY, "INSERT");
    const response = await routeStreamRecords(
      [record("INSERT", CALL_ENTITY, "7"), record("MODIFY", JOB_ENTITY, "8"), record("MODIFY", JOB_ENTITY, "9")],
      [jobs.route, calls.route],
    );
    expect(response).toEqual({ batchItemFailures: [{ itemIdentifier: "8" }] });
    expect(calls.received).toEqual([["7"]]);
  });

  it("turns an identifier Lambda could not place into the route's first record", async () => {
    const jobs = recordingRoute(JOB_ENTITY, "MODIFY", async () => ({ batchItemFailures: [{ itemIdentifier: "" }] }));
    const response = await routeStreamRecords(
      [record("MODIFY", JOB_ENTITY, "12"), record("MODIFY", JOB_ENTITY, "13")],
      [jobs.route],
    );
    expect(response).toEqual({ batchItemFailures: [{ itemIdentifier: "12" }] });
  });
});

describe("the stream topology", () => {
  it("reads the table's stream with at most two consumers, as DynamoDB Streams allows per shard", () => {
    expect(wiring.streamConsumers.length).toBeLessThanOrEqual(2);
  });

  it("lets through to the router exactly the records its routes handle, and rollup deltas to the applier", () => {
    const router = wiring.streamConsumers.find((consumer) => consumer.id === "stream-router");
    const applier = wiring.streamConsumers.find((consumer) => consumer.id === "rollup-applier");
    expect(router?.entry).toBe("functions/workers/stream-router.ts");
    const samples = [
      record("MODIFY", JOB_ENTITY, "1"),
      record("INSERT", CALL_ENTITY, "2"),
      record("INSERT", ROLLUP_DELTA_ENTITY, "3"),
      record("INSERT", JOB_ENTITY, "4"),
      record("MODIFY", CALL_ENTITY, "5"),
    ];
    const routed = (r: DynamoDBRecord) =>
      streamRoutes.some((route) => route.eventName === r.eventName && route.entity === r.dynamodb?.NewImage?.entity?.S);
    for (const sample of samples) {
      expect(matchesFilterPattern(router?.filterPattern ?? {}, sample)).toBe(routed(sample));
    }
    expect(samples.filter((sample) => matchesFilterPattern(applier?.filterPattern ?? {}, sample))).toEqual([
      samples[2],
    ]);
    // Every stream consumer's records go to exactly one consumer.
    for (const sample of samples.slice(0, 3)) {
      expect(wiring.streamConsumers.filter((c) => matchesFilterPattern(c.filterPattern, sample))).toHaveLength(1);
    }
  });
});

/**
 * Counts, from inside the handlers, how often each batch reached them: wrapping handlers
 * that a test stack runs instead of the real ones (which they call). Tests of duplicate
 * delivery assert on these counts, not on the runtime's word that it delivered twice.
 */
import type { DynamoDBRecord, SQSRecord } from "aws-lambda";
import { createHandlerResolver, type LambdaHandler } from "../../infra/local/invoke.ts";
import { wiring } from "../../shared/wiring.ts";
import { waitFor } from "./stack.ts";

interface BatchDeliveries {
  /** Invocations with exactly these records. */
  deliveries: number;
  inFlight: number;
  /** Two of them ran at the same time. */
  overlapped: boolean;
}

export interface DeliverySummary {
  /** Distinct batches (identical records = the same batch). */
  batches: number;
  /** Batches whose every delivery had a twin: delivered an even number of times, at least twice. */
  twinned: number;
  /** Batches delivered with a twin running at the same time. */
  overlapped: number;
  /** Invocations still running. */
  inFlight: number;
}

/**
 * A batch's identity: its SQS receipt handles (a redelivery gets new ones, a twin the same)
 * or its stream records' sequence numbers (a retry from the same record repeats them).
 */
function batchKey(event: { Records?: (SQSRecord | DynamoDBRecord)[] }): string {
  return (event.Records ?? [])
    .map((record) => ("receiptHandle" in record ? record.receiptHandle : record.dynamodb?.SequenceNumber))
    .join(",");
}

export function countDeliveries(functionIds: string[]) {
  const entries = [...wiring.queueConsumers, ...wiring.streamConsumers];
  const realHandler = createHandlerResolver();
  const byFunction = new Map<string, Map<string, BatchDeliveries>>(functionIds.map((id) => [id, new Map()]));

  const handlerOverrides: Record<string, LambdaHandler> = {};
  for (const id of functionIds) {
    const entry = entries.find((candidate) => candidate.id === id);
    if (!entry) throw new Error(`No queue or stream consumer ${id} in the wiring`);
    const batches = byFunction.get(id) as Map<string, BatchDeliveries>;
    handlerOverrides[id] = async (event, context) => {
      const key = batchKey(event);
      const batch = batches.get(key) ?? { deliveries: 0, inFlight: 0, overlapped: false };
      batches.set(key, batch);
      batch.deliveries++;
      batch.inFlight++;
      if (batch.inFlight > 1) batch.overlapped = true;
      try {
        return await (await realHandler(entry))(event, context);
      } finally {
        batch.inFlight--;
      }
    };
  }

  function summary(id: string): DeliverySummary {
    const batches = [...(byFunction.get(id)?.values() ?? [])];
    return {
      batches: batches.length,
      twinned: batches.filter((batch) => batch.deliveries >= 2 && batch.deliveries % 2 === 0).length,
      overlapped: batches.filter((batch) => batch.overlapped).length,
      inFlight: batches.reduce((sum, batch) => sum + batch.inFlight, 0),
    };
  }

  /** Waits until every batch of every counted function reached it twice, and returns their summaries. */
  function everyTwinDelivered() {
    return waitFor(
      async () => {
        const all = functionIds.map((id) => ({ id, ...summary(id) }));
        return all.every((s) => s.batches > 0 && s.twinned === s.batches && s.inFlight === 0) ? all : undefined;
      },
      { what: "every batch's twin to be delivered" },
    );
  }

  return { handlerOverrides, summary, everyTwinDelivered };
}

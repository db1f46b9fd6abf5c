/** What a job costs on AWS, from the requests and handler time the benchmark counted. */
import { FUNCTION_DEFAULTS, memoryOf, wiring } from "../shared/wiring.ts";
import type { JobRun } from "./job-run.ts";

/** Published on-demand prices (us-east-1, USD), the cost model's assumptions. */
export const AWS_PRICES = {
  lambdaPerMillionRequests: 0.2,
  lambdaArmPerGbSecond: 0.0000133334,
  sqsPerMillionRequests: 0.4,
  dynamoPerMillionWriteUnits: 0.625,
  dynamoPerMillionReadUnits: 0.125,
  httpApiPerMillionRequests: 1.0,
};

/** Memory of a function of the wiring, as deployed. */
const memoryOfFunction = (id: string) => {
  const entry = [...wiring.queueConsumers, ...wiring.streamConsumers, ...wiring.schedules].find((e) => e.id === id);
  return entry ? memoryOf(entry) : FUNCTION_DEFAULTS.memoryMb;
};

const sum = (record: Record<string, number>) => Object.values(record).reduce((a, b) => a + b, 0);

export type AwsCost = ReturnType<typeof awsCostPerItem>;

/** AWS cost of one item (USD), excluding the LLM bill and LLM wait time in Lambda. */
export function awsCostPerItem(run: JobRun, llmLatencyMs: number) {
  const perItem = (n: number) => n / run.items;
  const memoryGb = (id: string) => memoryOfFunction(id) / 1024;
  // Lambda bills the time spent waiting for the model too; that part scales with the real
  // model's latency, so it is reported separately (`llmWaitCostPerItemSecond`) instead of at the fake's latency.
  const llmWaitMs = run.items * llmLatencyMs;
  const gbSeconds = Object.entries(run.handlerMs).reduce(
    (total, [id, ms]) => total + (Math.max(0, ms - (id === "evaluator" ? llmWaitMs : 0)) / 1000) * memoryGb(id),
    0,
  );
  const lambdaRequests = sum(run.invocations) + 1; // + the API call that created the job
  const sqsRequests = sum(run.sqs.requests);
  const parts = {
    lambdaRequests: (perItem(lambdaRequests) * AWS_PRICES.lambdaPerMillionRequests) / 1e6,
    lambdaDuration: perItem(gbSeconds) * AWS_PRICES.lambdaArmPerGbSecond,
    sqs: (perItem(sqsRequests) * AWS_PRICES.sqsPerMillionRequests) / 1e6,
    dynamoWrites: (perItem(run.dynamo.writeUnits) * AWS_PRICES.dynamoPerMillionWriteUnits) / 1e6,
    dynamoReads: (perItem(run.dynamo.readUnits) * AWS_PRICES.dynamoPerMillionReadUnits) / 1e6,
    apiGateway: (perItem(1) * AWS_PRICES.httpApiPerMillionRequests) / 1e6,
  };
  return { parts, total: sum(parts), lambdaRequestsPerItem: perItem(lambdaRequests), sqsPerItem: perItem(sqsRequests) };
}

/** Lambda cost of one second of LLM latency per item (evaluator memory), USD. */
export const llmWaitCostPerItemSecond = (memoryOfFunction("evaluator") / 1024) * AWS_PRICES.lambdaArmPerGbSecond;

/**
 * Replays the stream consumers' failed batches from the stream-failures queue (see
 * docs/operations.md, "Stream failures"). Needs AWS credentials allowed to read the queue
 * and the table's stream and to invoke the stream consumer functions.
 *
 *   npm run replay-stream-failures -- --queue-url <StreamFailuresQueueUrl output> \
 *     [--consumer stream-router|rollup-applier] [--function <name or ARN>] [--max-messages <n>]
 *
 * DYNAMODB_ENDPOINT, SQS_ENDPOINT and LAMBDA_ENDPOINT point it at other endpoints.
 */
import { parseArgs } from "node:util";
import { DynamoDBStreamsClient } from "@aws-sdk/client-dynamodb-streams";
import { SQSClient } from "@aws-sdk/client-sqs";
import { wiring } from "../../shared/wiring.ts";
import { lambdaInvoker } from "./lambda-invoke.ts";
import { replayStreamFailures } from "./stream-replay.ts";

const { values } = parseArgs({
  options: {
    "queue-url": { type: "string" },
    consumer: { type: "string" },
    function: { type: "string" },
    "max-messages": { type: "string" },
  },
});
const queueUrl = values["queue-url"];
if (!queueUrl) {
  console.error("Give --queue-url: the stack's StreamFailuresQueueUrl output");
  process.exit(2);
}
const consumerIds = wiring.streamConsumers.map((consumer) => consumer.id);
if (values.consumer && !consumerIds.includes(values.consumer)) {
  console.error(`--consumer must be one of ${consumerIds.join(", ")}`);
  process.exit(2);
}
const maxMessages = values["max-messages"] ? Number(values["max-messages"]) : undefined;
if (maxMessages !== undefined && !(Number.isInteger(maxMessages) && maxMessages > 0)) {
  console.error("--max-messages must be a positive integer");
  process.exit(2);
}
const region = process.env.AWS_REGION ?? process.env.AWS_DEFAULT_REGION;
if (!region) {
  console.error("Set AWS_REGION");
  process.exit(2);
}

const sqs = new SQSClient({ region, endpoint: process.env.SQS_ENDPOINT });
const streams = new DynamoDBStreamsClient({ region, endpoint: process.env.DYNAMODB_ENDPOINT });
const outcomes = await replayStreamFailures({
  sqs,
  streams,
  queueUrl,
  region,
  invoke: lambdaInvoker({ region, endpoint: process.env.LAMBDA_ENDPOINT }),
  consumerId: values.consumer,
  functionName: values.function,
  maxMessages,
});
for (const outcome of outcomes) console.log(JSON.stringify(outcome));
const kept = outcomes.filter((outcome) => outcome.status !== "replayed").length;
console.error(`${outcomes.length - kept} replayed, ${kept} kept on the queue`);
sqs.destroy();
streams.destroy();
process.exitCode = kept > 0 ? 1 : 0;

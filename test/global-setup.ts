/** Starts the local engines once for the whole run, on free ports, and stops them after. */
import type { TestProject } from "vitest/node";
import { startDynamoDbLocal, startSqsEmulator } from "../infra/local/engines.ts";

declare module "vitest" {
  export interface ProvidedContext {
    dynamodbEndpoint: string;
    sqsEndpoint: string;
  }
}

export default async function setup(project: TestProject) {
  const [dynamodb, sqsEmulator] = await Promise.all([startDynamoDbLocal(), startSqsEmulator()]);
  project.provide("dynamodbEndpoint", dynamodb.endpoint);
  project.provide("sqsEndpoint", sqsEmulator.endpoint);
  return async () => {
    await Promise.all([dynamodb.stop(), sqsEmulator.stop()]);
  };
}

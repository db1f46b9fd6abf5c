import type { DynamoDBStreamEvent } from "aws-lambda";
import { streamRoutes } from "../../functions/workers/stream-router.ts";
import { routeStreamRecords, type StreamRecordHandler } from "../../shared/pipeline/stream-router.ts";

/** The stream router's handler with one route's handler wrapped, for tests that hold or watch that route. */
export function streamRouterWith(name: string, wrap: (handle: StreamRecordHandler) => StreamRecordHandler) {
  if (!streamRoutes.some((route) => route.name === name)) throw new Error(`No stream route named ${name}`);
  const routes = streamRoutes.map((route) => (route.name === name ? { ...route, handle: wrap(route.handle) } : route));
  return (event: unknown) => routeStreamRecords((event as DynamoDBStreamEvent).Records, routes);
}

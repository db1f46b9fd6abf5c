import { eachMessage, sqsBatch } from "../../shared/consumers.ts";
import { dispatchPage } from "../../shared/pipeline/dispatch.ts";
import { dispatchMessageSchema } from "../../shared/schemas/job.ts";

export const handler = sqsBatch(
  dispatchMessageSchema,
  eachMessage(({ body }) => dispatchPage(body), { failure: "Dispatch failed; page will be retried" }),
);

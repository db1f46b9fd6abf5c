/** A short support call and LLM metric definitions for the judge's tests against the fake server. */
import type { Call } from "../../shared/schemas/call.ts";
import type { MetricDefinition } from "../../shared/schemas/metric.ts";

export const judgedCall: Call = {
  id: "call-1",
  createdAt: "2026-11-01T09:00:00Z",
  agentId: "agent",
  callDirection: "INBOUND",
  interfaceType: "PHONE",
  startedAt: "2026-11-01T09:00:00Z",
  properties: {},
  transcript: [
    { role: "AGENT", text: "Northwind Bank, how can I help?", startOffsetMs: 0, endOffsetMs: 2000 },
    { role: "CUSTOMER", text: "I was charged twice on my billing statement.", startOffsetMs: 2500, endOffsetMs: 5000 },
    { role: "AGENT", text: "I'm sorry. I can issue a refund today.", startOffsetMs: 5600, endOffsetMs: 8000 },
    { role: "CUSTOMER", text: "A refund would be great, thanks.", startOffsetMs: 8400, endOffsetMs: 10_000 },
  ],
};

export const judgedDefinition = (overrides: Partial<MetricDefinition>): MetricDefinition => ({
  id: "m1",
  version: 1,
  slug: "m",
  name: "Metric",
  description: "",
  calculationType: "LLM_JUDGE",
  outputType: "BOOLEAN",
  supportedContexts: ["CALL"],
  createdAt: "2026-11-01T00:00:00Z",
  updatedAt: "2026-11-01T00:00:00Z",
  ...overrides,
});

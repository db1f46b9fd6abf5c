import { describe, expect, it } from "vitest";
import { type ReconcileSettings, repairFor, type StoredJob } from "../../shared/pipeline/reconcile.ts";

const now = new Date("2026-01-02T12:00:00.000Z");
const settings: ReconcileSettings = { now, stallSeconds: 900, ceilingSeconds: 86_400 };
const ago = (seconds: number) => new Date(now.getTime() - seconds * 1000).toISOString();
const job = (fields: Partial<StoredJob> = {}): StoredJob => ({
  entity: "Job",
  orgId: "o1",
  id: "j1",
  status: "PROCESSING",
  totalItems: 6,
  completedItems: 2,
  failedItems: 1,
  metrics: [],
  pageCount: 2,
  createdAt: ago(3600),
  updatedAt: ago(1000),
  ...fields,
});

describe("repairFor", () => {
  it("leaves a job that made progress within the stall threshold alone, whatever its state", () => {
    for (const status of ["PENDING", "PROCESSING", "COMPLETED"] as const) {
      expect(repairFor(job({ status, updatedAt: ago(899) }), settings)).toBeUndefined();
    }
    expect(repairFor(job({ completedItems: 6, failedItems: 0, updatedAt: ago(10) }), settings)).toBeUndefined();
    expect(repairFor(job({ createdAt: ago(90_000), updatedAt: ago(10) }), settings)).toBeUndefined();
  });

  it("forgets a marker whose job does not exist and closes one whose job ended", () => {
    expect(repairFor(undefined, settings)).toBe("forget");
    for (const status of ["COMPLETED", "FAILED", "CANCELED"] as const) {
      expect(repairFor(job({ status }), settings)).toBe("close");
    }
  });

  it("finalizes a stalled PROCESSING job whose counters are complete, even past the ceiling", () => {
    expect(repairFor(job({ completedItems: 5, failedItems: 1 }), settings)).toBe("finalize");
    expect(repairFor(job({ completedItems: 0, failedItems: 6, createdAt: ago(90_000) }), settings)).toBe("finalize");
  });

  it("re-dispatches a stalled PENDING job and re-sends items of a stalled PROCESSING one", () => {
    expect(repairFor(job({ status: "PENDING", completedItems: 0, failedItems: 0 }), settings)).toBe("redispatch");
    expect(repairFor(job(), settings)).toBe("resend");
  });

  it("expires what is left of a stalled job created longer ago than the ceiling", () => {
    expect(repairFor(job({ createdAt: ago(86_401) }), settings)).toBe("expire");
    expect(repairFor(job({ status: "PENDING", createdAt: ago(86_401) }), settings)).toBe("expire");
    expect(repairFor(job({ createdAt: ago(86_399) }), settings)).toBe("resend");
  });
});

import { describe, expect, it } from "vitest";
import { chunked, mapLimit, sleep } from "../../shared/concurrency.ts";

describe("mapLimit", () => {
  it("keeps the items' order and never runs more than the limit at once", async () => {
    let inFlight = 0;
    let peak = 0;
    const results = await mapLimit([30, 5, 20, 1, 10, 2, 8], 3, async (ms) => {
      inFlight++;
      peak = Math.max(peak, inFlight);
      await sleep(ms);
      inFlight--;
      return ms * 2;
    });
    expect(results).toEqual([60, 10, 40, 2, 20, 4, 16]);
    expect(peak).toBe(3);
  });

  it("rejects when a task fails, and handles no items", async () => {
    await expect(
      mapLimit([1, 2, 3], 2, async (n) => {
        if (n === 2) throw new Error("task 2 failed");
        return n;
      }),
    ).rejects.toThrow("task 2 failed");
    expect(await mapLimit([], 4, async () => 1)).toEqual([]);
  });
});

describe("chunked", () => {
  it("splits in order, the last chunk holding the rest", () => {
    expect(chunked([1, 2, 3, 4, 5], 2)).toEqual([[1, 2], [3, 4], [5]]);
    expect(chunked([], 3)).toEqual([]);
  });
});

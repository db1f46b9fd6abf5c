import { afterEach, beforeEach, describe, expect, it, vi } from "vitest";
import { resetConfig } from "../../shared/config.ts";
import { retryDelaySeconds } from "../../shared/pipeline/evaluate.ts";

describe("retry delays of work items", () => {
  beforeEach(() => {
    vi.stubEnv("RETRY_BASE_DELAY_SECONDS", "5");
    vi.stubEnv("RETRY_MAX_DELAY_SECONDS", "300");
    resetConfig();
  });
  afterEach(() => {
    vi.unstubAllEnvs();
    vi.restoreAllMocks();
    resetConfig();
  });

  it("doubles per attempt from the base, jittered between half and all of it", () => {
    vi.spyOn(Math, "random").mockReturnValue(0.999_999);
    expect([1, 2, 3, 4, 5].map((attempt) => retryDelaySeconds(attempt))).toEqual([5, 10, 20, 40, 80]);
    vi.spyOn(Math, "random").mockReturnValue(0);
    expect([1, 2, 3, 4, 5].map((attempt) => retryDelaySeconds(attempt))).toEqual([3, 5, 10, 20, 40]);
  });

  it("stops growing at the configured maximum", () => {
    vi.spyOn(Math, "random").mockReturnValue(0.999_999);
    expect(retryDelaySeconds(7)).toBe(300);
    expect(retryDelaySeconds(30)).toBe(300);
  });

  it("never retries sooner than the provider's retry-after, even above the maximum, up to SQS's 900 s", () => {
    vi.spyOn(Math, "random").mockReturnValue(0);
    expect(retryDelaySeconds(1, 30)).toBe(30);
    expect(retryDelaySeconds(4, 2)).toBe(20);
    expect(retryDelaySeconds(1, 600)).toBe(600);
    expect(retryDelaySeconds(1, 3600)).toBe(900);
  });
});

/**
 * The shared LLM limiter on DynamoDB Local: two evaluators (two limiters, one table) share
 * one schedule at the rate the API's headers report; a 429 shrinks the share once however
 * many see it and pauses the schedule for its retry-after; headroom grows the share back; a
 * limit the API changes takes effect; usage beyond the estimate is charged afterwards.
 * Clocks are injected: nothing here waits for real.
 */
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { type Admission, SharedRateLimiter } from "../../shared/llm/rate-limiter.ts";
import { type RateLimitStore, rateLimitStore } from "../../shared/store/llm-rate-limit.ts";
import { startTestStack, type TestStack } from "../support/stack.ts";

const headers = (limits: { rpm?: number; itpm?: number; otpm?: number }, remainingShare = 1) => {
  const entries: [string, string][] = [];
  for (const [name, limit] of [
    ["requests", limits.rpm],
    ["input-tokens", limits.itpm],
    ["output-tokens", limits.otpm],
  ] as const) {
    if (!limit) continue;
    entries.push([`anthropic-ratelimit-${name}-limit`, String(limit)]);
    entries.push([`anthropic-ratelimit-${name}-remaining`, String(Math.floor(limit * remainingShare))]);
  }
  return new Headers(entries);
};

/** An answer's usage; with the estimate its request was admitted with, it corrects the estimates to come. */
const usage = (inputTokens: number, outputTokens: number, estimatedInputTokens?: number) => ({
  inputTokens,
  outputTokens,
  cacheCreationInputTokens: 0,
  estimatedInputTokens,
});

/** Evaluators sharing one clock; each records the waits it was told to make. */
function evaluators(count: number, start = 1_000_000) {
  const clock = { now: start };
  const waits: number[][] = Array.from({ length: count }, () => []);
  const limiters = waits.map(
    (own) =>
      new SharedRateLimiter(
        {
          store: rateLimitStore,
          now: () => clock.now,
          wait: async (ms) => {
            own.push(ms);
          },
        },
        { target: 1, maxWaitMs: 2_000, burstMs: 0, intervalMs: 5_000 },
      ),
  );
  return { clock, waits, limiters };
}

const admitted = (admission: Admission) => (admission.admitted ? admission.waitedMs : undefined);

/** The limiter's store, recording which of its calls each admission makes. */
function countingStore() {
  const calls: string[] = [];
  const store = Object.fromEntries(
    Object.entries(rateLimitStore).map(([name, call]) => [
      name,
      (...args: unknown[]) => {
        calls.push(name);
        return (call as (...a: unknown[]) => unknown)(...args);
      },
    ]),
  ) as RateLimitStore;
  return { store, calls };
}

const batch = { requests: 5, inputTokens: 5, outputTokens: 5 };
const orgA = { tenant: "org-a", bulk: false };

/**
 * At 600 requests a minute (100 ms a request), another evaluator fills the schedule 3.1 s
 * ahead; `counted`, a new evaluator on the same clock, records its store calls in `calls`.
 */
async function scheduleFilledAhead(model: string) {
  const { clock, limiters } = evaluators(1);
  const [other] = limiters as [SharedRateLimiter];
  await other.answered(model, headers({ rpm: 600 }), usage(0, 0));
  clock.now += 60_000;
  // It holds nothing reserved, so its batch (and the answer it had not reserved) may reach past 2 s.
  await other.admit(model, { requests: 30, inputTokens: 30, outputTokens: 30 });
  const { store, calls } = countingStore();
  const counted = new SharedRateLimiter(
    { store, now: () => clock.now, wait: async () => {} },
    { target: 1, maxWaitMs: 2_000, burstMs: 0, intervalMs: 5_000 },
  );
  return { clock, counted, calls };
}

describe("the shared LLM limiter", () => {
  let stack: TestStack;
  beforeAll(async () => {
    stack = await startTestStack();
  });
  afterAll(() => stack?.stop());

  it("holds back nothing before a limit is known, then schedules both evaluators' batches at the reported rate", async () => {
    const model = "model-schedule";
    const { clock, limiters } = evaluators(2);
    const [a, b] = limiters as [SharedRateLimiter, SharedRateLimiter];
    expect(admitted(await a.admit(model, { requests: 1, inputTokens: 10, outputTokens: 10 }))).toBe(0);
    expect(admitted(await b.admit(model, { requests: 1, inputTokens: 10, outputTokens: 10 }))).toBe(0);

    // 600 requests per minute: a request takes 100 ms of the schedule.
    await a.answered(model, headers({ rpm: 600 }), usage(10, 10));
    await a.answered(model, headers({ rpm: 600 }), usage(10, 10));
    clock.now += 10_000;
    const waits = [];
    for (let batch = 0; batch < 4; batch++) {
      const limiter = batch % 2 === 0 ? a : b;
      waits.push(admitted(await limiter.admit(model, { requests: 5, inputTokens: 50, outputTokens: 50 })));
    }
    // a's first batch also pays for the two answers nothing had reserved (7 requests); b takes
    // the limits the table holds: back to back.
    expect(waits).toEqual([0, 700, 1200, 1700]);
    // The next batch would start 2.2 s from now: beyond the wait allowed, it is deferred.
    const deferred = await b.admit(model, { requests: 5, inputTokens: 50, outputTokens: 50 });
    expect(deferred).toEqual({ admitted: false, retryInMs: 2200 - 1500 });
    clock.now += 3_000;
    expect(admitted(await b.admit(model, { requests: 5, inputTokens: 50, outputTokens: 50 }))).toBe(0);
  });

  it("charges tokens at the most restrictive limit, and usage beyond the estimate to the next batch", async () => {
    const model = "model-tokens";
    const { clock, limiters } = evaluators(1);
    const [a] = limiters as [SharedRateLimiter];
    await a.answered(model, headers({ rpm: 6000, itpm: 60_000, otpm: 6_000 }), usage(0, 0));
    clock.now += 60_000;
    await a.admit(model, { requests: 1, inputTokens: 100, outputTokens: 100 });
    // Output binds: 100 tokens take 1,000 ms at 6,000 a minute.
    const second = await a.admit(model, { requests: 1, inputTokens: 100, outputTokens: 100 });
    expect(admitted(second)).toBe(1000);
    // The two answers wrote 400 output tokens each: 600 more than reserved, charged next.
    await a.answered(model, headers({ rpm: 6000, itpm: 60_000, otpm: 6_000 }), usage(100, 400));
    await a.answered(model, headers({ rpm: 6000, itpm: 60_000, otpm: 6_000 }), usage(100, 400));
    clock.now += 10_000;
    await a.admit(model, { requests: 1, inputTokens: 0, outputTokens: 0 });
    const state = await rateLimitStore.read(model);
    expect(state?.nextFreeAt).toBe(clock.now + 6_000);
  });

  it("shrinks the share once for a burst of 429s, pauses for retry-after, and grows back while there is headroom", async () => {
    const model = "model-aimd";
    const { clock, limiters } = evaluators(2);
    const [a, b] = limiters as [SharedRateLimiter, SharedRateLimiter];
    const limited = headers({ rpm: 600 }, 0);
    await a.answered(model, headers({ rpm: 600 }), usage(1, 1));
    await a.rateLimited(model, limited, 3);
    await b.rateLimited(model, limited, 3);
    await a.rateLimited(model, limited, 3);
    expect((await rateLimitStore.read(model))?.scale).toBeCloseTo(0.7);
    // The schedule waits out the retry-after: nothing starts within the next 3 s.
    expect(await b.admit(model, { requests: 1, inputTokens: 1, outputTokens: 1 })).toEqual({
      admitted: false,
      retryInMs: 3000 - 1500,
    });

    // Another burst after the interval shrinks it again.
    clock.now += 6_000;
    await b.rateLimited(model, limited, 1);
    expect((await rateLimitStore.read(model))?.scale).toBeCloseTo(0.49);
    // At 0.49 of 600 a minute, a request takes 204 ms: a's first batch (with the answer it had
    // not reserved, 2 requests) holds the schedule 408 ms, though a last saw a share of 0.7.
    clock.now += 6_000;
    expect(admitted(await a.admit(model, { requests: 1, inputTokens: 1, outputTokens: 1 }))).toBe(0);
    const second = admitted(await a.admit(model, { requests: 1, inputTokens: 1, outputTokens: 1 }));
    expect(second).toBeCloseTo((2 * 60_000) / (600 * 0.49), 3);

    // Headroom: the share grows by a step per interval, whoever sees it.
    await a.answered(model, headers({ rpm: 600 }, 0.5), usage(1, 1));
    await b.answered(model, headers({ rpm: 600 }, 0.5), usage(1, 1));
    expect((await rateLimitStore.read(model))?.scale).toBeCloseTo(0.54);
    clock.now += 6_000;
    await b.answered(model, headers({ rpm: 600 }, 0.5), usage(1, 1));
    expect((await rateLimitStore.read(model))?.scale).toBeCloseTo(0.59);
    // No headroom left: it stays.
    clock.now += 6_000;
    await a.answered(model, headers({ rpm: 600 }, 0.05), usage(1, 1));
    expect((await rateLimitStore.read(model))?.scale).toBeCloseTo(0.59);
  });

  it("leaves a tenant with nothing reserved room beyond a busy tenant's and bulk work's reach", async () => {
    const model = "model-fair";
    const { clock, limiters } = evaluators(2);
    const [a, b] = limiters as [SharedRateLimiter, SharedRateLimiter];
    await a.answered(model, headers({ rpm: 600 }), usage(0, 0));
    clock.now += 60_000;
    // 500 ms a batch (a's first also pays the answer it had not reserved): a's first may reach
    // 2 s ahead; once a holds reservations, only 1 s, and beyond it, it comes back later for
    // its turn where the schedule is free (within the second before it).
    const waitsOfA = [];
    for (let i = 0; i < 3; i++) waitsOfA.push(await a.admit(model, batch, orgA));
    expect(waitsOfA.map(admitted)).toEqual([0, 600, undefined]);
    expect(waitsOfA[2]).toEqual({ admitted: false, retryInMs: 1100 - 1000, turnAt: clock.now + 1100 });
    // The same organization's bulk work has the back seat too (its own queue of turns).
    expect(await b.admit(model, batch, { tenant: "org-a:bulk", bulk: true })).toEqual({
      admitted: false,
      retryInMs: 1100 - 1000,
      turnAt: clock.now + 1100,
    });
    // Another organization, holding nothing, is admitted behind a's reservations…
    expect(admitted(await b.admit(model, batch, { tenant: "org-b", bulk: false }))).toBe(1100);
    // …and is busy itself from then on.
    expect(await b.admit(model, batch, { tenant: "org-b", bulk: false })).toEqual({
      admitted: false,
      retryInMs: 1600 - 1000,
      turnAt: clock.now + 1600,
    });
  });

  it("gives a backlog turns: each deferred batch comes back once, in order, and the schedule stays full", async () => {
    const model = "model-turns";
    const { clock, limiters } = evaluators(2);
    const [a, b] = limiters as [SharedRateLimiter, SharedRateLimiter];
    await a.answered(model, headers({ rpm: 600 }), usage(0, 0));
    clock.now += 60_000;
    const start = clock.now;
    // 40 batches of 5 requests (500 ms of the schedule each) arrive at once, as many
    // evaluators would take them from the queue: 20 s of work.
    const pending: { dueAt: number; turnAt?: number }[] = [];
    const startedAt: number[] = [];
    let admissions = 0;
    const run = async (limiter: SharedRateLimiter, turnAt?: number) => {
      admissions++;
      const admission = await limiter.admit(model, batch, orgA, turnAt);
      if (admission.admitted) startedAt.push(clock.now + admission.waitedMs);
      else pending.push({ dueAt: clock.now + admission.retryInMs, turnAt: admission.turnAt });
    };
    for (let i = 0; i < 40; i++) await run(i % 2 === 0 ? a : b);
    // The deferred come back when they said they would (whole seconds, as SQS delays are).
    while (pending.length > 0 && clock.now < start + 60_000) {
      clock.now += 250;
      const due = pending.filter(({ dueAt }) => Math.ceil(dueAt / 1000) * 1000 <= clock.now);
      for (const entry of due) pending.splice(pending.indexOf(entry), 1);
      for (const [index, { turnAt }] of due.entries()) await run(index % 2 === 0 ? a : b, turnAt);
    }
    expect(startedAt).toHaveLength(40);
    // Each batch was deferred at most once: at most 80 admissions for 40 batches.
    expect(admissions).toBeLessThanOrEqual(80);
    // The schedule stayed full: the last batch started within a second of 19.5 s (+ the
    // 100 ms answer a paid for).
    expect(Math.max(...startedAt) - start).toBeLessThanOrEqual(19_600 + 1_000);
  });

  it("keeps an admission to few store round trips: a batch back for its turn reads no tenant note, a full schedule answers its own state", async () => {
    const model = "model-round-trips";
    const { clock, counted, calls } = await scheduleFilledAhead(model);
    const deferred = await counted.admit(model, batch, orgA);
    expect(deferred).toMatchObject({ admitted: false, turnAt: clock.now + 3_100 });
    // Its read of the model's state, the tenant's note, the reservation the full schedule
    // refused (answering where the schedule is), and the turn: no restart, no second read.
    expect(calls).toEqual(["read", "tenantState", "reserve", "queueTurn"]);
    calls.length = 0;
    clock.now += 2_500;
    // Back for its turn: the tenant's note decides nothing for it, so it is not read.
    const turnAt = deferred.admitted ? undefined : deferred.turnAt;
    expect(admitted(await counted.admit(model, batch, orgA, turnAt))).toBe(600);
    expect(calls).toEqual(["reserve", "markTenant"]);
  });

  it("defers a tenant's batch with one write when the evaluator saw its queue run beyond reach, and reads the note when it may not", async () => {
    const model = "model-known-queue";
    const { clock, counted, calls } = await scheduleFilledAhead(model);
    expect(await counted.admit(model, batch, orgA)).toMatchObject({ turnAt: clock.now + 3_100 });
    // The tenant's queue now runs 3.6 s ahead, and queues only grow: the next batch takes its
    // turn without reading the note.
    calls.length = 0;
    expect(await counted.admit(model, batch, orgA)).toMatchObject({ turnAt: clock.now + 3_600 });
    expect(calls).toEqual(["queueTurn"]);
    // Once what it saw no longer decides (the queue may have ended), it reads the note again.
    calls.length = 0;
    clock.now += 3_000;
    await counted.admit(model, batch, orgA);
    expect(calls[0]).toBe("tenantState");
  });

  it("starts a new evaluator from the calibration of estimates the others learned", async () => {
    const model = "model-calibration";
    const { clock, limiters } = evaluators(2);
    const [a, b] = limiters as [SharedRateLimiter, SharedRateLimiter];
    // 60,000 input tokens a minute: 1 ms of the schedule per token.
    await a.answered(model, headers({ itpm: 60_000 }), usage(0, 0));
    clock.now += 60_000;
    // a's requests use three times the input tokens their text suggested.
    await a.admit(model, { requests: 1, inputTokens: 100 });
    await a.answered(model, headers({ itpm: 60_000 }), usage(300, 50, 100));
    clock.now += 60_000;
    // b has seen no answer yet: it charges a's ratio all the same.
    await b.admit(model, { requests: 1, inputTokens: 100 });
    expect((await rateLimitStore.read(model))?.nextFreeAt).toBe(clock.now + 300);
  });

  it("learns output tokens per request from the first answer, not from the default it starts with", async () => {
    const model = "model-calibration-output";
    const { clock, limiters } = evaluators(2);
    const [a, b] = limiters as [SharedRateLimiter, SharedRateLimiter];
    // 6,000 output tokens a minute: 10 ms of the schedule per token. A new stack's first answer
    // wrote 70; b, a new container, charges that, not a blend with the 400 assumed before it.
    await a.answered(model, headers({ otpm: 6_000 }), usage(100, 70, 100));
    clock.now += 60_000;
    await b.admit(model, { requests: 1, inputTokens: 0 });
    expect((await rateLimitStore.read(model))?.nextFreeAt).toBe(clock.now + 700);
  });

  it("compares each answer with its own request's estimate, whatever was admitted and never answered", async () => {
    const model = "model-calibration-own-estimate";
    const { clock, limiters } = evaluators(1);
    const [a] = limiters as [SharedRateLimiter];
    await a.answered(model, headers({ itpm: 60_000 }), usage(0, 0));
    clock.now += 60_000;
    // A hundred small requests admitted and never answered (handed back, their job stopped),
    // then one larger request answered with the tokens its text suggested: nothing to correct.
    await a.admit(model, { requests: 100, inputTokens: 100 * 50 });
    await a.admit(model, { requests: 1, inputTokens: 800 });
    await a.answered(model, headers({ itpm: 60_000 }), usage(800, 50, 800));
    clock.now += 60_000;
    await a.admit(model, { requests: 1, inputTokens: 100 });
    expect((await rateLimitStore.read(model))?.nextFreeAt).toBe(clock.now + 100);
  });

  it("learns that calibration from the first answers, before any limit is known", async () => {
    const model = "model-calibration-first";
    const { clock, limiters } = evaluators(2);
    const [a, b] = limiters as [SharedRateLimiter, SharedRateLimiter];
    // A new stack's first batch runs unscheduled; its answer reports the limits and the usage.
    expect(admitted(await a.admit(model, { requests: 1, inputTokens: 100 }))).toBe(0);
    await a.answered(model, headers({ itpm: 60_000 }), usage(300, 50, 100));
    clock.now += 60_000;
    await b.admit(model, { requests: 1, inputTokens: 100 });
    expect((await rateLimitStore.read(model))?.nextFreeAt).toBe(clock.now + 300);
  });

  it("takes a limit the API changes mid-way", async () => {
    const model = "model-change";
    const { clock, limiters } = evaluators(2);
    const [a, b] = limiters as [SharedRateLimiter, SharedRateLimiter];
    await a.answered(model, headers({ rpm: 6000 }), usage(1, 1));
    clock.now += 60_000;
    await b.admit(model, { requests: 10, inputTokens: 1, outputTokens: 1 });
    expect((await rateLimitStore.read(model))?.nextFreeAt).toBe(clock.now + 100);
    // The account's limit drops to 600 a minute: a's next answer says so, and b schedules by it.
    await a.answered(model, headers({ rpm: 600 }), usage(1, 1));
    clock.now += 60_000;
    await b.admit(model, { requests: 10, inputTokens: 1, outputTokens: 1 });
    expect((await rateLimitStore.read(model))?.nextFreeAt).toBe(clock.now + 1000);
  });
});

/**
 * The LLM limiter every evaluator shares: it keeps the stack's model traffic just under the
 * Anthropic account's limits, across concurrent Lambda invocations.
 *
 * The schedule is a virtual clock in DynamoDB (`nextFreeAt`, generic cell rate): a batch of
 * model calls reserves the time its requests and tokens take at the allowed rate, in one
 * conditional write per batch (so a few writes per second at any throughput), and runs when
 * its slot comes, waiting at most `maxWaitMs`; a batch whose slot lies further ahead is
 * deferred on the queue instead (waiting in Lambda would bill for it), with a turn in its
 * tenant's queue of deferred batches, so a backlog comes back about once per batch, at the
 * pace the schedule serves it, not all at once and again and again. The allowed rate is the
 * limits the API reports in its `anthropic-ratelimit-*-limit` headers × `target` × `scale`;
 * `scale` adapts (AIMD): × `decreaseFactor` on a 429 (once per `intervalMs`, however many
 * requests see it), + `increaseStep` per `intervalMs` while answers show headroom. A 429's
 * `retry-after` pauses the schedule. Estimates (input tokens from the request's text, scaled
 * by how such estimates compared with the usage answers reported in the last minutes; output
 * tokens from the answers seen so far) are corrected by the usage answers report: usage
 * beyond them is charged to this container's next reservation. What a container learns of
 * its estimates is noted on the model's item every 10 s, and a new container starts from it
 * (at scale most containers are new, and each would otherwise over- or under-charge its first
 * batches). Before any limit is known, nothing is held back but pauses (a read per batch, no
 * write): the event source's concurrency bounds the first requests.
 *
 * Fair share: a tenant (a work queue group) already holding reservations, and bulk work, may
 * only reserve within the nearer half of `maxWaitMs`, so a tenant with nothing reserved, or
 * an API job, always finds room in the farther half, however large the others' backlog. Each
 * admitted batch notes its tenant's last reservation (a second small write).
 */
import { sleep } from "../concurrency.ts";
import type { RateLimitState, RateLimitStore, RateLimits, TenantState } from "../store/llm-rate-limit.ts";

/** What a batch of model calls needs. */
export interface Demand {
  requests: number;
  /** Uncached input tokens (input plus cache writes): cache reads do not count toward the limit. */
  inputTokens: number;
  /** Output tokens; estimated by the limiter when not given. */
  outputTokens?: number;
}

/**
 * Whose batch it is: a tenant already holding reservations, or bulk work (backfills,
 * policies), may only reserve the nearer half of the wait allowed, so a tenant with nothing
 * reserved, or an API job, finds room in the farther half whatever the others' backlog.
 */
export interface Share {
  tenant: string;
  bulk: boolean;
  /**
   * False for a request that is refused rather than deferred when not admitted (the
   * playground's): it takes no turn and does not wait behind the tenant's queue.
   */
  takesTurns?: boolean;
}

/**
 * Admitted: the reservation started `waitedMs` after the call and spans `spanMs` of the
 * schedule, over which the batch spreads its requests. Not admitted: try again in `retryInMs`,
 * holding `turnAt` (the batch's turn in its tenant's queue) when given.
 */
export type Admission =
  | { admitted: true; waitedMs: number; spanMs: number }
  | { admitted: false; retryInMs: number; turnAt?: number };

export interface RateLimiterSettings {
  /** The share of the account's limits the service may use. */
  target: number;
  /** Longest wait for a slot inside an invocation; beyond it the batch is deferred. */
  maxWaitMs: number;
  /** Unused time an idle schedule lends to the next batch (a small burst). */
  burstMs: number;
  intervalMs: number;
  decreaseFactor: number;
  increaseStep: number;
  minScale: number;
  /** Output tokens per request assumed before any answer was seen. */
  initialOutputTokens: number;
}

export const DEFAULT_RATE_LIMITER_SETTINGS: RateLimiterSettings = {
  target: 0.95,
  maxWaitMs: 2_000,
  burstMs: 1_000,
  intervalMs: 5_000,
  decreaseFactor: 0.7,
  increaseStep: 0.05,
  minScale: 0.05,
  initialOutputTokens: 400,
};

/** Answers with less than this share of a limit left show no headroom to grow into. */
const HEADROOM_SHARE = 0.1;
const MAX_RESERVE_TRIES = 4;
const MAX_TENANTS_SEEN = 1_000;
const tenantKey = (model: string, tenant: string) => `${model}\n${tenant}`;
const DIMENSIONS = ["requests", "inputTokens", "outputTokens"] as const;

interface ModelState {
  state?: RateLimitState;
  /** Usage answers reported beyond (or short of) what was reserved: charged to the next reservation. */
  owed: { requests: number; inputTokens: number; outputTokens: number };
  /** Output tokens per request: unknown until the first answer, or a calibration others noted. */
  outputPerRequest?: number;
  lastGrowthTry: number;
  /** Input tokens estimated and reported for answered requests, decayed sums: their ratio corrects the estimates. */
  inputEstimated: number;
  inputReported: number;
  inputSumsAt: number;
  /** Answers seen: until the first, the container's estimates start from what others learned. */
  answers: number;
  calibrationNotedAt: number;
}

/** How often a container records what it learned of its estimates, for new containers. */
const CALIBRATION_NOTE_INTERVAL_MS = 10_000;
/** The weight (estimated input tokens, about two batches) a learned correction starts with. */
const CALIBRATION_WEIGHT = 20_000;

/** Half-life of the sums behind the input estimates' correction. */
const INPUT_CORRECTION_HALF_LIFE_MS = 60_000;

/** Decays the sums to `now`; the ratio of what answers reported to what was estimated (1 until both are known). */
function inputCorrection(local: ModelState, now: number): number {
  const decay = 0.5 ** (Math.max(0, now - local.inputSumsAt) / INPUT_CORRECTION_HALF_LIFE_MS);
  local.inputEstimated *= decay;
  local.inputReported *= decay;
  local.inputSumsAt = now;
  if (local.inputEstimated <= 0 || local.inputReported <= 0) return 1;
  return Math.min(10, Math.max(0.1, local.inputReported / local.inputEstimated));
}

/**
 * A container that has seen no answer yet starts from the calibration others recorded, as if
 * it had estimated a couple of batches itself: its own answers take over within minutes.
 */
function adoptCalibration(local: ModelState, now: number) {
  const calibration = local.state?.calibration;
  if (!calibration || local.answers > 0) return;
  local.outputPerRequest = calibration.outputPerRequest;
  local.inputEstimated = CALIBRATION_WEIGHT;
  local.inputReported = CALIBRATION_WEIGHT * calibration.inputCorrection;
  local.inputSumsAt = now;
}

const LIMIT_HEADERS: [keyof RateLimits, string][] = [
  ["requestsPerMinute", "requests"],
  ["inputTokensPerMinute", "input-tokens"],
  ["outputTokensPerMinute", "output-tokens"],
];

/** The limits an answer's `anthropic-ratelimit-*-limit` headers report; undefined when it has none. */
export function limitsFromHeaders(headers: Headers | undefined): RateLimits | undefined {
  const limits: RateLimits = {};
  for (const [field, name] of LIMIT_HEADERS) {
    const value = Number(headers?.get(`anthropic-ratelimit-${name}-limit`));
    if (Number.isFinite(value) && value > 0) limits[field] = value;
  }
  return Object.keys(limits).length > 0 ? limits : undefined;
}

/** Whether every limit the headers report still has a fair share left. */
function hasHeadroom(headers: Headers | undefined): boolean {
  return LIMIT_HEADERS.every(([, name]) => {
    const limit = Number(headers?.get(`anthropic-ratelimit-${name}-limit`));
    const remaining = Number(headers?.get(`anthropic-ratelimit-${name}-remaining`));
    return !(limit > 0) || !Number.isFinite(remaining) || remaining >= limit * HEADROOM_SHARE;
  });
}

const knowsLimits = (state: RateLimitState | undefined) =>
  state !== undefined && LIMIT_HEADERS.some(([field]) => (state.limits[field] ?? 0) > 0);

const sameLimits = (a: RateLimits, b: RateLimits) =>
  LIMIT_HEADERS.every(([field]) => (a[field] ?? 0) === (b[field] ?? 0));

/** Milliseconds of the schedule `demand` takes at the allowed rate (0 when no limit is known). */
export function costMs(demand: Required<Demand>, state: RateLimitState | undefined, target: number): number {
  if (!state) return 0;
  const rate = target * state.scale;
  const amounts: [number | undefined, number][] = [
    [state.limits.requestsPerMinute, demand.requests],
    [state.limits.inputTokensPerMinute, demand.inputTokens],
    [state.limits.outputTokensPerMinute, demand.outputTokens],
  ];
  return Math.max(0, ...amounts.map(([limit, amount]) => (limit ? (amount * 60_000) / (limit * rate) : 0)));
}

export interface UsageReport {
  inputTokens: number;
  outputTokens: number;
  cacheCreationInputTokens: number;
  /**
   * The input tokens the request was admitted with (its text's estimate, `modelDemand`):
   * each answer is compared with its own request's estimate. Absent for requests the limiter
   * was not asked about (a corrective retry, the playground's).
   */
  estimatedInputTokens?: number;
}

export interface RateLimiterDeps {
  store: RateLimitStore;
  now?: () => number;
  wait?: (ms: number) => Promise<void>;
}

export class SharedRateLimiter {
  readonly #store: RateLimitStore;
  readonly #settings: RateLimiterSettings;
  readonly #now: () => number;
  readonly #wait: (ms: number) => Promise<void>;
  readonly #models = new Map<string, ModelState>();
  /** Tenant notes (by model and tenant) as this container last saw them. */
  readonly #tenants = new Map<string, TenantState>();

  constructor({ store, now = Date.now, wait = sleep }: RateLimiterDeps, settings: Partial<RateLimiterSettings> = {}) {
    this.#store = store;
    this.#settings = { ...DEFAULT_RATE_LIMITER_SETTINGS, ...settings };
    this.#now = now;
    this.#wait = wait;
  }

  #model(model: string): ModelState {
    let found = this.#models.get(model);
    if (!found) {
      found = {
        owed: { requests: 0, inputTokens: 0, outputTokens: 0 },
        lastGrowthTry: 0,
        inputEstimated: 0,
        inputReported: 0,
        inputSumsAt: this.#now(),
        answers: 0,
        calibrationNotedAt: 0,
      };
      this.#models.set(model, found);
    }
    return found;
  }

  /**
   * Reserves the schedule for `demand`: admitted (after waiting for its slot, at most
   * `maxWaitMs`), or not, with how long until a slot may be free. A tenant's batch that is not
   * admitted takes a turn in the tenant's queue and comes back with it (`turnAt`): turns spread
   * a backlog's returns at the rate the schedule serves it, so each batch comes back about
   * once, and a batch holding its turn goes ahead of the tenant's batches that hold none.
   */
  async admit(model: string, demand: Demand, share?: Share, turnAt?: number): Promise<Admission> {
    const local = this.#model(model);
    // A state without limits may be stale: another evaluator may have learned them since.
    if (!knowsLimits(local.state)) {
      local.state = await this.#store.read(model);
      adoptCalibration(local, this.#now());
    }
    if (!knowsLimits(local.state)) return this.#admitUnscheduled(local);
    // A batch whose turn has come may reach as far as any: its tenant's note decides nothing for it.
    const tenant = share && turnAt === undefined ? await this.#tenantState(model, share) : undefined;
    const horizonMs = turnAt === undefined ? this.#horizonFor(share, tenant) : this.#settings.maxWaitMs;
    const charged = this.#estimated(local, demand);
    if (share && turnAt !== undefined && turnAt > this.#now() + horizonMs) {
      // Back before its turn (SQS delays a message 15 minutes at most): it waits on.
      return this.#untilTurn(turnAt);
    }
    const queues = share !== undefined && share.takesTurns !== false;
    if (queues && turnAt === undefined && (tenant?.queuedUntil ?? 0) > this.#now() + horizonMs) {
      return this.#takeTurn(model, local, share, charged);
    }
    // Usage answers reported beyond what was reserved is charged now; a surplus is kept to absorb
    // later excess. Taken before any await, so concurrent batches of this container charge it once.
    const extra = {
      requests: Math.max(0, local.owed.requests),
      inputTokens: Math.max(0, local.owed.inputTokens),
      outputTokens: Math.max(0, local.owed.outputTokens),
    };
    for (const key of DIMENSIONS) local.owed[key] -= extra[key];
    const total = {
      requests: charged.requests + extra.requests,
      inputTokens: charged.inputTokens + extra.inputTokens,
      outputTokens: charged.outputTokens + extra.outputTokens,
    };
    const placed = await this.#reserve(model, local, total, horizonMs);
    if (!placed) {
      // Nothing reserved: what it was to charge stays owed.
      for (const key of DIMENSIONS) local.owed[key] += extra[key];
      // A batch whose turn came but found the schedule full (others' work, estimates short of
      // the usage) takes a new one: the queue's pace follows what the schedule gives the tenant.
      return queues ? this.#takeTurn(model, local, share, charged) : this.#deferred(local, horizonMs);
    }
    const { reserved, cost } = placed;
    for (const key of DIMENSIONS) {
      // Prepaid for the answers to come; a surplus beyond two batches' worth is forgotten.
      local.owed[key] = Math.max(local.owed[key] - charged[key], -2 * charged[key]);
    }
    // The limits or share changed since this container last saw them: reserve the difference too.
    const shortfall = costMs(total, reserved, this.#settings.target) - cost;
    if (shortfall > 0) local.state = (await this.#store.extend(model, shortfall)) ?? reserved;
    const nextFreeAt = local.state?.nextFreeAt ?? this.#now();
    if (share) this.#sawTenant(tenantKey(model, share.tenant), { reservedUntil: nextFreeAt });
    const waitMs = Math.max(0, (reserved.nextFreeAt ?? nextFreeAt) - cost - this.#now());
    // The note is written while the batch waits for its slot, not before.
    await Promise.all([
      share ? this.#store.markTenant(model, share.tenant, nextFreeAt) : undefined,
      waitMs > 0 ? this.#wait(waitMs) : undefined,
    ]);
    return {
      admitted: true,
      waitedMs: waitMs,
      spanMs: Math.max(cost, costMs(total, local.state, this.#settings.target)),
    };
  }

  /**
   * `share`'s tenant note: as this container last saw it when that already sends the batch to
   * the end of the tenant's queue, else read. Both of its times only grow, so what was seen is
   * a lower bound: a queue seen running beyond the batch's reach runs beyond it still, however
   * busy the tenant has become since (a busy tenant's reach is shorter).
   */
  async #tenantState(model: string, share: Share): Promise<TenantState> {
    const key = tenantKey(model, share.tenant);
    const seen = this.#tenants.get(key);
    if (seen && seen.queuedUntil > this.#now() + this.#horizonFor(share, seen)) return seen;
    return this.#sawTenant(key, await this.#store.tenantState(model, share.tenant));
  }

  /** Keeps the latest of what this container saw of a tenant's note. */
  #sawTenant(key: string, note: Partial<TenantState>): TenantState {
    const seen = this.#tenants.get(key);
    const merged = {
      reservedUntil: Math.max(seen?.reservedUntil ?? 0, note.reservedUntil ?? 0),
      queuedUntil: Math.max(seen?.queuedUntil ?? 0, note.queuedUntil ?? 0),
    };
    // A container serves few tenants at once; one that served very many starts its notes afresh.
    if (!seen && this.#tenants.size >= MAX_TENANTS_SEEN) this.#tenants.clear();
    this.#tenants.set(key, merged);
    return merged;
  }

  /** Estimates from the request's text, scaled by how they compared with what answers reported. */
  #estimated(local: ModelState, demand: Demand): Required<Demand> {
    const correction = inputCorrection(local, this.#now());
    return {
      requests: demand.requests,
      inputTokens: Math.round(demand.inputTokens * correction),
      outputTokens:
        demand.outputTokens ??
        Math.round(demand.requests * (local.outputPerRequest ?? this.#settings.initialOutputTokens)),
    };
  }

  /**
   * Reserves `total` within `horizonMs`, restarting an idle schedule; undefined when the
   * schedule is fuller than that (or kept changing under this container's tries).
   */
  async #reserve(model: string, local: ModelState, total: Required<Demand>, horizonMs: number) {
    // One moment for every try: a schedule another evaluator restarted meanwhile still fits it.
    const now = this.#now();
    const floor = now - this.#settings.burstMs;
    for (let attempt = 0; attempt < MAX_RESERVE_TRIES; attempt++) {
      const cost = costMs(total, local.state, this.#settings.target);
      const tried = await this.#store.reserve(model, cost, floor, now + horizonMs);
      if (tried.placed) {
        local.state = tried.state;
        return { reserved: tried.state, cost };
      }
      // The state that refused it says why: too far ahead, or idle (lagging or never started).
      if (tried.state) local.state = tried.state;
      const nextFreeAt = tried.state?.nextFreeAt;
      if (nextFreeAt !== undefined && nextFreeAt > now + horizonMs) return undefined;
      const restarted = await this.#store.restart(model, cost, floor);
      if (restarted) {
        local.state = restarted;
        return { reserved: restarted, cost };
      }
      // Another evaluator restarted or moved it meanwhile; the next try finds where it is.
    }
    return undefined;
  }

  /**
   * Back when the schedule is well inside the batch's horizon; contended beyond reason (the
   * schedule within reach but every try lost), shortly rather than unscheduled.
   */
  #deferred(local: ModelState, horizonMs: number): Admission {
    const nextFreeAt = local.state?.nextFreeAt ?? 0;
    const retryInMs =
      nextFreeAt > this.#now() + horizonMs ? nextFreeAt - this.#now() - horizonMs * 0.75 : this.#settings.maxWaitMs;
    return { admitted: false, retryInMs };
  }

  /** The batch's turn at the end of its tenant's queue (or where the schedule is free, when it has none). */
  async #takeTurn(model: string, local: ModelState, share: Share, demand: Required<Demand>): Promise<Admission> {
    const now = this.#now();
    const cost = costMs(demand, local.state, this.#settings.target);
    const floor = Math.max(now, local.state?.nextFreeAt ?? now);
    const turnAt = await this.#store.queueTurn(model, share.tenant, cost, floor);
    this.#sawTenant(tenantKey(model, share.tenant), { queuedUntil: turnAt + cost });
    return this.#untilTurn(turnAt);
  }

  /** Back within the second before its turn (SQS delays are whole seconds). */
  #untilTurn(turnAt: number): Admission {
    return { admitted: false, retryInMs: Math.max(0, turnAt - this.#now() - 1_000), turnAt };
  }

  /**
   * No limit known yet: nothing to reserve (and no usage to settle), only a pause a 429 set
   * to respect; a read, no write.
   */
  async #admitUnscheduled(local: ModelState): Promise<Admission> {
    local.owed = { requests: 0, inputTokens: 0, outputTokens: 0 };
    const pausedUntil = local.state?.nextFreeAt ?? 0;
    const waitMs = Math.max(0, pausedUntil - this.#now());
    if (waitMs > this.#settings.maxWaitMs) return this.#deferred(local, this.#settings.maxWaitMs);
    if (waitMs > 0) await this.#wait(waitMs);
    return { admitted: true, waitedMs: waitMs, spanMs: 0 };
  }

  /** The farthest ahead `share`'s batch may be scheduled. */
  #horizonFor(share: Share | undefined, tenant: TenantState | undefined): number {
    const full = this.#settings.maxWaitMs;
    if (!share) return full;
    const busy = share.bulk || (tenant?.reservedUntil ?? 0) > this.#now();
    return busy ? full / 2 : full;
  }

  /** An answer: its usage corrects the estimates; its headers report the limits and the headroom. */
  async answered(model: string, headers: Headers | undefined, usage: UsageReport): Promise<void> {
    const local = this.#model(model);
    local.owed.requests += 1;
    local.owed.inputTokens += usage.inputTokens + usage.cacheCreationInputTokens;
    inputCorrection(local, this.#now());
    // Only an answer that comes with its request's estimate says how estimates compare (the
    // first job's answers too, before any limit is known: its calibration, for the next).
    if (usage.estimatedInputTokens !== undefined && usage.estimatedInputTokens > 0) {
      local.inputEstimated += usage.estimatedInputTokens;
      local.inputReported += usage.inputTokens + usage.cacheCreationInputTokens;
    }
    local.owed.outputTokens += usage.outputTokens;
    // A running mean, weighted to recent answers, from the first answer on (the default it
    // starts with is no measurement to blend in).
    local.outputPerRequest =
      local.outputPerRequest === undefined
        ? usage.outputTokens
        : Math.round(local.outputPerRequest * 0.8 + usage.outputTokens * 0.2);
    local.answers++;
    await this.#learnLimits(model, local, headers);
    await this.#noteCalibration(model, local);
    const now = this.#now();
    const state = local.state;
    if (!state || state.scale >= 1 || !hasHeadroom(headers)) return;
    if (now - local.lastGrowthTry < this.#settings.intervalMs) return;
    local.lastGrowthTry = now;
    const grown = Math.min(1, state.scale + this.#settings.increaseStep);
    local.state =
      (await this.#store.rescale(model, grown, "increase", now, this.#settings.intervalMs)) ??
      (await this.#store.read(model));
  }

  /** A 429: the share shrinks (once per interval across every evaluator) and the schedule waits out `retry-after`. */
  async rateLimited(model: string, headers: Headers | undefined, retryAfterSeconds: number | undefined): Promise<void> {
    const local = this.#model(model);
    await this.#learnLimits(model, local, headers);
    const now = this.#now();
    const scale = local.state?.scale ?? 1;
    const shrunk = Math.max(this.#settings.minScale, scale * this.#settings.decreaseFactor);
    const rescaled = await this.#store.rescale(model, shrunk, "decrease", now, this.#settings.intervalMs);
    if (rescaled) local.state = rescaled;
    if (retryAfterSeconds && retryAfterSeconds > 0) await this.#store.pauseUntil(model, now + retryAfterSeconds * 1000);
  }

  /** Every so often, what this container learned of its estimates, for containers to come. */
  async #noteCalibration(model: string, local: ModelState) {
    const now = this.#now();
    if (local.inputEstimated <= 0 || now - local.calibrationNotedAt < CALIBRATION_NOTE_INTERVAL_MS) return;
    local.calibrationNotedAt = now;
    const calibration = {
      inputCorrection: inputCorrection(local, now),
      outputPerRequest: local.outputPerRequest ?? this.#settings.initialOutputTokens,
    };
    await this.#store.noteCalibration(model, calibration);
  }

  async #learnLimits(model: string, local: ModelState, headers: Headers | undefined) {
    const reported = limitsFromHeaders(headers);
    if (!reported || (local.state && sameLimits(local.state.limits, reported))) return;
    local.state = await this.#store.setLimits(model, reported);
  }
}

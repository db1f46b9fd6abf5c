/**
 * The shared LLM limiter's state, one small item per model (keys.llmRateLimit): the
 * schedule's next free moment (`nextFreeAt`, epoch ms), the adaptive share of the limits in
 * use (`scale`), when it last shrank and grew, and the limits the API last reported. Every
 * change is one conditional update, so concurrent evaluators never overwrite each other's
 * reservations. Beside it, one small item per tenant notes until when the tenant holds
 * reservations (the fair share) and until when its queue of deferred batches' turns runs,
 * expiring an hour after. The items have a fixed set of
 * numbers and keys of a model name (at most 100 characters) and a work group: their size is
 * bounded by construction.
 */
import { keys } from "../keys.ts";
import { conditionHeld, ifConditionHeld, orItemFound, table } from "./table.ts";

/** Requests, input tokens (uncached) and output tokens per minute: Anthropic's three limits. */
export interface RateLimits {
  requestsPerMinute?: number;
  inputTokensPerMinute?: number;
  outputTokensPerMinute?: number;
}

export interface RateLimitState {
  /** When the work reserved so far is done at the allowed rate (epoch ms). */
  nextFreeAt?: number;
  /** The share of the limits in use, between the floor and 1; lowered on 429, raised while there is headroom. */
  scale: number;
  decreasedAt?: number;
  increasedAt?: number;
  limits: RateLimits;
  /** What evaluators learned of their estimates: a new container starts from it (see `noteCalibration`). */
  calibration?: Calibration;
}

/** Uncached input tokens answers reported per token estimated from the text, and output tokens per request. */
export interface Calibration {
  inputCorrection: number;
  outputPerRequest: number;
}

const LIMIT_FIELDS = ["requestsPerMinute", "inputTokensPerMinute", "outputTokensPerMinute"] as const;

function stateOf(item: Record<string, unknown> | undefined): RateLimitState | undefined {
  if (!item) return undefined;
  const number = (name: string) => (typeof item[name] === "number" ? (item[name] as number) : undefined);
  const limits: RateLimits = {};
  for (const field of LIMIT_FIELDS) {
    const value = number(field);
    if (value !== undefined && value > 0) limits[field] = value;
  }
  const inputCorrection = number("inputCorrection");
  const outputPerRequest = number("outputPerRequest");
  return {
    nextFreeAt: number("nextFreeAt"),
    scale: number("scale") ?? 1,
    decreasedAt: number("decreasedAt"),
    increasedAt: number("increasedAt"),
    limits,
    ...(inputCorrection && outputPerRequest ? { calibration: { inputCorrection, outputPerRequest } } : {}),
  };
}

export const rateLimitStore = {
  async read(model: string): Promise<RateLimitState | undefined> {
    return stateOf(await table.get(keys.llmRateLimit(model), { ConsistentRead: true }));
  },

  /**
   * Reserves `costMs` of the schedule when its next free moment lies between `floor` and
   * `admitBy`: the state after; or, refused (idle, or too far ahead), the state that refused
   * it (undefined when the item does not exist yet).
   */
  async reserve(model: string, costMs: number, floor: number, admitBy: number): Promise<Reservation> {
    const written = await orItemFound(
      table.update({
        Key: keys.llmRateLimit(model),
        UpdateExpression: "SET nextFreeAt = nextFreeAt + :cost",
        ConditionExpression: "nextFreeAt BETWEEN :floor AND :admitBy",
        ExpressionAttributeValues: { ":cost": costMs, ":floor": floor, ":admitBy": admitBy },
        ReturnValues: "ALL_NEW",
        ReturnValuesOnConditionCheckFailure: "ALL_OLD",
      }),
    );
    return written.held
      ? { placed: true, state: stateOf(written.value) as RateLimitState }
      : { placed: false, state: stateOf(written.found) };
  },

  /** Starts the schedule afresh at `floor` (plus `costMs`) when it lags behind `floor` or was never started. */
  async restart(model: string, costMs: number, floor: number): Promise<RateLimitState | undefined> {
    const updated = await ifConditionHeld(
      table.update({
        Key: keys.llmRateLimit(model),
        UpdateExpression: "SET nextFreeAt = :next",
        ConditionExpression: "attribute_not_exists(nextFreeAt) OR nextFreeAt < :floor",
        ExpressionAttributeValues: { ":next": floor + costMs, ":floor": floor },
        ReturnValues: "ALL_NEW",
      }),
    );
    return stateOf(updated);
  },

  /** Adds `costMs` to the schedule unconditionally: a reservation found to cost more than was reserved. */
  async extend(model: string, costMs: number): Promise<RateLimitState | undefined> {
    const updated = await table.update({
      Key: keys.llmRateLimit(model),
      UpdateExpression: "ADD nextFreeAt :cost",
      ExpressionAttributeValues: { ":cost": costMs },
      ReturnValues: "ALL_NEW",
    });
    return stateOf(updated);
  },

  /** Nothing is scheduled before `until` (the API asked to wait): true when this moved the schedule. */
  pauseUntil(model: string, until: number): Promise<boolean> {
    return conditionHeld(
      table.update({
        Key: keys.llmRateLimit(model),
        UpdateExpression: "SET nextFreeAt = :until",
        ConditionExpression: "attribute_not_exists(nextFreeAt) OR nextFreeAt < :until",
        ExpressionAttributeValues: { ":until": until },
      }),
    );
  },

  /**
   * Sets the share in use, shrinking (`decreasedAt`) or growing (`increasedAt`), at most once
   * per `intervalMs` in that direction, and growing only when it did not shrink within it.
   */
  async rescale(
    model: string,
    scale: number,
    direction: "decrease" | "increase",
    now: number,
    intervalMs: number,
  ): Promise<RateLimitState | undefined> {
    const since = now - intervalMs;
    const stamp = direction === "decrease" ? "decreasedAt" : "increasedAt";
    const quiet = (name: string) => `(attribute_not_exists(${name}) OR ${name} < :since)`;
    const condition =
      direction === "decrease" ? quiet("decreasedAt") : `${quiet("increasedAt")} AND ${quiet("decreasedAt")}`;
    const updated = await ifConditionHeld(
      table.update({
        Key: keys.llmRateLimit(model),
        UpdateExpression: `SET #scale = :scale, ${stamp} = :now`,
        ConditionExpression: condition,
        ExpressionAttributeNames: { "#scale": "scale" },
        ExpressionAttributeValues: { ":scale": scale, ":now": now, ":since": since },
        ReturnValues: "ALL_NEW",
      }),
    );
    return stateOf(updated);
  },

  /** Until when `tenant` holds reservations and until when its queue of turns runs (0 for none). */
  async tenantState(model: string, tenant: string): Promise<TenantState> {
    const item = await table.get(keys.llmRateLimitTenant(model, tenant), {
      ProjectionExpression: "reservedUntil, queuedUntil",
    });
    const number = (value: unknown) => (typeof value === "number" ? value : 0);
    return { reservedUntil: number(item?.reservedUntil), queuedUntil: number(item?.queuedUntil) };
  },

  /**
   * Takes the next turn in `tenant`'s queue, `costMs` long: after its last turn, or at `floor`
   * when its queue ends before it; the turn's start.
   */
  async queueTurn(model: string, tenant: string, costMs: number, floor: number): Promise<number> {
    const values = { ":cost": costMs, ":floor": floor, ":expiresAt": Math.ceil(floor / 1000) + 3600 };
    for (let attempt = 0; attempt < 3; attempt++) {
      const extended = await ifConditionHeld(
        table.update({
          Key: keys.llmRateLimitTenant(model, tenant),
          UpdateExpression: "SET queuedUntil = queuedUntil + :cost, expiresAt = :expiresAt",
          ConditionExpression: "queuedUntil >= :floor",
          ExpressionAttributeValues: values,
          ReturnValues: "UPDATED_NEW",
        }),
      );
      if (typeof extended?.queuedUntil === "number") return extended.queuedUntil - costMs;
      const started = await conditionHeld(
        table.update({
          Key: keys.llmRateLimitTenant(model, tenant),
          UpdateExpression: "SET queuedUntil = :floor + :cost, expiresAt = :expiresAt",
          ConditionExpression: "attribute_not_exists(queuedUntil) OR queuedUntil < :floor",
          ExpressionAttributeValues: values,
        }),
      );
      if (started) return floor;
    }
    // The queue kept changing under each try: the turn starts where the schedule does.
    return floor;
  },

  /** Notes that `tenant` holds reservations until `until`; the note expires an hour after. */
  async markTenant(model: string, tenant: string, until: number): Promise<void> {
    // A later reservation noted already leaves the note as it is.
    await conditionHeld(
      table.update({
        Key: keys.llmRateLimitTenant(model, tenant),
        UpdateExpression: "SET reservedUntil = :until, expiresAt = :expiresAt",
        ConditionExpression: "attribute_not_exists(reservedUntil) OR reservedUntil < :until",
        ExpressionAttributeValues: { ":until": until, ":expiresAt": Math.ceil(until / 1000) + 3600 },
      }),
    );
  },

  /** Records what an evaluator learned of its estimates, for containers to come (the last word wins). */
  async noteCalibration(model: string, calibration: Calibration): Promise<void> {
    await table.update({
      Key: keys.llmRateLimit(model),
      UpdateExpression: "SET inputCorrection = :inputCorrection, outputPerRequest = :outputPerRequest",
      ExpressionAttributeValues: {
        ":inputCorrection": calibration.inputCorrection,
        ":outputPerRequest": calibration.outputPerRequest,
      },
    });
  },

  /** Records the limits the API reported (0 removes a limit it no longer reports). */
  async setLimits(model: string, limits: RateLimits): Promise<RateLimitState | undefined> {
    const values = Object.fromEntries(LIMIT_FIELDS.map((field) => [`:${field}`, limits[field] ?? 0]));
    const updated = await table.update({
      Key: keys.llmRateLimit(model),
      UpdateExpression: `SET ${LIMIT_FIELDS.map((field) => `${field} = :${field}`).join(", ")}`,
      ExpressionAttributeValues: values,
      ReturnValues: "ALL_NEW",
    });
    return stateOf(updated);
  },
};

export type RateLimitStore = typeof rateLimitStore;

/** A reservation made (the state after it), or refused (the state that refused it, when there is one). */
export type Reservation = { placed: true; state: RateLimitState } | { placed: false; state?: RateLimitState };

export interface TenantState {
  reservedUntil: number;
  queuedUntil: number;
}

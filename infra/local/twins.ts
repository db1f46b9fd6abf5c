/**
 * Twin delivery for tests of idempotence: every batch invoked twice with identical records.
 * Lambda's own redeliveries come both later (a retry) and at the same time (two pollers
 * holding the same records), so twins run either way.
 */

/**
 * "sequential": the twin after the first invocation ends; "concurrent": both at once;
 * "alternating": batch by batch, one way then the other.
 */
export type TwinDelivery = "sequential" | "concurrent" | "alternating";

/** Decides, batch after batch, whether a twin runs concurrently with its batch. */
export function twinSchedule(mode: TwinDelivery = "alternating"): () => boolean {
  let batches = 0;
  return () => {
    batches++;
    return mode === "concurrent" || (mode === "alternating" && batches % 2 === 0);
  };
}

/**
 * Runs `invoke` twice, as `concurrently` says, both even when one throws (a twin is always
 * delivered); a throw of either fails the batch, else the second invocation's result counts.
 */
export async function invokeTwice<T>(invoke: () => Promise<T>, concurrently: boolean): Promise<T> {
  const settle = (run: () => Promise<T>) =>
    run().then(
      (value): PromiseSettledResult<T> => ({ status: "fulfilled", value }),
      (reason: unknown): PromiseSettledResult<T> => ({ status: "rejected", reason }),
    );
  const results = concurrently
    ? await Promise.all([settle(invoke), settle(invoke)])
    : [await settle(invoke), await settle(invoke)];
  for (const result of results) if (result.status === "rejected") throw result.reason;
  return (results[1] as PromiseFulfilledResult<T>).value;
}

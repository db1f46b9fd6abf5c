/**
 * How Lambda reads a partial batch response ({batchItemFailures: [{itemIdentifier}]}) for
 * SQS and stream event sources. Identifiers are message ids (SQS) or sequence numbers
 * (streams).
 */

export type BatchOutcome =
  | { kind: "success" }
  | { kind: "partial"; failed: Set<string> }
  /** The whole batch failed: a throw, or a response Lambda rejects as invalid. */
  | { kind: "allFailed"; reason: string };

/**
 * Lambda's rules: a missing/null/empty response or an empty/null batchItemFailures list is
 * complete success; an identifier that is missing, empty or not in the batch fails the
 * whole batch.
 */
export function interpretBatchResponse(response: unknown, identifiers: readonly string[]): BatchOutcome {
  if (response === null || typeof response !== "object" || Array.isArray(response)) return { kind: "success" };
  const failures = (response as { batchItemFailures?: unknown }).batchItemFailures;
  if (failures === undefined || failures === null) return { kind: "success" };
  if (!Array.isArray(failures)) return { kind: "allFailed", reason: "batchItemFailures is not an array" };
  if (failures.length === 0) return { kind: "success" };
  const known = new Set(identifiers);
  const failed = new Set<string>();
  for (const failure of failures) {
    const identifier = (failure as { itemIdentifier?: unknown } | null)?.itemIdentifier;
    if (typeof identifier !== "string" || identifier === "") {
      return { kind: "allFailed", reason: `invalid itemIdentifier ${JSON.stringify(identifier)}` };
    }
    if (!known.has(identifier)) {
      return { kind: "allFailed", reason: `itemIdentifier ${identifier} is not in the batch` };
    }
    failed.add(identifier);
  }
  return { kind: "partial", failed };
}

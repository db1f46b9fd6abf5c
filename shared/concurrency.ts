/** Small collection and async helpers shared by the store, the pipeline and the analytics. */

export const sleep = (ms: number) => new Promise<void>((resolve) => setTimeout(resolve, ms));

/** The distinct items, in the order they first appear. */
export const unique = <T>(items: T[]): T[] => [...new Set(items)];

/** Batches of at most `size` items, in order. */
export function chunked<T>(items: T[], size: number): T[][] {
  const chunks: T[][] = [];
  for (let i = 0; i < items.length; i += size) chunks.push(items.slice(i, i + size));
  return chunks;
}

/**
 * `task` over every item with at most `limit` in flight; results in the items' order. A
 * failing task rejects the whole call once the tasks already started have settled.
 */
export async function mapLimit<T, R>(items: T[], limit: number, task: (item: T) => Promise<R>): Promise<R[]> {
  const results: R[] = new Array(items.length);
  let next = 0;
  const worker = async () => {
    while (next < items.length) {
      const index = next++;
      results[index] = await task(items[index] as T);
    }
  };
  await Promise.all(Array.from({ length: Math.min(Math.max(1, limit), items.length) }, worker));
  return results;
}

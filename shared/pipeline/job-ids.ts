import { createHash } from "node:crypto";

/**
 * A UUID-shaped job id derived from `seed`: whoever starts the same piece of work names the
 * same job, so a second start fails the job's creation condition instead of duplicating it.
 */
export function derivedJobId(seed: string): string {
  const hex = createHash("sha256").update(seed).digest("hex");
  return `${hex.slice(0, 8)}-${hex.slice(8, 12)}-5${hex.slice(13, 16)}-a${hex.slice(17, 20)}-${hex.slice(20, 32)}`;
}

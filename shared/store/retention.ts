/**
 * An organization's retention period (settings.retentionDays): its calls (with their
 * transcripts) and metric values are written with an expiry, and DynamoDB's TTL deletes them
 * after it. Analytics rollups carry no expiry: the organization's charts outlive the data.
 */
import { organizationSettings } from "./organizations.ts";

/** The TTL (epoch seconds) of tenant data written now; undefined when the organization keeps it. */
export async function retentionExpiresAt(orgId: string, now = Date.now()): Promise<number | undefined> {
  const { retentionDays } = await organizationSettings(orgId);
  return typeof retentionDays === "number" ? Math.floor(now / 1000) + retentionDays * 86_400 : undefined;
}

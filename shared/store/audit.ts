/**
 * The audit trail: who (which key) created, changed or deleted definitions, policies,
 * backfills, API keys and the webhook secret, and when. One small item per change in the
 * organization's audit partition, newest read first, kept a year (DynamoDB TTL).
 */
import { randomUUID } from "node:crypto";
import { keys } from "../keys.ts";
import type { AuditAction } from "../schemas/audit.ts";
import type { Role } from "../schemas/role.ts";
import { type PageKey, queryPage } from "./query.ts";
import { table } from "./table.ts";

const AUDIT_RETENTION_SECONDS = 365 * 24 * 3600;
/** Longest resource id kept (ids and slugs are far shorter; a path parameter is not bounded). */
const MAX_RESOURCE_ID_CHARS = 256;

export interface AuditEvent {
  id: string;
  at: string;
  action: AuditAction;
  resourceId?: string;
  /** The key that made the change, its role then, and API Gateway's request id. */
  keyId: string;
  role: Role;
  requestId?: string;
}

export async function recordAuditEvent(orgId: string, event: Omit<AuditEvent, "id" | "at">): Promise<void> {
  const at = new Date().toISOString();
  const id = randomUUID();
  await table.put({
    Item: {
      ...keys.auditEvent(orgId, at, id),
      entity: "AuditEvent",
      id,
      at,
      action: event.action,
      keyId: event.keyId,
      role: event.role,
      ...(event.resourceId ? { resourceId: event.resourceId.slice(0, MAX_RESOURCE_ID_CHARS) } : {}),
      ...(event.requestId ? { requestId: event.requestId.slice(0, MAX_RESOURCE_ID_CHARS) } : {}),
      expiresAt: Math.floor(Date.now() / 1000) + AUDIT_RETENTION_SECONDS,
    },
  });
}

const toAuditEvent = (item: Record<string, unknown>): AuditEvent => ({
  id: String(item.id),
  at: String(item.at),
  action: item.action as AuditAction,
  ...(item.resourceId ? { resourceId: String(item.resourceId) } : {}),
  keyId: String(item.keyId),
  role: item.role as Role,
  ...(item.requestId ? { requestId: String(item.requestId) } : {}),
});

export const listAuditEvents = (orgId: string, options: { limit: number; after?: PageKey }) =>
  queryPage(
    {
      partition: ["pk", keys.auditTrail(orgId)],
      sortKeyName: "sk",
      newestFirst: true,
      limit: options.limit,
      after: options.after,
    },
    toAuditEvent,
  );

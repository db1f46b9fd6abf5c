/** The changes the audit trail records (shared/store/audit.ts). */
export const auditActions = [
  "call.deleted",
  "metric_definition.created",
  "metric_definition.updated",
  "metric_definition.archived",
  "metric_definition.unarchived",
  "metric_policy.created",
  "metric_policy.updated",
  "metric_policy.deleted",
  "backfill.created",
  "backfill.updated",
  "backfill.deleted",
  "integration.created",
  "integration.updated",
  "integration.deleted",
  "api_key.created",
  "api_key.revoked",
  "webhook_secret.rotated",
  "organization.settings_updated",
] as const;
export type AuditAction = (typeof auditActions)[number];

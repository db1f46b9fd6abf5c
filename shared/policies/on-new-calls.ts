/**
 * Stream consumer for new calls: match each against its organization's ACTIVE policies
 * and add it to the matching policies' batches. Runs after `POST /v1/call` has answered,
 * so ingest pays for neither the policy lookup nor any evaluation.
 */
import type { AttributeValue } from "@aws-sdk/client-dynamodb";
import { unmarshall } from "@aws-sdk/util-dynamodb";
import type { DynamoDBBatchResponse, DynamoDBRecord } from "aws-lambda";
import { logger } from "../logger.ts";
import type { MetricPolicy } from "../schemas/policy.ts";
import { activePolicies } from "../store/policies.ts";
import { CALL_ENTITY } from "../stream-entities.ts";
import { addToPolicyBatch } from "./batches.ts";
import { policyMatches } from "./match.ts";

interface NewCall {
  id: string;
  orgId: string;
  agentId: string;
  properties: Record<string, string>;
}

function toNewCall(record: DynamoDBRecord): NewCall | undefined {
  const image = record.dynamodb?.NewImage;
  if (!image) return undefined;
  const item = unmarshall(image as Record<string, AttributeValue>);
  const orgId = /^ORG#(.+)#CALL#/.exec(String(item.pk))?.[1];
  if (item.entity !== CALL_ENTITY || !orgId) return undefined;
  return { id: String(item.id), orgId, agentId: String(item.agentId), properties: item.properties ?? {} };
}

export async function matchNewCalls(records: DynamoDBRecord[]): Promise<DynamoDBBatchResponse> {
  const policiesByOrg = new Map<string, MetricPolicy[]>();
  // All matches of the batch first, then one batch update per policy.
  const matched = new Map<string, { orgId: string; policyId: string; callIds: string[]; firstSequence: string }>();
  for (const record of records) {
    const call = toNewCall(record);
    if (!call) continue;
    let policies = policiesByOrg.get(call.orgId);
    if (!policies) {
      policies = await activePolicies(call.orgId);
      policiesByOrg.set(call.orgId, policies);
    }
    for (const policy of policies) {
      if (!policyMatches(policy.conditions, call)) continue;
      const key = `${call.orgId}|${policy.id}`;
      const entry = matched.get(key) ?? {
        orgId: call.orgId,
        policyId: policy.id,
        callIds: [],
        firstSequence: record.dynamodb?.SequenceNumber ?? "",
      };
      entry.callIds.push(call.id);
      matched.set(key, entry);
    }
  }
  // Earliest records first: on a failure, Lambda resumes from the first unsaved record.
  const ordered = [...matched.values()].sort((a, b) => a.firstSequence.localeCompare(b.firstSequence));
  for (const entry of ordered) {
    try {
      await addToPolicyBatch(entry.orgId, entry.policyId, entry.callIds);
    } catch (error) {
      logger.error("Could not add calls to the policy batch", { policyId: entry.policyId, error: error as Error });
      // Re-adding calls already in a batch changes nothing, so resuming early is safe.
      return { batchItemFailures: [{ itemIdentifier: entry.firstSequence }] };
    }
  }
  return { batchItemFailures: [] };
}

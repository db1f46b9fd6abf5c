/**
 * Metric definitions. The METRIC item holds the latest version; every version is also kept
 * as an immutable V#<n> item so jobs can evaluate exactly the version they froze.
 */

import { randomUUID } from "node:crypto";
import { assertModelsAllowed } from "../allowed-models.ts";
import { conflict, invalid, notFound, parseOrInvalid } from "../errors.ts";
import { keys } from "../keys.ts";
import {
  type CreateMetricBody,
  type CreateMetricInput,
  createMetricSchema,
  type MetricDefinition,
} from "../schemas/metric.ts";
import { batchGet } from "./batch-get.ts";
import { type PageKey, queryPage } from "./query.ts";
import { failedConditions, table } from "./table.ts";

type Item = Record<string, unknown>;
const UUID = /^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$/;
const storageFields = ["pk", "sk", "entity", "gsi1pk", "gsi1sk", "orgId"];

function toMetricDefinition(item: Item): MetricDefinition {
  return Object.fromEntries(Object.entries(item).filter(([k]) => !storageFields.includes(k))) as never;
}

function metricItems(orgId: string, definition: MetricDefinition) {
  const latest = {
    ...keys.metric(orgId, definition.id),
    entity: "Metric",
    gsi1pk: keys.metricList(orgId),
    gsi1sk: keys.listSortKey(definition.createdAt, definition.id),
    orgId,
    ...definition,
  };
  const version = {
    ...keys.metricVersion(orgId, definition.id, definition.version),
    entity: "MetricVersion",
    orgId,
    ...definition,
  };
  return { latest, version };
}

const slugGuard = (orgId: string, slug: string, metricId: string) => ({
  ...keys.metricSlug(orgId, slug),
  entity: "MetricSlug",
  metricId,
});

const slugTaken = (slug: string) => conflict(`A metric definition with slug '${slug}' already exists`);

/** Slugs tried for a definition created without one: the name's, then with -2 … -5, then a random suffix. */
export function derivedSlugs(name: string): string[] {
  const base =
    name
      .normalize("NFKD")
      .toLowerCase()
      .replace(/[^a-z0-9]+/g, "-")
      .replace(/^-+|-+$/g, "")
      .slice(0, 50)
      .replace(/-+$/, "") || "metric";
  return [base, ...[2, 3, 4, 5].map((n) => `${base}-${n}`), `${base}-${randomUUID().slice(0, 8)}`];
}

/** Stores a new definition; without a slug, the first of derivedSlugs(name) that is free. 409 when a given slug is taken. */
export async function createMetric(orgId: string, input: CreateMetricBody): Promise<MetricDefinition> {
  const candidates = input.slug ? [input.slug] : derivedSlugs(input.name);
  for (const [index, slug] of candidates.entries()) {
    const now = new Date().toISOString();
    const definition: MetricDefinition = {
      ...input,
      slug,
      id: randomUUID(),
      version: 1,
      createdAt: now,
      updatedAt: now,
    };
    const { latest, version } = metricItems(orgId, definition);
    try {
      await table.transactWrite([
        { Put: { Item: slugGuard(orgId, slug, definition.id), ConditionExpression: "attribute_not_exists(pk)" } },
        { Put: { Item: latest } },
        { Put: { Item: version } },
      ]);
      return definition;
    } catch (error) {
      if (!failedConditions(error)?.[0]) throw error;
      if (index === candidates.length - 1) throw slugTaken(slug);
    }
  }
  throw new Error("No slug candidates");
}

async function getById(orgId: string, metricId: string): Promise<MetricDefinition | undefined> {
  const item = await table.get(keys.metric(orgId, metricId));
  return item ? toMetricDefinition(item) : undefined;
}

/** Looks a definition up by id, then by slug. */
export async function getMetric(orgId: string, idOrSlug: string): Promise<MetricDefinition | undefined> {
  if (UUID.test(idOrSlug)) {
    const byId = await getById(orgId, idOrSlug);
    if (byId) return byId;
  }
  const slug = await table.get(keys.metricSlug(orgId, idOrSlug));
  return slug ? getById(orgId, String(slug.metricId)) : undefined;
}

/**
 * The definitions `refs` name (by id or slug) as stored ids, each once — what policies and
 * backfills keep, so renaming a slug later does not detach them. Invalid when one is
 * unknown, archived, or on a model the organization does not allow.
 */
export async function resolveMetricRefs(orgId: string, refs: { id: string }[]): Promise<{ id: string }[]> {
  const resolved = await Promise.all(refs.map((ref) => getMetric(orgId, ref.id)));
  const unknown = refs.filter((_, index) => !resolved[index]).map((ref) => ref.id);
  if (unknown.length > 0) throw invalid(`Unknown metric ids: ${unknown.join(", ")}`, { unknownMetricIds: unknown });
  assertNotArchived(resolved.filter((definition) => definition !== undefined));
  await assertModelsAllowed(
    orgId,
    resolved.filter((definition) => definition !== undefined),
  );
  return [...new Set(resolved.map((definition) => definition?.id as string))].map((id) => ({ id }));
}

export const listMetrics = (orgId: string, limit: number, after?: PageKey, archived = false) =>
  queryPage(
    {
      partition: ["gsi1pk", archived ? keys.archivedMetricList(orgId) : keys.metricList(orgId)],
      sortKeyName: "gsi1sk",
      indexName: "gsi1",
      newestFirst: true,
      limit,
      after,
    },
    toMetricDefinition,
  );

/**
 * Archives a definition (or brings it back): it moves to the archived list, new jobs,
 * policies and backfills refuse it, and what runs it already goes on. Its slug stays taken.
 * Archiving twice keeps the first time.
 */
export async function setMetricArchived(orgId: string, idOrSlug: string, archived: boolean): Promise<MetricDefinition> {
  const definition = await getMetric(orgId, idOrSlug);
  if (!definition) throw notFound("Metric definition", idOrSlug);
  const attributes = await table.update({
    Key: keys.metric(orgId, definition.id),
    UpdateExpression: archived
      ? "SET archivedAt = if_not_exists(archivedAt, :now), gsi1pk = :list"
      : "SET gsi1pk = :list REMOVE archivedAt",
    ConditionExpression: "attribute_exists(pk)",
    ExpressionAttributeValues: {
      ":list": archived ? keys.archivedMetricList(orgId) : keys.metricList(orgId),
      ...(archived ? { ":now": new Date().toISOString() } : {}),
    },
    ReturnValues: "ALL_NEW",
  });
  return toMetricDefinition(attributes ?? {});
}

const NAMED_IN_MESSAGE = 10;

function describeMissing(kind: string, ids: string[]): string {
  const shown = ids.slice(0, NAMED_IN_MESSAGE).join(", ");
  return `Unknown ${kind}: ${shown}${ids.length > NAMED_IN_MESSAGE ? ` and ${ids.length - NAMED_IN_MESSAGE} more` : ""}`;
}

/** A job (or its estimate) naming metrics, versions or calls the organization does not have: 400 naming them. */
export function assertKnownReferences({
  unknownMetricIds,
  unknownVersions,
  unknownCallIds,
}: {
  unknownMetricIds: string[];
  unknownVersions: MetricRef[];
  unknownCallIds: string[];
}): void {
  if (unknownMetricIds.length === 0 && unknownVersions.length === 0 && unknownCallIds.length === 0) return;
  const messages = [
    ...(unknownMetricIds.length ? [describeMissing("metric ids", unknownMetricIds)] : []),
    ...(unknownVersions.length
      ? [
          describeMissing(
            "metric versions",
            unknownVersions.map(({ id, version }) => `${id}@${version}`),
          ),
        ]
      : []),
    ...(unknownCallIds.length ? [describeMissing("call ids", unknownCallIds)] : []),
  ];
  throw invalid(messages.join("; "), {
    unknownMetricIds,
    ...(unknownVersions.length ? { unknownVersions } : {}),
    unknownCallIds,
  });
}

/** Refuses archived definitions where new work would start on them (400 naming them). */
export function assertNotArchived(definitions: Pick<MetricDefinition, "slug" | "archivedAt">[]): void {
  const archived = definitions.filter((definition) => definition.archivedAt).map((definition) => definition.slug);
  if (archived.length > 0) {
    throw invalid(`Archived metric definitions cannot start new work: ${archived.join(", ")} (unarchive them first)`, {
      archivedMetrics: archived,
    });
  }
}

/** A definition's versions, newest first (each is kept, immutable, as V#<n>). */
export const listMetricVersions = (orgId: string, metricId: string, limit: number, after?: PageKey) =>
  queryPage(
    {
      partition: ["pk", keys.metric(orgId, metricId).pk],
      sortKeyName: "sk",
      sortKeyPrefix: "V#",
      newestFirst: true,
      limit,
      after,
    },
    toMetricDefinition,
  );

/** Applies a patch as a new version; fails with 409 if another update won the race. */
export async function updateMetric(
  orgId: string,
  current: MetricDefinition,
  patch: Partial<CreateMetricInput>,
): Promise<MetricDefinition> {
  if (current.archivedAt) {
    throw conflict(`Metric definition '${current.slug}' is archived; unarchive it to change it`);
  }
  const { id, version, createdAt, updatedAt: _updatedAt, ...currentFields } = current;
  const merged = parseOrInvalid(
    createMetricSchema,
    { ...currentFields, ...patch },
    { source: "body", what: "metric definition" },
  );
  const next: MetricDefinition = {
    ...merged,
    id,
    version: version + 1,
    createdAt,
    updatedAt: new Date().toISOString(),
  };
  const { latest, version: versionItem } = metricItems(orgId, next);
  const slugChanged = next.slug !== current.slug;
  try {
    await table.transactWrite([
      {
        Put: {
          Item: latest,
          // Not archived since it was read: this put would bring it back to the list.
          ConditionExpression: "#version = :current AND attribute_not_exists(archivedAt)",
          ExpressionAttributeNames: { "#version": "version" },
          ExpressionAttributeValues: { ":current": version },
        },
      },
      { Put: { Item: versionItem, ConditionExpression: "attribute_not_exists(pk)" } },
      ...(slugChanged
        ? [
            { Put: { Item: slugGuard(orgId, next.slug, id), ConditionExpression: "attribute_not_exists(pk)" } },
            { Delete: { Key: keys.metricSlug(orgId, current.slug) } },
          ]
        : []),
    ]);
  } catch (error) {
    const failed = failedConditions(error);
    if (failed?.[2]) throw slugTaken(next.slug);
    if (failed?.[0] || failed?.[1]) {
      throw conflict("The metric definition was updated or archived concurrently; fetch it and try again");
    }
    throw error;
  }
  return next;
}

/** What a job names: a definition (id or slug), at a version of it or its latest. */
export interface MetricRef {
  id: string;
  version?: number;
}

/**
 * The definitions `refs` name, each at the version asked for (the latest by default), each
 * definition once; and the refs that name no definition, or a version it does not have.
 * Invalid when refs name two versions of one definition: a job's values are keyed by
 * definition, so comparing versions takes a job per version.
 */
export async function resolveMetricVersions(
  orgId: string,
  refs: MetricRef[],
): Promise<{ definitions: MetricDefinition[]; unknownMetricIds: string[]; unknownVersions: MetricRef[] }> {
  const latest = await Promise.all(refs.map((ref) => getMetric(orgId, ref.id)));
  const unknownMetricIds = refs.filter((_, index) => !latest[index]).map((ref) => ref.id);
  const pinned = refs.flatMap((ref, index) => {
    const definition = latest[index];
    return definition && ref.version !== undefined && ref.version !== definition.version
      ? [{ metricId: definition.id, version: ref.version }]
      : [];
  });
  const versions = pinned.length > 0 ? await getMetricVersions(orgId, pinned) : new Map<string, MetricDefinition>();
  const unknownVersions: MetricRef[] = [];
  const chosen = new Map<string, MetricDefinition>();
  for (const [index, ref] of refs.entries()) {
    const definition = latest[index];
    if (!definition) continue;
    const version = ref.version ?? definition.version;
    const atVersion = version === definition.version ? definition : versions.get(`${definition.id}@${version}`);
    if (!atVersion) {
      unknownVersions.push(ref);
      continue;
    }
    const other = chosen.get(definition.id);
    if (other && other.version !== atVersion.version) {
      throw invalid(
        `A job runs one version of each definition ('${definition.slug}' is named at versions ${other.version} and ${atVersion.version}); create a job per version to compare them`,
      );
    }
    chosen.set(definition.id, atVersion);
  }
  return { definitions: [...chosen.values()], unknownMetricIds, unknownVersions };
}

/** Frozen versions never change, so a container may keep them for its lifetime. */
const versionCache = new Map<string, MetricDefinition>();

export async function getMetricVersions(
  orgId: string,
  refs: { metricId: string; version: number }[],
): Promise<Map<string, MetricDefinition>> {
  const cacheKey = (metricId: string, version: number) => `${orgId}|${metricId}|${version}`;
  const missing = refs.filter((ref) => !versionCache.has(cacheKey(ref.metricId, ref.version)));
  const unique = [...new Map(missing.map((ref) => [cacheKey(ref.metricId, ref.version), ref])).values()];
  if (unique.length > 0) {
    // Consistent: a version created a moment ago must not read as missing.
    const items = await batchGet(
      unique.map((ref) => keys.metricVersion(orgId, ref.metricId, ref.version)),
      { consistent: true },
    );
    for (const item of items) {
      const definition = toMetricDefinition(item);
      versionCache.set(cacheKey(definition.id, definition.version), definition);
    }
  }
  const found = new Map<string, MetricDefinition>();
  for (const ref of refs) {
    const definition = versionCache.get(cacheKey(ref.metricId, ref.version));
    if (definition) found.set(`${ref.metricId}@${ref.version}`, definition);
  }
  return found;
}

/**
 * The Message Batches API of the fake Anthropic server: create, retrieve, list, cancel and
 * results as JSONL, as the real API documents them. A batch ends `processingMs` after it is
 * created, at the next look (retrieve, list or results): its requests are then answered in
 * order through the same path as direct requests, so they share the prompt cache (the real
 * API's cache hits in a batch are best effort) and are logged with their batch id. A request
 * the API would answer with an error ends `errored`; a canceled batch's requests end
 * `canceled`; with `expires`, every request ends `expired`.
 */
import { randomUUID } from "node:crypto";

interface BatchRequest {
  custom_id: string;
  params: unknown;
}

type BatchResult =
  | { type: "succeeded"; message: unknown }
  | { type: "errored"; error: unknown }
  | { type: "canceled" }
  | { type: "expired" };

interface FakeBatch {
  id: string;
  createdAt: number;
  requests: BatchRequest[];
  cancelInitiatedAt?: number;
  endedAt?: number;
  results?: { custom_id: string; result: BatchResult }[];
}

export interface FakeBatchesDeps {
  /** The server's base URL, for `results_url`. */
  url: () => string;
  processingMs: () => number;
  expires: () => boolean;
  /** Answers one request of the batch as the Messages endpoint would. */
  answer: (params: unknown, batchId: string) => { status: number; body: unknown };
}

interface Answer {
  status: number;
  body: unknown;
  headers?: Record<string, string>;
}
type Failure = { status: number; error: { type: string; message: string } };

/** The API's limits on one batch. */
const MAX_REQUESTS = 100_000;
const CUSTOM_ID = /^[a-zA-Z0-9_-]{1,64}$/;
const DAY_MS = 24 * 3600_000;

const invalid = (message: string): Failure => ({ status: 400, error: { type: "invalid_request_error", message } });
const notFound = (id: string): Failure => ({
  status: 404,
  error: { type: "not_found_error", message: `Message batch ${id} not found` },
});
const iso = (ms: number | undefined) => (ms === undefined ? null : new Date(ms).toISOString());

/** Why the API refuses a create request, or undefined. */
function createProblem(body: unknown): string | undefined {
  const requests = (body as { requests?: unknown } | undefined)?.requests;
  if (!Array.isArray(requests) || requests.length === 0) return "requests: must hold at least one request";
  if (requests.length > MAX_REQUESTS) return `requests: at most ${MAX_REQUESTS} requests per batch`;
  const seen = new Set<string>();
  for (const request of requests as Partial<BatchRequest>[]) {
    const id = request?.custom_id;
    if (typeof id !== "string" || !CUSTOM_ID.test(id)) return `custom_id: must match ${CUSTOM_ID.source}`;
    if (seen.has(id)) return `custom_id: ${id} is used by more than one request`;
    seen.add(id);
    if (typeof request.params !== "object" || request.params === null) return `params: required (${id})`;
  }
  return undefined;
}

export function createFakeBatches(deps: FakeBatchesDeps) {
  let batches: FakeBatch[] = [];

  /** Ends the batch if its time has come: answers its requests, or cancels or expires them. */
  function settle(batch: FakeBatch, now = Date.now()) {
    if (batch.endedAt !== undefined) return;
    if (batch.cancelInitiatedAt === undefined && now < batch.createdAt + deps.processingMs()) return;
    batch.results = batch.requests.map(({ custom_id, params }) => ({ custom_id, result: resultOf(batch, params) }));
    batch.endedAt = now;
  }

  function resultOf(batch: FakeBatch, params: unknown): BatchResult {
    if (batch.cancelInitiatedAt !== undefined) return { type: "canceled" };
    if (deps.expires()) return { type: "expired" };
    const { status, body } = deps.answer(params, batch.id);
    return status === 200 ? { type: "succeeded", message: body } : { type: "errored", error: body };
  }

  function view(batch: FakeBatch) {
    settle(batch);
    return describe(batch);
  }

  function describe(batch: FakeBatch) {
    const count = (type: BatchResult["type"]) => batch.results?.filter((r) => r.result.type === type).length ?? 0;
    const ended = batch.endedAt !== undefined;
    return {
      id: batch.id,
      type: "message_batch",
      processing_status: ended ? "ended" : batch.cancelInitiatedAt !== undefined ? "canceling" : "in_progress",
      request_counts: {
        processing: ended ? 0 : batch.requests.length,
        succeeded: count("succeeded"),
        errored: count("errored"),
        canceled: count("canceled"),
        expired: count("expired"),
      },
      created_at: iso(batch.createdAt),
      ended_at: iso(batch.endedAt),
      expires_at: iso(batch.createdAt + DAY_MS),
      cancel_initiated_at: iso(batch.cancelInitiatedAt),
      archived_at: null,
      results_url: ended ? `${deps.url()}/v1/messages/batches/${batch.id}/results` : null,
    };
  }

  /** Newest first; `after_id` pages towards older batches, `before_id` towards newer ones. */
  function list(query: URLSearchParams) {
    const limit = Math.min(1000, Math.max(1, Number(query.get("limit") ?? 20)));
    const newestFirst = [...batches].reverse();
    const afterId = query.get("after_id");
    const beforeId = query.get("before_id");
    let start = 0;
    let end = newestFirst.length;
    if (afterId) start = newestFirst.findIndex((b) => b.id === afterId) + 1;
    if (beforeId)
      end = Math.max(
        0,
        newestFirst.findIndex((b) => b.id === beforeId),
      );
    const page = beforeId
      ? newestFirst.slice(Math.max(start, end - limit), end)
      : newestFirst.slice(start, start + limit);
    const data = page.map(view);
    const hasMore = beforeId ? end - limit > start : start + limit < end;
    return { data, has_more: hasMore, first_id: data[0]?.id ?? null, last_id: data.at(-1)?.id ?? null };
  }

  function create(body: unknown): Answer | Failure {
    const problem = createProblem(body);
    if (problem) return invalid(problem);
    const batch: FakeBatch = {
      id: `msgbatch_${randomUUID().replaceAll("-", "")}`,
      createdAt: Date.now(),
      requests: (body as { requests: BatchRequest[] }).requests,
    };
    batches.push(batch);
    return { status: 200, body: view(batch) };
  }

  function results(batch: FakeBatch): Answer | Failure {
    settle(batch);
    if (!batch.results) return invalid(`Message batch ${batch.id} has not finished processing`);
    const jsonl = batch.results.map((line) => JSON.stringify(line)).join("\n");
    return { status: 200, body: `${jsonl}\n`, headers: { "content-type": "application/binary" } };
  }

  /** A batch whose time had not come ends with its requests canceled, at the next look. */
  function cancel(batch: FakeBatch): Answer {
    settle(batch);
    if (batch.endedAt === undefined) batch.cancelInitiatedAt ??= Date.now();
    return { status: 200, body: describe(batch) };
  }

  return {
    /** Routes a request under /v1/messages/batches. */
    handle(method: string, path: string, body: unknown, rawUrl: string): Answer | Failure {
      const [, id, action] = /^\/v1\/messages\/batches(?:\/([^/]+))?(?:\/(\w+))?$/.exec(path) ?? [];
      if (!id) {
        if (method === "POST") return create(body);
        if (method === "GET") return { status: 200, body: list(new URL(rawUrl, "http://fake").searchParams) };
      }
      const batch = batches.find((b) => b.id === id);
      if (!batch) return notFound(String(id));
      if (method === "GET" && !action) return { status: 200, body: view(batch) };
      if (method === "GET" && action === "results") return results(batch);
      if (method === "POST" && action === "cancel") return cancel(batch);
      return { status: 404, error: { type: "not_found_error", message: "Not found" } };
    },
    /** Batches created so far, newest first, settled as of now. */
    list: () => [...batches].reverse().map(view),
    clear() {
      batches = [];
    },
  };
}

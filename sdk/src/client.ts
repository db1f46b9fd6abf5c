/**
 * The TypeScript client of the metric collection service. Only `fetch` is needed: runs on
 * Node 22+ and in browsers. Types come from src/types.ts, generated from the service's
 * OpenAPI document (itself generated from the zod schemas that validate requests).
 */
import { type OperationId, type Operations, routes } from "./types.ts";

export * from "./types.ts";

type Body<K extends OperationId> = Operations[K]["body"];
type Query<K extends OperationId> = Operations[K]["query"];
type PathParams<K extends OperationId> = Operations[K]["path"];
export type Response<K extends OperationId> = Operations[K]["response"];

/** What a call of operation K takes; members that the operation does not have are left out. */
export type RequestParams<K extends OperationId> = ([PathParams<K>] extends [never]
  ? { path?: undefined }
  : { path: PathParams<K> }) &
  ([Query<K>] extends [never] ? { query?: undefined } : { query?: Query<K> }) &
  ([Body<K>] extends [never] ? { body?: undefined } : { body: Body<K> }) & {
    signal?: AbortSignal;
    /** For operations that create something; by default one new key per request, the same on its retries. */
    idempotencyKey?: string;
  };

export type Job = Response<"getCollectionJob">["data"];
export type CreateJobInput = Body<"createCollectionJob">;
type PagedOperation = {
  [K in OperationId]: Response<K> extends { data: unknown[]; pagination: unknown } ? K : never;
}[OperationId];
type Item<K extends PagedOperation> = Response<K> extends { data: (infer T)[] } ? T : never;

export interface ClientOptions {
  /** e.g. http://127.0.0.1:3000; on Node falls back to env MCJ_BASE_URL. */
  baseURL?: string;
  /** An API key; on Node falls back to env MCJ_API_KEY. */
  apiKey?: string;
  /** Retries of 429 and 5xx answers (and network errors of idempotent requests). Default 3. */
  maxRetries?: number;
  /** Per attempt; default 60 s. */
  timeoutMs?: number;
  /** Another fetch (tests, proxies). Default: the global fetch. */
  fetch?: typeof fetch;
  /** Extra headers on every request. */
  headers?: Record<string, string>;
}

/** An answer other than 2xx, with the service's `{error: {code, message, details}}` body. */
export class ApiError extends Error {
  readonly status: number;
  readonly code: string;
  readonly details: unknown;
  readonly body: unknown;
  readonly headers: Headers;

  constructor(status: number, body: unknown, headers: Headers) {
    const error = (body as { error?: { code?: unknown; message?: unknown; details?: unknown } } | undefined)?.error;
    const message = typeof error?.message === "string" ? error.message : `HTTP ${status}`;
    super(`${status} ${message}`);
    this.name = "ApiError";
    this.status = status;
    this.code = typeof error?.code === "string" ? error.code : `http_${status}`;
    this.details = error?.details;
    this.body = body;
    this.headers = headers;
  }
}

/** The request never got an answer (DNS, refused connection, timeout). */
export class ApiConnectionError extends Error {
  constructor(message: string, options?: { cause?: unknown }) {
    super(message, options);
    this.name = "ApiConnectionError";
  }
}

export interface WaitOptions {
  /** Called after every poll with the job as it is now. */
  onProgress?: (job: Job) => void;
  /** First poll interval; default 500 ms. Doubles (×1.5) while nothing changes, up to maxIntervalMs. */
  intervalMs?: number;
  /** Default 5 s. */
  maxIntervalMs?: number;
  /** Give up (ApiConnectionError is not thrown; a plain Error is) after this long. Default: never. */
  timeoutMs?: number;
  signal?: AbortSignal;
}

const FINISHED = new Set(["COMPLETED", "FAILED", "CANCELED", "EXPIRED"]);
const IDEMPOTENT = new Set(["GET", "PUT", "DELETE"]);

const errorCode = (body: unknown) => (body as { error?: { code?: unknown } } | undefined)?.error?.code;

function env(name: string): string | undefined {
  const process = (globalThis as { process?: { env?: Record<string, string | undefined> } }).process;
  return process?.env?.[name];
}

const sleep = (ms: number, signal?: AbortSignal) =>
  new Promise<void>((resolve, reject) => {
    if (signal?.aborted) return reject(signal.reason);
    const timer = setTimeout(() => {
      signal?.removeEventListener("abort", onAbort);
      resolve();
    }, ms);
    const onAbort = () => {
      clearTimeout(timer);
      reject(signal?.reason);
    };
    signal?.addEventListener("abort", onAbort, { once: true });
  });

/** Seconds or an HTTP date → milliseconds; undefined when absent or unreadable. */
export function retryAfterMs(header: string | null): number | undefined {
  if (!header) return undefined;
  const seconds = Number(header);
  if (Number.isFinite(seconds)) return Math.max(0, seconds * 1000);
  const date = Date.parse(header);
  return Number.isNaN(date) ? undefined : Math.max(0, date - Date.now());
}

export class Client {
  readonly baseURL: string;
  readonly #apiKey: string | undefined;
  readonly #maxRetries: number;
  readonly #timeoutMs: number;
  readonly #fetch: typeof fetch;
  readonly #headers: Record<string, string>;

  constructor(options: ClientOptions = {}) {
    const baseURL = options.baseURL ?? env("MCJ_BASE_URL");
    if (!baseURL) throw new Error("Give baseURL (or set MCJ_BASE_URL)");
    this.baseURL = baseURL.replace(/\/+$/, "");
    this.#apiKey = options.apiKey ?? env("MCJ_API_KEY");
    this.#maxRetries = options.maxRetries ?? 3;
    this.#timeoutMs = options.timeoutMs ?? 60_000;
    this.#fetch = options.fetch ?? ((input, init) => globalThis.fetch(input, init));
    this.#headers = options.headers ?? {};
  }

  /** Any operation by its id, typed from the OpenAPI document. */
  async request<K extends OperationId>(operation: K, params: RequestParams<K>): Promise<Response<K>> {
    const route = routes[operation];
    const pathParams = (params.path ?? {}) as Record<string, string>;
    const path = route.path.replace(/\{(\w+)\}/g, (_, name: string) => {
      const value = pathParams[name];
      if (value === undefined || value === "") throw new Error(`${operation}: path parameter ${name} is required`);
      return encodeURIComponent(value);
    });
    const search = new URLSearchParams();
    for (const [name, value] of Object.entries((params.query ?? {}) as Record<string, unknown>)) {
      if (value !== undefined && value !== null) search.set(name, String(value));
    }
    const url = `${this.baseURL}${path}${search.size > 0 ? `?${search}` : ""}`;
    const headers: Record<string, string> = { accept: "application/json", ...this.#headers };
    if (this.#apiKey) headers.authorization = `Bearer ${this.#apiKey}`;
    if (params.body !== undefined) headers["content-type"] = "application/json";
    // With a key, the server answers a repeat with the first response: retrying is safe.
    const retrySafe = IDEMPOTENT.has(route.method) || "idempotencyKey" in route;
    if ("idempotencyKey" in route) headers["idempotency-key"] = params.idempotencyKey ?? globalThis.crypto.randomUUID();
    const init = {
      method: route.method,
      headers,
      body: params.body === undefined ? undefined : JSON.stringify(params.body),
    };
    return (await this.#send(url, init, retrySafe, params.signal)) as Response<K>;
  }

  async #send(
    url: string,
    init: RequestInit & { method: string },
    retrySafe: boolean,
    signal?: AbortSignal,
  ): Promise<unknown> {
    for (let attempt = 0; ; attempt++) {
      const backoff = Math.min(30_000, 500 * 2 ** attempt) * (0.5 + Math.random() / 2);
      const timeout = AbortSignal.timeout(this.#timeoutMs);
      let response: globalThis.Response;
      try {
        response = await this.#fetch(url, { ...init, signal: signal ? AbortSignal.any([signal, timeout]) : timeout });
      } catch (error) {
        if (signal?.aborted) throw signal.reason;
        if (attempt < this.#maxRetries && retrySafe) {
          await sleep(backoff, signal);
          continue;
        }
        throw new ApiConnectionError(`${init.method} ${url} failed: ${(error as Error).message}`, { cause: error });
      }
      const text = await response.text();
      let body: unknown = text;
      try {
        body = text ? JSON.parse(text) : undefined;
      } catch {}
      if (response.ok) return body;
      const retryable =
        response.status === 429 ||
        [502, 503, 504].includes(response.status) ||
        (response.status >= 500 && retrySafe) ||
        // The first request with this key is still running: its answer comes to a retry.
        (response.status === 409 && errorCode(body) === "idempotency_key_in_progress");
      if (retryable && attempt < this.#maxRetries) {
        await sleep(Math.min(60_000, retryAfterMs(response.headers.get("retry-after")) ?? backoff), signal);
        continue;
      }
      throw new ApiError(response.status, body, response.headers);
    }
  }

  /** Every item of a paginated list, fetching pages as the loop goes. */
  async *paginate<K extends PagedOperation>(operation: K, params: RequestParams<K>): AsyncGenerator<Item<K>> {
    let after: string | undefined;
    do {
      const query = { ...(params.query as object | undefined), ...(after ? { after } : {}) };
      const page = (await this.request(operation, { ...params, query } as RequestParams<K>)) as {
        data: Item<K>[];
        pagination: { hasMore: boolean; nextCursor: string | null };
      };
      yield* page.data;
      after = page.pagination.hasMore && page.pagination.nextCursor ? page.pagination.nextCursor : undefined;
    } while (after);
  }

  readonly calls = {
    create: (body: Body<"createCall">) => this.request("createCall", { body }).then((r) => r.data),
    list: (query?: Query<"listCalls">) => this.request("listCalls", { query }),
    iterate: (query?: Omit<Query<"listCalls">, "after">) => this.paginate("listCalls", { query }),
    get: (callId: string) => this.request("getCall", { path: { callId } }).then((r) => r.data),
    /** Roark's import routes: a call from Vapi's end-of-call report or Retell's call_ended payload. */
    importVapi: (body: Body<"importVapiCall">) => this.request("importVapiCall", { body }).then((r) => r.data),
    importRetell: (body: Body<"importRetellCall">) => this.request("importRetellCall", { body }).then((r) => r.data),
    /** The call stored with your own id (`externalId`), or undefined. */
    byExternalId: (externalId: string) => this.request("listCalls", { query: { externalId } }).then((r) => r.data[0]),
    /** Deletes the call, its transcript and its values in every job (also from analytics). */
    delete: (callId: string) => this.request("deleteCall", { path: { callId } }).then((r) => r.data),
    metrics: (callId: string, query?: Omit<Query<"listCallMetrics">, "after">) =>
      this.paginate("listCallMetrics", { path: { callId }, query }),
  };

  readonly metrics = {
    create: (body: Body<"createMetricDefinition">) =>
      this.request("createMetricDefinition", { body }).then((r) => r.data),
    list: (query?: Query<"listMetricDefinitions">) => this.request("listMetricDefinitions", { query }),
    iterate: (query?: Omit<Query<"listMetricDefinitions">, "after">) =>
      this.paginate("listMetricDefinitions", { query }),
    get: (idOrSlug: string) => this.request("getMetricDefinition", { path: { idOrSlug } }).then((r) => r.data),
    /** Archived: new jobs, policies and backfills refuse it; what runs it goes on. */
    archive: (idOrSlug: string) => this.request("archiveMetricDefinition", { path: { idOrSlug } }).then((r) => r.data),
    unarchive: (idOrSlug: string) =>
      this.request("unarchiveMetricDefinition", { path: { idOrSlug } }).then((r) => r.data),
    /** How often the judge's values match reviewed ones (accuracy; mean absolute error for numbers). */
    agreement: (idOrSlug: string) => this.request("getMetricAgreement", { path: { idOrSlug } }).then((r) => r.data),
    /** Every version of a definition, newest first (a job may run any: `metrics: [{id, version}]`). */
    versions: (idOrSlug: string) => this.paginate("listMetricDefinitionVersions", { path: { idOrSlug } }),
    update: (idOrSlug: string, body: Body<"updateMetricDefinition">) =>
      this.request("updateMetricDefinition", { path: { idOrSlug }, body }).then((r) => r.data),
  };

  readonly jobs = {
    create: (body: CreateJobInput) => this.request("createCollectionJob", { body }).then((r) => r.data),
    /** What the job would cost, per metric and judging mode; nothing is created. */
    estimate: (body: CreateJobInput) => this.request("estimateCollectionJob", { body }).then((r) => r.data),
    list: (query?: Query<"listCollectionJobs">) => this.request("listCollectionJobs", { query }),
    iterate: (query?: Omit<Query<"listCollectionJobs">, "after">) => this.paginate("listCollectionJobs", { query }),
    get: (jobId: string) => this.request("getCollectionJob", { path: { jobId } }).then((r) => r.data),
    cancel: (jobId: string) => this.request("cancelCollectionJob", { path: { jobId } }).then((r) => r.data),
    retry: (jobId: string) => this.request("retryCollectionJob", { path: { jobId } }).then((r) => r.data),
    /** Values grouped per metric, page by page (each page holds a slice of every metric's values). */
    values: (jobId: string, query?: Omit<Query<"listJobMetricValues">, "after">) =>
      this.paginate("listJobMetricValues", { path: { jobId }, query }),
    /** Confirms or corrects a value (`metricId`: id or slug); the judge's value is kept beside it. */
    review: (jobId: string, callId: string, metricId: string, body: Body<"reviewMetricValue">) =>
      this.request("reviewMetricValue", { path: { jobId, callId, metricId }, body }).then((r) => r.data),
    /** Polls until the job is COMPLETED, FAILED, CANCELED or EXPIRED and returns it. */
    wait: (jobId: string, options: WaitOptions = {}) => this.#wait(jobId, options),
    /** Creates a job and waits for it to end, reporting progress. */
    createAndWait: async (body: CreateJobInput, options: WaitOptions = {}) => {
      const job = await this.jobs.create(body);
      options.onProgress?.(job);
      return this.#wait(job.id, options);
    },
  };

  readonly policies = {
    create: (body: Body<"createMetricPolicy">) => this.request("createMetricPolicy", { body }).then((r) => r.data),
    iterate: () => this.paginate("listMetricPolicies", {}),
    get: (policyId: string) => this.request("getMetricPolicy", { path: { policyId } }).then((r) => r.data),
    update: (policyId: string, body: Body<"updateMetricPolicy">) =>
      this.request("updateMetricPolicy", { path: { policyId }, body }).then((r) => r.data),
    delete: (policyId: string) => this.request("deleteMetricPolicy", { path: { policyId } }).then((r) => r.data),
  };

  readonly backfills = {
    create: (body: Body<"createBackfill">) => this.request("createBackfill", { body }).then((r) => r.data),
    iterate: () => this.paginate("listBackfills", {}),
    get: (backfillId: string) => this.request("getBackfill", { path: { backfillId } }).then((r) => r.data),
    update: (backfillId: string, body: Body<"updateBackfill">) =>
      this.request("updateBackfill", { path: { backfillId }, body }).then((r) => r.data),
    delete: (backfillId: string) => this.request("deleteBackfill", { path: { backfillId } }).then((r) => r.data),
    run: (backfillId: string) => this.request("runBackfill", { path: { backfillId } }).then((r) => r.data),
  };

  readonly analytics = {
    names: (query?: Query<"customMetricNames">) => this.request("customMetricNames", { query }).then((r) => r.data),
    aggregate: (query: Query<"customMetricsAggregate">) =>
      this.request("customMetricsAggregate", { query }).then((r) => r.data),
    daily: (query: Query<"customMetricsDaily">) => this.request("customMetricsDaily", { query }).then((r) => r.data),
    timeseries: (query: Query<"customMetricsTimeseries">) =>
      this.request("customMetricsTimeseries", { query }).then((r) => r.data),
    tags: (query: Query<"customMetricTags">) => this.request("customMetricTags", { query }).then((r) => r.data),
    session: (callId: string) => this.request("customMetricsSession", { path: { callId } }).then((r) => r.data),
    /** Values your agent recorded for stored calls; each value's id makes a resend harmless. */
    record: (body: Body<"recordCustomMetricValues">) =>
      this.request("recordCustomMetricValues", { body }).then((r) => r.data),
  };

  /** The organization's API keys (admin keys only). */
  /** Voice platforms that post their calls here (admin keys); secrets are sent, never answered. */
  readonly integrations = {
    create: (body: Body<"createIntegration">) => this.request("createIntegration", { body }).then((r) => r.data),
    list: (query?: Query<"listIntegrations">) => this.request("listIntegrations", { query }),
    iterate: (query?: Omit<Query<"listIntegrations">, "after">) => this.paginate("listIntegrations", { query }),
    get: (integrationId: string) => this.request("getIntegration", { path: { integrationId } }).then((r) => r.data),
    /** A new `secret` keeps the old one valid for `secretGraceSeconds`. */
    update: (integrationId: string, body: Body<"updateIntegration">) =>
      this.request("updateIntegration", { path: { integrationId }, body }).then((r) => r.data),
    delete: (integrationId: string) =>
      this.request("deleteIntegration", { path: { integrationId } }).then((r) => r.data),
  };

  readonly apiKeys = {
    /** The answer's `apiKey` is the secret, shown only here. */
    create: (body: Body<"createApiKey">) => this.request("createApiKey", { body }).then((r) => r.data),
    list: (query?: Query<"listApiKeys">) => this.request("listApiKeys", { query }),
    iterate: (query?: Omit<Query<"listApiKeys">, "after">) => this.paginate("listApiKeys", { query }),
    revoke: (keyId: string) => this.request("revokeApiKey", { path: { keyId } }).then((r) => r.data),
  };

  /** The key's organization and its settings (changed by admin keys only). */
  readonly organization = {
    get: () => this.request("getOrganization", {}).then((r) => r.data),
    updateSettings: (body: Body<"updateOrganizationSettings">) =>
      this.request("updateOrganizationSettings", { body }).then((r) => r.data),
  };

  /** Who created, changed or deleted definitions, policies, backfills, keys and the webhook secret (admin keys only). */
  readonly auditEvents = {
    list: (query?: Query<"listAuditEvents">) => this.request("listAuditEvents", { query }),
    iterate: (query?: Omit<Query<"listAuditEvents">, "after">) => this.paginate("listAuditEvents", { query }),
  };

  readonly webhookSecret = {
    get: () => this.request("getWebhookSecret", {}).then((r) => r.data),
    rotate: () => this.request("rotateWebhookSecret", {}).then((r) => r.data),
  };

  readonly playground = {
    run: (body: Body<"runPlayground">) => this.request("runPlayground", { body }).then((r) => r.data),
    /** Several metrics on one call in both judge modes, side by side. */
    compareJudgeModes: (body: Body<"compareJudgeModes">) =>
      this.request("compareJudgeModes", { body }).then((r) => r.data),
  };

  async #wait(jobId: string, options: WaitOptions): Promise<Job> {
    const minInterval = options.intervalMs ?? 500;
    const maxInterval = options.maxIntervalMs ?? 5_000;
    const deadline = options.timeoutMs === undefined ? Number.POSITIVE_INFINITY : Date.now() + options.timeoutMs;
    let interval = minInterval;
    let last = "";
    for (;;) {
      const job = await this.request("getCollectionJob", { path: { jobId }, signal: options.signal }).then(
        (r) => r.data,
      );
      options.onProgress?.(job);
      if (FINISHED.has(job.status)) return job;
      if (Date.now() >= deadline) throw new Error(`Job ${jobId} still ${job.status} after ${options.timeoutMs} ms`);
      const progress = `${job.status}/${job.completedItems}/${job.failedItems}`;
      // Poll fast while the job moves, back off while it does not.
      interval = progress === last ? Math.min(maxInterval, interval * 1.5) : minInterval;
      last = progress;
      await sleep(Math.min(interval, Math.max(0, deadline - Date.now())), options.signal);
    }
  }
}

/**
 * Analytics benchmark: seeds the rollups of 1,000,000 metric values (quick: 5,000) over 90
 * days and 50 label combinations into a fresh table on a DynamoDB Local of its own (without
 * a stream: nothing consumes it here, and its records would slow the seeding), through
 * the rollup code the pipeline uses (`rollupIncrements` merges values per rollup item;
 * most items are then put whole, the last 1 % of the values goes through rollup deltas and
 * the applier's exactly-once transactions, so both paths are exercised), and times the
 * real `custom-metrics` handlers.
 *
 * It runs in a child process: `config()` and the DynamoDB client are cached per process, so
 * a separate process keeps this table and engine apart from whatever the caller (bench/run.ts)
 * has configured.
 */
import { spawn } from "node:child_process";
import { fileURLToPath } from "node:url";
import { DynamoDBClient } from "@aws-sdk/client-dynamodb";
import type { APIGatewayProxyEventV2, APIGatewayProxyStructuredResultV2, Context } from "aws-lambda";
import { envFor } from "../shared/config.ts";
import type { BenchFigure } from "./report.ts";

const RESULT_MARKER = "ANALYTICS_BENCH_RESULT ";
/** The quick run checks answers, not times: fewer values, and each query timed once. */
const QUICK_VALUES = 5_000;

/** Runs the benchmark in a child process and returns its figures. */
export async function runAnalyticsBench(options: { quick: boolean }): Promise<BenchFigure[]> {
  const child = spawn(
    process.execPath,
    [...process.execArgv, fileURLToPath(import.meta.url), "--child", ...(options.quick ? ["--quick"] : [])],
    { stdio: ["ignore", "pipe", "inherit"] },
  );
  let stdout = "";
  child.stdout.on("data", (chunk) => {
    stdout += String(chunk);
  });
  const code = await new Promise<number | null>((resolve) => child.on("exit", resolve));
  const line = stdout.split("\n").find((l) => l.startsWith(RESULT_MARKER));
  if (code !== 0 || !line) {
    return [
      {
        name: "Analytics benchmark",
        measured: `failed (exit code ${code})`,
        target: "runs",
        met: false,
        note: stdout.slice(-2000),
      },
    ];
  }
  return JSON.parse(line.slice(RESULT_MARKER.length)) as BenchFigure[];
}

// ---------------------------------------------------------------- the measurement (child)

const DAY = 86_400_000;
const DAYS = 90;
/** A fixed end so the data set (and its figures) are the same on every run. */
const END = Date.parse("2026-11-28T00:00:00Z"); // mid-way between two 10-day buckets
const START = END - DAYS * DAY;
const ORG = "bench-analytics-org";
const LATENCY = "bench-latency";
const RESOLVED = "bench-resolved";
const AGENTS = ["a1", "a2", "a3", "a4", "a5"];
const ENVIRONMENTS = ["prod", "staging"];
const REGIONS = ["EU", "US", "APAC", "LATAM", "MEA"];

const log = (line: string) => process.stderr.write(`[analytics] ${line}\n`);
const day = (ms: number) => new Date(ms).toISOString().slice(0, 10);
const ms = (value: number) => (value >= 1000 ? `${(value / 1000).toFixed(2)} s` : `${Math.round(value)} ms`);

/** mulberry32: the same pseudo-random data set on every run. */
function random(seed: number) {
  let state = seed >>> 0;
  return () => {
    state = (state + 0x6d2b79f5) >>> 0;
    let t = state;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

/** Everything the child uses, loaded up front (and only in the child) so one run sees one version of the code. */
async function load() {
  const [
    engines,
    resources,
    indexStore,
    rollup,
    deltas,
    batchWrite,
    concurrency,
    query,
    gateway,
    aggregate,
    daily,
    timeseries,
  ] = await Promise.all([
    import("../infra/local/engines.ts"),
    import("../infra/local/resources.ts"),
    import("../shared/analytics/index-store.ts"),
    import("../shared/analytics/rollup.ts"),
    import("../shared/analytics/deltas.ts"),
    import("../shared/store/batch-write.ts"),
    import("../shared/concurrency.ts"),
    import("../shared/analytics/query.ts"),
    import("../infra/local/gateway-payloads.ts"),
    import("../functions/api/custom-metrics-aggregate.ts"),
    import("../functions/api/custom-metrics-daily.ts"),
    import("../functions/api/custom-metrics-timeseries.ts"),
  ]);
  return {
    ...engines,
    ...resources,
    ...indexStore,
    ...rollup,
    ...deltas,
    ...batchWrite,
    ...concurrency,
    ...query,
    ...gateway,
    handlers: { aggregate: aggregate.handler, daily: daily.handler, timeseries: timeseries.handler },
  };
}
type Modules = Awaited<ReturnType<typeof load>>;

async function measure(quick: boolean): Promise<BenchFigure[]> {
  const modules = await load();
  const { startDynamoDbLocal, createTable } = modules;
  const engine = await startDynamoDbLocal();
  const tableName = `mcj-analytics-bench-${Date.now()}`;
  Object.assign(process.env, {
    AWS_REGION: "us-east-1",
    AWS_ACCESS_KEY_ID: "local",
    AWS_SECRET_ACCESS_KEY: "local",
    ...envFor({ tableName, dynamodbEndpoint: engine.endpoint }),
    POWERTOOLS_METRICS_DISABLED: "true",
    LOG_LEVEL: process.env.LOG_LEVEL ?? "WARN",
  });
  try {
    await createTable(
      new DynamoDBClient({
        region: "us-east-1",
        endpoint: engine.endpoint,
        credentials: { accessKeyId: "local", secretAccessKey: "local" },
      }),
      tableName,
      { stream: false },
    );
    const seeded = await seed(modules, quick ? QUICK_VALUES : 1_000_000);
    return await query(modules, seeded, quick);
  } finally {
    await engine.stop();
  }
}

interface Seeded {
  values: number;
  items: number;
  seconds: number;
  resolvedSum: number;
  latencyP95: number;
  /** Exact sum of bench-resolved per agent × region (for the groupBy check). */
  resolvedByGroup: Map<string, number>;
}

/** Series seeded at once: one computes its rollups while another's writes are in flight. */
const SERIES_IN_FLIGHT = 2;

async function seed(modules: Modules, total: number): Promise<Seeded> {
  const { indexRollups, rollupIncrements, rollupItem, deltaItem, toDelta, applyRollupDeltas, batchPut, mapLimit } =
    modules;
  type Input = Parameters<typeof indexRollups>[0][number];

  const combos = AGENTS.flatMap((agentId) =>
    ENVIRONMENTS.flatMap((environmentId) => REGIONS.map((region) => ({ agentId, environmentId, region }))),
  );
  const metrics = [
    { slug: LATENCY, outputType: "NUMERIC" as const, histogram: true },
    { slug: RESOLVED, outputType: "BOOLEAN" as const, histogram: false },
  ];
  const series = combos
    .flatMap((labels, comboIndex) => metrics.map((metric) => ({ labels, comboIndex, metric })))
    .map((entry, seriesIndex) => ({ ...entry, seriesIndex }));
  const perSeries = Math.floor(total / series.length);
  const latencies = new Float64Array(perSeries * combos.length);
  let latencyCount = 0;
  let resolvedSum = 0;
  const resolvedByGroup = new Map<string, number>();
  let items = 0;
  let seriesDone = 0;
  const started = performance.now();
  log(`seeding ${perSeries * series.length} values (${combos.length} label sets × 2 metrics)`);

  const putAll = (records: Record<string, unknown>[]) => batchPut(records, { requestsInFlight: 16 });

  await mapLimit(series, SERIES_IN_FLIGHT, async ({ labels, comboIndex, metric, seriesIndex }) => {
    // A generator per series: the same data set on every run, whatever order the series finish in.
    const next = random(42 + seriesIndex);
    const inputs: Input[] = [];
    for (let i = 0; i < perSeries; i++) {
      const at = START + Math.floor(next() * DAYS * DAY);
      let numeric: number;
      if (metric.outputType === "BOOLEAN") {
        numeric = next() < 0.7 ? 1 : 0;
        resolvedSum += numeric;
        const group = `${labels.agentId}|${labels.region}`;
        resolvedByGroup.set(group, (resolvedByGroup.get(group) ?? 0) + numeric);
      } else {
        // Log-normal latency around 800 ms (Box–Muller).
        const normal = Math.sqrt(-2 * Math.log(1 - next())) * Math.cos(2 * Math.PI * next());
        numeric = Math.round(Math.exp(Math.log(800) + 0.6 * normal));
        latencies[latencyCount++] = numeric;
      }
      inputs.push({ orgId: ORG, ...metric, labels, at: new Date(at).toISOString(), numeric });
    }
    await indexRollups(inputs);
    // 99 % of the values: merged per rollup item and put whole (a fresh table).
    const bulk = Math.floor(inputs.length * 0.99);
    const increments = rollupIncrements(inputs.slice(0, bulk));
    await putAll(increments.map(rollupItem));
    // The rest: as the pipeline records them, one delta per ten values, applied by the
    // rollup applier's code (merged ADD updates, each delta deleted exactly once).
    const live = inputs.slice(bulk);
    const deltas = [];
    for (let i = 0; i < live.length; i += 10) {
      const group = live.slice(i, i + 10);
      deltas.push(
        deltaItem(
          ORG,
          group.map((input, n) => `${input.slug}|${comboIndex}|${i + n}`),
          group,
        ),
      );
    }
    await putAll(deltas);
    await applyRollupDeltas(deltas.map(toDelta));
    items += increments.length;
    if (++seriesDone % 20 === 0) {
      log(`  ${seriesDone}/${series.length} series, ${items} rollup items, ${ms(performance.now() - started)}`);
    }
  });
  const sorted = latencies.slice(0, latencyCount).sort();
  return {
    values: perSeries * series.length,
    items,
    seconds: (performance.now() - started) / 1000,
    resolvedSum,
    latencyP95: sorted[Math.ceil(0.95 * sorted.length) - 1] ?? 0,
    resolvedByGroup,
  };
}

async function query(modules: Modules, seeded: Seeded, quick: boolean): Promise<BenchFigure[]> {
  const { buildHttpApiEvent, handlers } = modules;
  type Route = keyof typeof handlers;
  const context = { awsRequestId: "bench", getRemainingTimeInMillis: () => 29_000 } as unknown as Context;

  /** One request through the real handler, as API Gateway would send it after the authorizer. */
  async function call(route: Route, params: Record<string, string>) {
    const url = `/v1/custom-metrics/${route}?${new URLSearchParams(params)}`;
    const event = buildHttpApiEvent(
      { method: "GET", url, rawHeaders: [], body: Buffer.alloc(0), sourceIp: "127.0.0.1", protocol: "HTTP/1.1" },
      { routeKey: `GET /v1/custom-metrics/${route}`, pathParameters: {}, requestId: "bench", now: new Date() },
    );
    (event.requestContext as unknown as Record<string, unknown>).authorizer = {
      lambda: { orgId: ORG, role: "member", keyId: "bench" },
    };
    const handler = handlers[route] as unknown as (
      e: APIGatewayProxyEventV2,
      c: Context,
    ) => Promise<APIGatewayProxyStructuredResultV2>;
    const started = performance.now();
    const response = await handler(event, context);
    const elapsed = performance.now() - started;
    if (response.statusCode !== 200) throw new Error(`${url} answered ${response.statusCode}: ${response.body}`);
    return { elapsed, data: JSON.parse(String(response.body)).data };
  }
  /** Routes that have had their warm-up request. */
  const warmedRoutes = new Set<Route>();
  /**
   * Median of `runs` runs after one warm-up (the first request also loads the modules):
   * three for the figures with targets, one for the growth curves, which have none.
   */
  async function timed(route: Route, params: Record<string, string>, runs = quick ? 1 : 3) {
    const first = await call(route, params);
    warmedRoutes.add(route);
    const timings = [];
    for (let i = 0; i < runs; i++) timings.push(await call(route, params));
    const median = timings.map((r) => r.elapsed).sort((a, b) => a - b)[Math.floor(timings.length / 2)] ?? first.elapsed;
    return { median, first: first.elapsed, data: first.data };
  }
  const range = (days: number) => ({ startDate: day(END - days * DAY), endDate: day(END) });

  // -- correctness on the full range
  const all = await timed("aggregate", range(DAYS));
  const p95Error = Math.abs(all.data[LATENCY] - seeded.latencyP95) / seeded.latencyP95;
  const grouped = await timed("aggregate", { ...range(DAYS), metricNames: RESOLVED, groupBy: "agentId,region" });
  const groupsExact =
    grouped.data.length === seeded.resolvedByGroup.size &&
    grouped.data.every(
      (g: { agentId: string; region: string; metrics: Record<string, number> }) =>
        g.metrics[RESOLVED] === seeded.resolvedByGroup.get(`${g.agentId}|${g.region}`),
    );
  const correct = all.data[RESOLVED] === seeded.resolvedSum && p95Error <= 0.01 && groupsExact;
  log(`aggregate 90 d: ${ms(all.median)} (first ${ms(all.first)}); correct: ${correct}`);

  // -- the two targets
  const series = await timed("timeseries", { metricName: LATENCY, ...range(7), step: "1h" });
  const points = series.data.result.reduce((n: number, s: { values: unknown[] }) => n + s.values.length, 0);
  log(`timeseries 1h over 7 d: ${ms(series.median)}, ${series.data.result.length} series, ${points} points`);

  // -- growth with range and label count
  /**
   * One timed request for the growth curves: a route's first request there comes after a
   * warm-up of its own (it compiles that route's code), later ones need none.
   */
  const once = async (route: Route, params: Record<string, string>) => {
    if (!warmedRoutes.has(route)) return timed(route, params, 1);
    const { elapsed, data } = await call(route, params);
    return { median: elapsed, first: elapsed, data };
  };
  const byRange = [];
  for (const days of [1, 7, 30, 90]) byRange.push((await once("aggregate", range(days))).median);
  const byLabels = [];
  const filters: Record<string, string>[] = [{ agentId: "a1", environmentId: "prod" }, { agentId: "a1" }, {}];
  for (const filter of filters) {
    byLabels.push((await once("aggregate", { ...range(DAYS), ...filter })).median);
  }
  const kolkata = await once("aggregate", { ...range(DAYS), timezone: "Asia/Kolkata" });
  const seriesByRange = [];
  for (const days of [1, 7, 30]) {
    seriesByRange.push((await once("timeseries", { metricName: LATENCY, ...range(days), step: "1h" })).median);
  }
  const dailyUtc = await once("daily", range(DAYS));
  const dailyKolkata = await once("daily", { ...range(DAYS), timezone: "Asia/Kolkata" });
  const dailyNewYork = await once("daily", { ...range(DAYS), timezone: "America/New_York" });

  const size = quick ? `${QUICK_VALUES / 1000}k values` : "1M values";
  const timeTarget = (value: number) => (quick ? null : value < 1000);
  return [
    {
      name: `Analytics: seeding (${size}, 90 days, 50 label sets × 2 metrics)`,
      measured: `${seeded.items.toLocaleString("en-US")} rollup items in ${seeded.seconds.toFixed(0)} s`,
      target: "—",
      met: null,
    },
    {
      name: "Analytics: answers exact (sum, groupBy 2 labels) and p95 within ±1 %",
      measured: correct ? `yes (p95 off by ${(p95Error * 100).toFixed(2)} %)` : `NO (p95 off by ${p95Error})`,
      target: "exact",
      met: correct,
    },
    {
      name: `Analytics: aggregate over 90 days (${size}, 50 label sets)`,
      measured: ms(all.median),
      target: "< 1 s",
      met: timeTarget(all.median),
      note: `first request ${ms(all.first)}`,
    },
    {
      name: "Analytics: timeseries at 1h over 7 days (50 series)",
      measured: ms(series.median),
      target: "< 1 s",
      met: timeTarget(series.median),
      note: `${points} points`,
    },
    {
      name: "Analytics: aggregate, range 1 / 7 / 30 / 90 days",
      measured: byRange.map(ms).join(" / "),
      target: "—",
      met: null,
    },
    {
      name: "Analytics: aggregate 90 days, 5 / 10 / 50 label sets",
      measured: byLabels.map(ms).join(" / "),
      target: "—",
      met: null,
    },
    {
      name: "Analytics: aggregate 90 days in Asia/Kolkata; groupBy agentId,region",
      measured: `${ms(kolkata.median)}; ${ms(grouped.median)}`,
      target: "—",
      met: null,
    },
    {
      name: "Analytics: timeseries 1h, range 1 / 7 / 30 days",
      measured: seriesByRange.map(ms).join(" / "),
      target: "—",
      met: null,
    },
    {
      name: "Analytics: daily over 90 days, UTC / Asia/Kolkata / America/New_York",
      measured: [dailyUtc, dailyKolkata, dailyNewYork].map((r) => ms(r.median)).join(" / "),
      target: "—",
      met: null,
    },
  ];
}

if (process.argv[1] === fileURLToPath(import.meta.url) && process.argv.includes("--child")) {
  const figures = await measure(process.argv.includes("--quick"));
  process.stdout.write(`${RESULT_MARKER}${JSON.stringify(figures)}\n`);
  process.exit(0);
}

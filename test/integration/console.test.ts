/**
 * The web console in headless Chromium (Debian's /usr/bin/chromium driven by
 * playwright-core), served by the local runtime on the API's origin: load, enter the key,
 * watch a job reach 100%, open its values and the referenced transcript segment, review a value.
 * Screenshots land in test-artifacts/.
 */
import { existsSync, mkdirSync } from "node:fs";
import { fileURLToPath } from "node:url";
import { type Browser, chromium } from "playwright-core";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { builtInMetric, createCalls, createMetrics, llmMetric } from "../support/fixtures.ts";
import { startTestStack, type TestStack } from "../support/stack.ts";

const CHROMIUM = process.env.CHROMIUM_PATH ?? "/usr/bin/chromium";
const artifacts = fileURLToPath(new URL("../../test-artifacts/", import.meta.url));

describe.skipIf(!existsSync(CHROMIUM))("web console in headless Chromium", () => {
  let stack: TestStack;
  let browser: Browser;

  beforeAll(async () => {
    mkdirSync(artifacts, { recursive: true });
    // Some latency so the page sees the job while it runs.
    stack = await startTestStack({ anthropic: { latencyMs: 150 } });
    browser = await chromium.launch({ executablePath: CHROMIUM, args: ["--no-sandbox"] });
  });
  afterAll(async () => {
    await browser?.close();
    await stack?.stop();
  });

  it("serves the page and its assets from /console on the API origin", async () => {
    const page = await fetch(`${stack.baseUrl}/console`);
    expect(page.status).toBe(200);
    expect(page.headers.get("content-type")).toContain("text/html");
    expect((await fetch(`${stack.baseUrl}/console/app.js`)).headers.get("content-type")).toContain("javascript");
    expect((await fetch(`${stack.baseUrl}/console/../package.json`)).status).not.toBe(200);
    expect((await fetch(`${stack.baseUrl}/console/%2e%2e/package.json`)).status).toBe(404);
  });

  it("shows a job reaching 100%, its values with reasoning and the referenced segment", async () => {
    const callIds = await createCalls(stack.api, 3);
    await createMetrics(stack.api, [
      builtInMetric("console-turns", { kind: "TURN_COUNT" }, "COUNT"),
      llmMetric("console-refund", "BOOLEAN", 'Did the customer ask for a "refund"?'),
    ]);
    const page = await browser.newPage({ viewport: { width: 1200, height: 1000 } });
    const errors: string[] = [];
    page.on("pageerror", (error) => errors.push(error.message));
    await page.goto(`${stack.baseUrl}/console`);
    await expect(page.title()).resolves.toBe("Metric collection console");
    await page.fill("#api-key", stack.apiKey);
    await page.click("#connect");
    await page.waitForSelector("#jobs tbody td.muted, #jobs tbody tr.job");

    const { body } = await stack.api("POST", "/v1/metric/collection-jobs", {
      callIds,
      metrics: [{ id: "console-turns" }, { id: "console-refund" }],
    });
    const jobId: string = body.data.id;
    const row = page.locator(`tr.job[data-job-id="${jobId}"]`);
    await row.waitFor({ timeout: 60_000 });
    await page.screenshot({ path: `${artifacts}console-job-running.png`, fullPage: true });
    await expect
      .poll(() => row.locator('[data-testid="percent"]').textContent(), { timeout: 180_000, interval: 250 })
      .toBe("100%");
    await expect.poll(() => row.locator(".badge").textContent(), { timeout: 60_000 }).toBe("COMPLETED");
    await page.screenshot({ path: `${artifacts}console-job-complete.png`, fullPage: true });

    await row.click();
    const refund = page.locator('.metric[data-metric="console-refund"]');
    await refund.locator("tr.value").first().waitFor();
    expect(await refund.locator("tr.value").count()).toBe(3);
    expect(await refund.locator('[data-testid="value"]').first().textContent()).toBe("true");
    expect(await refund.locator(".reasoning").first().textContent()).toContain('mention "refund"');
    expect(await page.locator('.metric[data-metric="console-turns"] tr.value').count()).toBe(3);

    await refund.locator('[data-testid="show-transcript"]').first().click();
    const highlighted = page.locator("#transcript li.highlight");
    await highlighted.first().waitFor();
    expect(await highlighted.count()).toBe(1);
    expect(await highlighted.textContent()).toContain("I need a refund");
    await page.screenshot({ path: `${artifacts}console-values.png`, fullPage: true });

    // Correct a value; the agreement beside the metric's name follows.
    const agreement = refund.locator('[data-testid="agreement"]');
    await expect.poll(() => agreement.textContent()).toBe(" · no reviews yet");
    const firstRow = refund.locator("tr.value").first();
    await firstRow.locator('[data-testid="review"] input').fill("false");
    await firstRow.locator('[data-testid="save-review"]').click();
    await expect.poll(() => firstRow.locator('[data-testid="review"]').textContent()).toBe("reviewed: false");
    await expect.poll(() => agreement.textContent()).toBe(" · 0 of 1 reviewed agree");
    await page.screenshot({ path: `${artifacts}console-review.png`, fullPage: true });

    // The chart answers from the analytics API, or says it is not there; it never breaks the page.
    await page.waitForSelector('#chart svg, #chart p, [data-testid="chart-unavailable"]', { timeout: 60_000 });
    await page.screenshot({ path: `${artifacts}console-chart.png`, fullPage: true });
    expect(errors).toEqual([]);
    await page.close();
  });

  it("lets an admin create a key (its secret shown once) and revoke it; hides keys from other roles", async () => {
    const page = await browser.newPage({ viewport: { width: 1200, height: 1000 } });
    page.on("dialog", (dialog) => dialog.accept());
    await page.goto(`${stack.baseUrl}/console`);
    await page.fill("#api-key", stack.apiKey);
    await page.click("#connect");
    await page.locator("#keys-section tr.api-key").first().waitFor();
    await page.fill("#new-key-name", "console reader");
    await page.selectOption("#new-key-role", "read-only");
    await page.click("#create-key");
    const secret = await page.locator('[data-testid="new-key"]').textContent();
    expect(secret).toMatch(/^mcj_/);
    const me = await stack.client(secret ?? "")("GET", "/v1/me");
    expect(me.body.data.role).toBe("read-only");
    const row = page.locator(`tr.api-key[data-key-id="${me.body.data.keyId}"]`);
    await row.locator("button.revoke").click();
    await expect.poll(() => row.textContent(), { timeout: 30_000 }).toContain("revoked");
    expect((await stack.client(secret ?? "")("GET", "/v1/me")).status).toBe(401);
    await page.screenshot({ path: `${artifacts}console-keys.png`, fullPage: true });

    const member = (await stack.api("POST", "/v1/api-keys", { name: "console member", role: "member" })).body.data;
    await page.click("#disconnect");
    await page.fill("#api-key", member.apiKey);
    await page.click("#connect");
    await page.waitForSelector("#jobs tbody td.muted, #jobs tbody tr.job");
    expect(await page.locator("#keys-section").isHidden()).toBe(true);
    await page.close();
  });

  it("lists metric definitions with their versions, archives and brings one back, and finds a call by its external id", async () => {
    const [metric] = await createMetrics(stack.api, [
      llmMetric("console-versions", "BOOLEAN", 'Did the agent say "sorry"?'),
    ]);
    await stack.api("PUT", `/v1/metric/definitions/${metric!.id}`, { llmPrompt: 'Did the agent apologise ("sorry")?' });
    const [callId] = await createCalls(stack.api, 1, { externalId: "crm-4711" });
    const page = await browser.newPage({ viewport: { width: 1200, height: 1000 } });
    const errors: string[] = [];
    page.on("pageerror", (error) => errors.push(error.message));
    await page.goto(`${stack.baseUrl}/console`);
    await page.fill("#api-key", stack.apiKey);
    await page.click("#connect");

    const row = page.locator('tr.definition[data-slug="console-versions"]');
    await row.waitFor({ timeout: 30_000 });
    expect(await row.locator('[data-testid="version"]').textContent()).toBe("v2");
    await row.locator('[data-testid="show-versions"]').click();
    const versions = page.locator("#metric-versions tr.version");
    await expect.poll(() => versions.count()).toBe(2);
    expect(await versions.first().textContent()).toContain("apologise");
    await page.screenshot({ path: `${artifacts}console-metric-versions.png`, fullPage: true });

    // Archiving takes it off the list; the archived list brings it back, and so does unarchiving.
    await row.locator('[data-testid="archive"]').click();
    await row.waitFor({ state: "detached" });
    expect((await stack.api("GET", `/v1/metric/definitions/${metric!.id}`)).body.data.archivedAt).toEqual(
      expect.any(String),
    );
    await page.check("#show-archived");
    await row.locator('[data-testid="unarchive"]').click();
    await row.waitFor({ state: "detached" });
    expect((await stack.api("GET", `/v1/metric/definitions/${metric!.id}`)).body.data.archivedAt).toBeUndefined();
    await page.uncheck("#show-archived");
    await row.waitFor();

    await page.fill("#external-id", "crm-4711");
    await page.click("#find-call");
    await expect.poll(() => page.locator("#transcript-call").textContent()).toBe(callId);
    expect(await page.locator("#transcript li").count()).toBe(4);
    await page.fill("#external-id", "crm-unknown");
    await page.click("#find-call");
    await expect
      .poll(() => page.locator("#call-lookup-result").textContent())
      .toBe('No call has the external id "crm-unknown".');
    expect(errors).toEqual([]);
    await page.close();
  });

  it("shows an admin the integrations with their deliveries and the last failure", async () => {
    const created = await stack.api("POST", "/v1/integrations", {
      provider: "retell",
      name: "Console line",
      secret: "key_console_retell_secret",
    });
    const { id, webhookUrl } = created.body.data;
    // One delivery refused for its signature.
    await fetch(`${stack.baseUrl}${webhookUrl}`, {
      method: "POST",
      headers: { "content-type": "application/json", "x-retell-signature": `v=${Date.now()},d=${"0".repeat(64)}` },
      body: JSON.stringify({ event: "call_ended", call: {} }),
    });
    const page = await browser.newPage({ viewport: { width: 1200, height: 1000 } });
    await page.goto(`${stack.baseUrl}/console`);
    await page.fill("#api-key", stack.apiKey);
    await page.click("#connect");
    const row = page.locator(`tr.integration[data-integration-id="${id}"]`);
    await row.waitFor({ timeout: 30_000 });
    expect(await row.textContent()).toContain(webhookUrl);
    expect(await row.locator('[data-testid="received"]').textContent()).toMatch(/^0/);
    expect(await row.locator('[data-testid="failed"]').textContent()).toMatch(/^1.*401: signature does not match$/);
    await page.screenshot({ path: `${artifacts}console-integrations.png`, fullPage: true });
    await page.close();
  });

  it("refuses a wrong key with a message", async () => {
    const page = await browser.newPage();
    await page.goto(`${stack.baseUrl}/console`);
    await page.fill("#api-key", "mcj_not_a_real_key_0123456789");
    await page.click("#connect");
    await expect.poll(() => page.locator("#status-line").textContent(), { timeout: 30_000 }).toContain("401");
    expect(await page.locator("#main").isHidden()).toBe(true);
    await page.close();
  });
});

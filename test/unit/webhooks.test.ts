import { createServer } from "node:http";
import type { AddressInfo } from "node:net";
import { describe, expect, it } from "vitest";
import { guardedPost } from "../../shared/webhooks/guarded-post.ts";
import { signWebhook, verifyWebhook } from "../../shared/webhooks/signature.ts";
import { addressProblem, webhookUrlProblem } from "../../shared/webhooks/url-safety.ts";

const strict = { allowLoopback: false };
const local = { allowLoopback: true };
const resolvesTo =
  (...addresses: string[]) =>
  async () =>
    addresses;

describe("webhook URL safety", () => {
  it("accepts public https URLs", async () => {
    expect(await webhookUrlProblem("https://hooks.example.com/x", strict, resolvesTo("93.184.216.34"))).toBeUndefined();
    expect(await webhookUrlProblem("https://[2606:4700::1111]/x", strict)).toBeUndefined();
  });

  it("refuses http, credentials and garbage", async () => {
    expect(await webhookUrlProblem("http://hooks.example.com/x", strict, resolvesTo("93.184.216.34"))).toBe(
      "must use https",
    );
    expect(await webhookUrlProblem("https://u:p@hooks.example.com/", strict, resolvesTo("93.184.216.34"))).toMatch(
      /credentials/,
    );
    expect(await webhookUrlProblem("not a url", strict)).toMatch(/not a valid URL/);
    expect(await webhookUrlProblem("ftp://example.com", local)).toBe("must use https");
  });

  it("refuses private, loopback, link-local (metadata) and reserved addresses, also IPv6 and mapped", async () => {
    for (const url of [
      "https://10.1.2.3/",
      "https://172.20.0.1/",
      "https://192.168.1.1/",
      "https://100.64.0.1/",
      "https://169.254.169.254/latest/meta-data",
      "https://0.0.0.0/",
      "https://127.0.0.1/",
      "https://[::1]/",
      "https://[fd00::1]/",
      "https://[fe80::1]/",
      "https://[::ffff:10.0.0.1]/",
      "https://[::ffff:127.0.0.1]/",
      "https://[64:ff9b::a00:1]/",
      "https://[2002:a00:1::]/",
      "https://2130706433/",
    ]) {
      expect(await webhookUrlProblem(url, strict), url).toBeDefined();
    }
  });

  it("refuses IPv4-compatible and IPv4-translated IPv6 forms of internal addresses", async () => {
    for (const url of [
      "https://[::127.0.0.1]/",
      "https://[::7f00:1]/",
      "https://[::10.0.0.1]/",
      "https://[::169.254.169.254]/",
      "https://[::ffff:0:127.0.0.1]/",
      "https://[::ffff:0:a9fe:a9fe]/",
      "https://[::ffff:7f00:1]/",
      "https://[0:0:0:0:0:ffff:192.168.0.1]/",
    ]) {
      expect(await webhookUrlProblem(url, strict), url).toBeDefined();
    }
    for (const address of ["::127.0.0.1", "::ffff:0:127.0.0.1", "::ffff:7f00:1", "::a00:1", "::ffff:0:a00:1"]) {
      expect(addressProblem(address, strict), address).toBeDefined();
      expect(await webhookUrlProblem("https://hooks.example.com/", strict, resolvesTo(address)), address).toBeDefined();
    }
    // A public address in the same forms is judged as the public IPv4 address it carries.
    expect(addressProblem("::ffff:93.184.216.34", strict)).toBeUndefined();
  });

  it("never echoes the internal address a hostname resolved to", async () => {
    for (const address of ["10.0.0.5", "169.254.169.254", "::ffff:0:a9fe:a9fe", "fd00::7"]) {
      const problem = await webhookUrlProblem("https://rebind.example/", strict, resolvesTo("93.184.216.34", address));
      expect(problem).toMatch(/^rebind\.example resolves to an? (private|loopback)/);
      expect(problem).not.toContain(address);
    }
  });

  it("refuses a hostname that resolves to an internal address (any of its addresses)", async () => {
    expect(await webhookUrlProblem("https://localhost/x", strict)).toMatch(/localhost resolves to .*loopback/);
    expect(await webhookUrlProblem("https://rebind.example/", strict, resolvesTo("93.184.216.34", "10.0.0.5"))).toMatch(
      /resolves to a private/,
    );
    expect(
      await webhookUrlProblem("https://nx.invalid/", strict, async () => Promise.reject(new Error("ENOTFOUND"))),
    ).toMatch(/does not resolve/);
  });

  it("allows http and loopback only when local development says so, never private ranges", async () => {
    expect(await webhookUrlProblem("http://127.0.0.1:8080/hook", local)).toBeUndefined();
    expect(await webhookUrlProblem("http://localhost:8080/hook", local)).toBeUndefined();
    expect(await webhookUrlProblem("http://10.0.0.1/hook", local)).toMatch(/private/);
  });
});

describe("webhook signatures", () => {
  it("signs id.timestamp.body with HMAC-SHA256 and verifies it within the tolerance", () => {
    const signature = signWebhook("whsec_test", "whd_1", 1_700_000_000, '{"a":1}');
    expect(signature).toMatch(/^v1=[0-9a-f]{64}$/);
    const headers = { id: "whd_1", timestamp: "1700000000", signature };
    expect(verifyWebhook("whsec_test", headers, '{"a":1}', { now: 1_700_000_010 })).toBe(true);
    expect(verifyWebhook("whsec_test", headers, '{"a":2}', { now: 1_700_000_010 })).toBe(false);
    expect(verifyWebhook("whsec_other", headers, '{"a":1}', { now: 1_700_000_010 })).toBe(false);
    expect(verifyWebhook("whsec_test", headers, '{"a":1}', { now: 1_700_001_000 })).toBe(false);
  });
});

describe("webhook HTTP client", () => {
  it("connects only to addresses that pass the check, whatever the name resolves to at connect time", async () => {
    const bodies: string[] = [];
    const server = createServer((req, res) => {
      let body = "";
      req.on("data", (chunk) => (body += chunk));
      req.on("end", () => {
        bodies.push(`${req.headers["x-webhook-id"]} ${body}`);
        res.writeHead(202).end("ignored");
      });
    });
    await new Promise<void>((resolve) => server.listen(0, "127.0.0.1", resolve));
    const port = (server.address() as AddressInfo).port;
    try {
      const init = { method: "POST", headers: { "x-webhook-id": "whd_1" }, body: '{"a":1}' };
      // localhost resolves to loopback inside the connection's own lookup: refused.
      await expect(guardedPost(strict)(`http://localhost:${port}/hook`, init)).rejects.toThrow(
        /localhost resolves to .*loopback/,
      );
      expect(bodies).toEqual([]);
      const response = await guardedPost(local)(`http://localhost:${port}/hook`, init);
      expect(response.status).toBe(202);
      expect(bodies).toEqual(['whd_1 {"a":1}']);
      await expect(
        guardedPost(local)(`http://127.0.0.1:${port}/hook`, { ...init, signal: AbortSignal.abort(new Error("stop")) }),
      ).rejects.toThrow(/stop/);
    } finally {
      server.close();
    }
  });
});

/**
 * SSRF guard for webhook URLs: https only, and never an address inside the network the
 * service runs in — loopback, private, carrier-grade NAT, link-local (incl. the instance
 * metadata service) or unspecified — whether written as an IP or reached through DNS.
 * Checked when a URL is accepted and again right before each delivery (DNS rebinding).
 */
import { lookup } from "node:dns/promises";
import { BlockList, isIP } from "node:net";

const forbidden = new BlockList();
for (const [network, prefix] of [
  ["0.0.0.0", 8],
  ["10.0.0.0", 8],
  ["100.64.0.0", 10],
  ["169.254.0.0", 16],
  ["172.16.0.0", 12],
  ["192.0.0.0", 24],
  ["192.168.0.0", 16],
  ["198.18.0.0", 15],
  ["224.0.0.0", 4],
  ["240.0.0.0", 4],
] as const) {
  forbidden.addSubnet(network, prefix, "ipv4");
}
for (const [network, prefix] of [
  ["::", 128],
  // NAT64 and 6to4 embed an IPv4 address that may be internal: refused as a whole.
  ["64:ff9b::", 96],
  ["64:ff9b:1::", 48],
  ["2002::", 16],
  ["fc00::", 7],
  ["fe80::", 10],
  ["ff00::", 8],
] as const) {
  forbidden.addSubnet(network, prefix, "ipv6");
}
const loopback = new BlockList();
loopback.addSubnet("127.0.0.0", 8, "ipv4");
loopback.addAddress("::1", "ipv6");

export interface UrlPolicy {
  /** Local development only: http and loopback addresses are allowed. */
  allowLoopback: boolean;
}

/** IPv4-mapped IPv6 (::ffff:10.0.0.1) is judged as the IPv4 address it carries. */
function normalize(address: string): { address: string; family: "ipv4" | "ipv6" } {
  const mapped = /^::ffff:(\d+\.\d+\.\d+\.\d+)$/i.exec(address)?.[1];
  if (mapped) return { address: mapped, family: "ipv4" };
  return { address, family: isIP(address) === 6 ? "ipv6" : "ipv4" };
}

export function addressProblem(raw: string, policy: UrlPolicy): string | undefined {
  const { address, family } = normalize(raw);
  if (loopback.check(address, family)) return policy.allowLoopback ? undefined : `${raw} is a loopback address`;
  if (forbidden.check(address, family)) return `${raw} is a private, link-local or reserved address`;
  return undefined;
}

/** Why the URL may not receive webhooks, or undefined when it may. */
export async function webhookUrlProblem(
  url: string,
  policy: UrlPolicy,
  resolve: (host: string) => Promise<string[]> = async (host) =>
    (await lookup(host, { all: true, verbatim: true })).map((entry) => entry.address),
): Promise<string | undefined> {
  let parsed: URL;
  try {
    parsed = new URL(url);
  } catch {
    return "is not a valid URL";
  }
  if (parsed.protocol !== "https:" && !(policy.allowLoopback && parsed.protocol === "http:")) {
    return "must use https";
  }
  if (parsed.username || parsed.password) return "must not contain credentials";
  const host = parsed.hostname.replace(/^\[|\]$/g, "");
  let addresses: string[];
  if (isIP(host)) addresses = [host];
  else {
    try {
      addresses = await resolve(host);
    } catch {
      return `host ${host} does not resolve`;
    }
  }
  if (addresses.length === 0) return `host ${host} does not resolve`;
  for (const address of addresses) {
    const problem = addressProblem(address, policy);
    if (problem) return host === address ? problem : `${host} resolves to ${problem}`;
  }
  return undefined;
}

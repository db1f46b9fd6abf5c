/**
 * SSRF guard for webhook URLs: https only, and never an address inside the network the
 * service runs in — loopback, private, carrier-grade NAT, link-local (incl. the instance
 * metadata service) or unspecified — whether written as an IP or reached through DNS.
 * Checked when a URL is accepted and again right before each delivery (DNS rebinding).
 */
import { lookup } from "node:dns/promises";
import { BlockList, isIP } from "node:net";
import { config } from "../config.ts";
import { invalid } from "../errors.ts";

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

/** The eight 16-bit groups of an IPv6 address (a trailing dotted IPv4 part included). */
function ipv6Groups(address: string): number[] | undefined {
  let text = address.toLowerCase();
  const dotted = /(\d+)\.(\d+)\.(\d+)\.(\d+)$/.exec(text);
  if (dotted) {
    const [a, b, c, d] = dotted.slice(1).map(Number) as [number, number, number, number];
    text = `${text.slice(0, dotted.index)}${((a << 8) | b).toString(16)}:${((c << 8) | d).toString(16)}`;
  }
  const [head = "", tail] = text.split("::");
  const parse = (part: string) => (part ? part.split(":").map((group) => Number.parseInt(group, 16)) : []);
  const left = parse(head);
  const right = tail === undefined ? [] : parse(tail);
  const groups = [...left, ...new Array(Math.max(0, 8 - left.length - right.length)).fill(0), ...right];
  return groups.length === 8 && groups.every((group) => Number.isInteger(group)) ? groups : undefined;
}

/**
 * IPv6 forms that carry an IPv4 address are judged as that IPv4 address: mapped
 * (::ffff:a.b.c.d), compatible (::a.b.c.d) and translated (::ffff:0:a.b.c.d), whether
 * written dotted or in hex. Whatever carries an internal IPv4 address is internal.
 */
function normalize(address: string): { address: string; family: "ipv4" | "ipv6" } {
  if (isIP(address) !== 6) return { address, family: "ipv4" };
  const groups = ipv6Groups(address);
  if (!groups) return { address, family: "ipv6" };
  const [g0, g1, g2, g3, g4, g5, g6 = 0, g7 = 0] = groups;
  const zeroPrefix = g0 === 0 && g1 === 0 && g2 === 0 && g3 === 0;
  const embedsIpv4 = zeroPrefix && ((g4 === 0 && (g5 === 0xffff || g5 === 0)) || (g4 === 0xffff && g5 === 0));
  // :: and ::1 are IPv6's own unspecified and loopback addresses, not compatible forms.
  if (!embedsIpv4 || (g4 === 0 && g5 === 0 && g6 === 0 && g7 <= 1)) return { address, family: "ipv6" };
  return { address: [g6 >> 8, g6 & 0xff, g7 >> 8, g7 & 0xff].join("."), family: "ipv4" };
}

/** What kind of internal address `raw` is (never the address itself), or undefined when it is public. */
export function addressProblem(raw: string, policy: UrlPolicy): string | undefined {
  const { address, family } = normalize(raw);
  if (loopback.check(address, family)) return policy.allowLoopback ? undefined : "a loopback address";
  if (forbidden.check(address, family)) return "a private, link-local or reserved address";
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
    // A resolved address stays out of the message: it would map the internal network for the caller.
    if (problem) return host === address ? `${host} is ${problem}` : `${host} resolves to ${problem}`;
  }
  return undefined;
}

/** Refuses (as invalid input) a webhook URL that is not https or points inside the network. */
export async function assertWebhookUrl(url: string): Promise<void> {
  const problem = await webhookUrlProblem(url, { allowLoopback: config().webhookAllowLoopback });
  if (problem) {
    throw invalid(`Invalid webhookUrl: ${problem}`, [{ field: "body.webhookUrl", message: problem }]);
  }
}

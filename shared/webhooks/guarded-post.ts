/**
 * The HTTP client of webhook deliveries. The URL check before an attempt resolves the host
 * once; a rebinding DNS server could answer differently when the connection resolves it
 * again. This client closes that gap: the socket's own lookup refuses any internal address,
 * so the connection can only go to an address that passed the check.
 */
import { type LookupAddress, lookup } from "node:dns";
import { request as httpRequest } from "node:http";
import { request as httpsRequest } from "node:https";
import type { LookupFunction } from "node:net";
import { addressProblem, type UrlPolicy } from "./url-safety.ts";

function guardedLookup(policy: UrlPolicy): LookupFunction {
  return (hostname, options, callback) => {
    lookup(hostname, { family: options.family, hints: options.hints, all: true, verbatim: true }, (error, found) => {
      const addresses = found as LookupAddress[];
      if (error) return callback(error, "", 0);
      if (addresses.length === 0) return callback(new Error(`${hostname} does not resolve`), "", 0);
      for (const { address } of addresses) {
        const problem = addressProblem(address, policy);
        if (problem) return callback(new Error(`${hostname} resolves to ${problem}`), "", 0);
      }
      if (options.all) return callback(null, addresses);
      const [first] = addresses as [LookupAddress];
      return callback(null, first.address, first.family);
    });
  };
}

export type WebhookFetch = (url: string, init: RequestInit) => Promise<Response>;

/** A minimal fetch for one POST: no redirects followed, the body of the answer discarded. */
export function guardedPost(policy: UrlPolicy): WebhookFetch {
  return (url, init) =>
    new Promise((resolve, reject) => {
      const target = new URL(url);
      const send = target.protocol === "https:" ? httpsRequest : httpRequest;
      const request = send(
        target,
        {
          method: init.method ?? "POST",
          headers: init.headers as Record<string, string>,
          lookup: guardedLookup(policy),
          ...(init.signal ? { signal: init.signal } : {}),
        },
        (response) => {
          response.resume();
          const status = response.statusCode ?? 0;
          if (status < 200 || status > 599) reject(new Error(`unexpected HTTP status ${status}`));
          else resolve(new Response(null, { status }));
        },
      );
      request.on("error", (error) => reject(init.signal?.aborted ? init.signal.reason : error));
      request.end(typeof init.body === "string" ? init.body : undefined);
    });
}

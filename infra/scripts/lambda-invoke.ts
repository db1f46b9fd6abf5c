/**
 * Synchronous Lambda Invoke for operator scripts, as a signed HTTPS request: the project
 * ships no Lambda client, and this one call needs only the SDK's signer and credential
 * chain (the same ones the DynamoDB and SQS clients use).
 */
import { createHash, createHmac, type Hash, type Hmac } from "node:crypto";
import { defaultProvider } from "@aws-sdk/credential-provider-node";
import { SignatureV4 } from "@smithy/signature-v4";
import type { AwsCredentialIdentityProvider, SourceData } from "@smithy/types";
import type { InvokeFunction } from "./stream-replay.ts";

const toBytes = (data: SourceData) =>
  typeof data === "string"
    ? Buffer.from(data)
    : ArrayBuffer.isView(data)
      ? Buffer.from(data.buffer, data.byteOffset, data.byteLength)
      : Buffer.from(data);

/** SHA-256 (or HMAC-SHA-256 with a secret) in the shape the signer expects. */
class Sha256 {
  private readonly hash: Hash | Hmac;
  constructor(secret?: SourceData) {
    this.hash = secret ? createHmac("sha256", toBytes(secret)) : createHash("sha256");
  }
  update(data: SourceData): void {
    this.hash.update(toBytes(data));
  }
  async digest(): Promise<Uint8Array> {
    return new Uint8Array(this.hash.digest());
  }
}

export function lambdaInvoker(options: {
  region: string;
  /** Default: the region's Lambda endpoint. */
  endpoint?: string;
  /** Default: the SDK's credential chain (environment, profile, SSO, instance role). */
  credentials?: AwsCredentialIdentityProvider;
}): InvokeFunction {
  const signer = new SignatureV4({
    service: "lambda",
    region: options.region,
    credentials: options.credentials ?? defaultProvider(),
    sha256: Sha256,
  });
  const base = options.endpoint ?? `https://lambda.${options.region}.amazonaws.com`;
  return async (functionName, event) => {
    const url = new URL(`${base}/2015-03-31/functions/${encodeURIComponent(functionName)}/invocations`);
    const body = JSON.stringify(event);
    const signed = await signer.sign({
      method: "POST",
      protocol: url.protocol,
      hostname: url.hostname,
      ...(url.port ? { port: Number(url.port) } : {}),
      path: url.pathname,
      query: {},
      headers: { host: url.host, "content-type": "application/json", "x-amz-invocation-type": "RequestResponse" },
      body,
    });
    // fetch sets the host header itself (to the same value that was signed).
    const { host: _host, ...headers } = signed.headers;
    const response = await fetch(url, { method: "POST", headers, body });
    const text = await response.text();
    if (!response.ok) throw new Error(`Invoke ${functionName}: HTTP ${response.status}: ${text.slice(0, 500)}`);
    const functionError = response.headers.get("x-amz-function-error");
    if (functionError) throw new Error(`${functionName} failed (${functionError}): ${text.slice(0, 500)}`);
    return text ? JSON.parse(text) : null;
  };
}

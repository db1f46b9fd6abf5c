/**
 * DynamoDB stream records as they travel: GetRecords read as the wire's JSON, which already
 * has the shape of Lambda's event, and turned into the records a function receives.
 */
import { Readable } from "node:stream";
import { type DynamoDBStreamsClient, GetRecordsCommand } from "@aws-sdk/client-dynamodb-streams";
import type { DynamoDBRecord, AttributeValue as LambdaAttributeValue } from "aws-lambda";

/** DynamoDB Local names its region "ddblocal" in ARNs and records; Lambda would show the real one. */
export function localizeArn(arn: string, region: string): string {
  return arn.replace(/^(arn:aws:dynamodb:)ddblocal:/, `$1${region}:`);
}

/** A stream record as GetRecords sends it: its images are already Lambda's JSON AttributeValues. */
export type WireRecord = Omit<DynamoDBRecord, "eventSourceARN">;

/**
 * GetRecords's records as the wire's JSON, past the SDK's deserializer. The wire already has
 * Lambda's event format (base64 binaries, creation time in epoch seconds): decoding every
 * image into SDK shapes and converting it back only cost CPU (about 0.2 ms per item in the
 * benchmark). Errors (e.g. an expired iterator) still surface as SDK errors.
 */
export async function getRecordsAsJson(
  streams: DynamoDBStreamsClient,
  input: { ShardIterator: string; Limit: number },
  signal?: AbortSignal,
): Promise<{ Records?: WireRecord[]; NextShardIterator?: string }> {
  const command = new GetRecordsCommand(input);
  let page: { Records?: WireRecord[]; NextShardIterator?: string } | undefined;
  command.middlewareStack.add(
    (next) => async (args) => {
      const result = await next(args);
      const response = result.response as { statusCode?: number; body?: unknown };
      const status = response.statusCode ?? 0;
      if (status >= 200 && status < 300) {
        if (!(response.body instanceof Readable)) throw new Error("GetRecords: expected a Node stream body");
        const chunks: Buffer[] = [];
        for await (const chunk of response.body) chunks.push(chunk as Buffer);
        page = JSON.parse(Buffer.concat(chunks).toString("utf8"));
        // The deserializer that follows reads an empty object instead.
        response.body = new TextEncoder().encode("{}");
      }
      return result;
    },
    { step: "deserialize", priority: "low", name: "getRecordsAsJson" },
  );
  await streams.send(command, { abortSignal: signal });
  if (!page) throw new Error("GetRecords: no response body was read");
  return page;
}

/** DynamoDB Local sends an empty map as `{}`; DynamoDB and Lambda send `{M: {}}`. Mends in place. */
function restoreEmptyMaps(image: Record<string, LambdaAttributeValue>): Record<string, LambdaAttributeValue> {
  for (const name in image) image[name] = restoreEmptyMap(image[name] as LambdaAttributeValue);
  return image;
}

function restoreEmptyMap(value: LambdaAttributeValue): LambdaAttributeValue {
  if (value.M !== undefined) restoreEmptyMaps(value.M);
  else if (value.L !== undefined) value.L = value.L.map(restoreEmptyMap);
  else if (Object.keys(value).length === 0) return { M: {} };
  return value;
}

export function toDynamoDBRecord(record: WireRecord, streamArn: string, region: string): DynamoDBRecord {
  const source = record.dynamodb ?? {};
  const created = source.ApproximateCreationDateTime;
  return {
    eventID: record.eventID,
    eventName: record.eventName,
    eventVersion: record.eventVersion ?? "1.1",
    eventSource: "aws:dynamodb",
    awsRegion: region,
    dynamodb: {
      ...(created !== undefined ? { ApproximateCreationDateTime: Math.floor(created) } : {}),
      ...(source.Keys ? { Keys: source.Keys } : {}),
      ...(source.NewImage ? { NewImage: restoreEmptyMaps(source.NewImage) } : {}),
      ...(source.OldImage ? { OldImage: restoreEmptyMaps(source.OldImage) } : {}),
      SequenceNumber: source.SequenceNumber,
      SizeBytes: source.SizeBytes,
      StreamViewType: source.StreamViewType,
    },
    ...(record.userIdentity ? { userIdentity: { ...record.userIdentity } } : {}),
    eventSourceARN: localizeArn(streamArn, region),
  };
}

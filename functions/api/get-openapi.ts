/**
 * GET /openapi.json — the API's OpenAPI document, without an API key (a plain handler, not
 * apiRoute, which demands one). Generated from the same zod schemas that validate requests.
 */
import type { APIGatewayProxyEventV2, APIGatewayProxyStructuredResultV2 } from "aws-lambda";
import { buildOpenApi } from "../../shared/http/openapi.ts";
import { withLambdaContext } from "../../shared/logger.ts";

let document: string | undefined;

export const handler = withLambdaContext(
  async (event: APIGatewayProxyEventV2): Promise<APIGatewayProxyStructuredResultV2> => {
    const stage = event.requestContext?.stage;
    // Behind a named stage the API lives under /<stage>; relative to this document that is "..".
    const serverUrl = stage && stage !== "$default" ? `/${stage}` : "/";
    document ??= JSON.stringify(buildOpenApi({ serverUrl }));
    return {
      statusCode: 200,
      headers: { "content-type": "application/json", "cache-control": "public, max-age=300" },
      body: document,
    };
  },
);

/**
 * POST /v1/integrations/{provider}/{integrationId}/events — a voice platform's webhook. No
 * API key (a plain handler, not apiRoute, which demands one): the platform's signature on
 * the raw body authenticates it (shared/integrations/ingest.ts).
 */
import type { APIGatewayProxyEventV2, APIGatewayProxyStructuredResultV2 } from "aws-lambda";
import { errorResponseOf, json, rawBodyOf } from "../../shared/http/api-handler.ts";
import { enforceApiRateLimit } from "../../shared/http/api-rate-limit.ts";
import { receiveDelivery } from "../../shared/integrations/ingest.ts";
import { withLambdaContext } from "../../shared/logger.ts";

export const handler = withLambdaContext(
  async (event: APIGatewayProxyEventV2): Promise<APIGatewayProxyStructuredResultV2> => {
    try {
      const outcome = await receiveDelivery(
        {
          provider: event.pathParameters?.provider ?? "",
          integrationId: event.pathParameters?.integrationId ?? "",
          rawBody: rawBodyOf(event),
          headers: event.headers ?? {},
        },
        { admit: enforceApiRateLimit },
      );
      return json(200, { data: outcome });
    } catch (error) {
      return errorResponseOf(error, event.routeKey);
    }
  },
);

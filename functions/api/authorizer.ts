/**
 * API Gateway (HTTP API) request authorizer: the Bearer API key → organization and role,
 * before any route handler runs. Simple responses; API Gateway caches them per key.
 */
import type { APIGatewayRequestAuthorizerEventV2, APIGatewaySimpleAuthorizerWithContextResult } from "aws-lambda";
import { authenticate } from "../../shared/auth.ts";
import { logger, withLambdaContext } from "../../shared/logger.ts";

export interface AuthorizerContext {
  orgId: string;
  role: string;
  keyId: string;
}

type AuthorizerResult = APIGatewaySimpleAuthorizerWithContextResult<AuthorizerContext | Record<string, never>>;

export const handler = withLambdaContext(
  async (event: APIGatewayRequestAuthorizerEventV2): Promise<AuthorizerResult> => {
    logger.setCorrelationId(event.requestContext?.requestId);
    const principal = await authenticate(event.headers?.authorization);
    if (!principal) return { isAuthorized: false, context: {} };
    return { isAuthorized: true, context: { orgId: principal.orgId, role: principal.role, keyId: principal.keyId } };
  },
);

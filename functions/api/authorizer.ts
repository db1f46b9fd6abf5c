/**
 * API Gateway (HTTP API) request authorizer: the Bearer API key → organization and role,
 * before any route handler runs. Simple responses; API Gateway caches them per key.
 */
import type { APIGatewayRequestAuthorizerEventV2, APIGatewaySimpleAuthorizerWithContextResult } from "aws-lambda";
import { authenticate } from "../../shared/auth.ts";

export interface AuthorizerContext {
  orgId: string;
  role: string;
  keyId: string;
}

export const handler = async (
  event: APIGatewayRequestAuthorizerEventV2,
): Promise<APIGatewaySimpleAuthorizerWithContextResult<AuthorizerContext | Record<string, never>>> => {
  const principal = await authenticate(event.headers?.authorization);
  if (!principal) return { isAuthorized: false, context: {} };
  return { isAuthorized: true, context: { orgId: principal.orgId, role: principal.role, keyId: principal.keyId } };
};

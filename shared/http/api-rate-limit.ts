/** Every authenticated request counts against its organization's API rate (429 + Retry-After beyond it). */
import { config } from "../config.ts";
import { logger } from "../logger.ts";
import { type Admission, admitApiRequest } from "../store/api-rate-limit.ts";
import { organizationSettings } from "../store/organizations.ts";
import { ApiError } from "./errors.ts";

export async function enforceApiRateLimit(orgId: string): Promise<void> {
  let admission: Admission;
  let limit: { requestsPerSecond: number; burst: number };
  try {
    const { apiRateLimit } = await organizationSettings(orgId);
    limit = apiRateLimit ?? { requestsPerSecond: config().apiRequestsPerSecond, burst: config().apiBurst };
    admission = await admitApiRequest(orgId, limit);
  } catch (error) {
    // The limit protects the service; a request is not refused because its check failed.
    logger.warn("API rate limit not checked", { error: error as Error });
    return;
  }
  if (admission.admitted) return;
  const seconds = admission.retryAfterSeconds;
  throw new ApiError(
    429,
    "rate_limited",
    `This organization may send ${limit.requestsPerSecond} requests per second, in bursts of ${limit.burst}; retry after ${seconds} s`,
    { headers: { "retry-after": String(seconds) } },
  );
}

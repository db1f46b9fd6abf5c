/**
 * The local runtime's stand-in for IAM: while a function runs, its requests to the table,
 * the queues and the model are checked against what its wiring entry grants — the same
 * grants the CDK app turns into policies (infra/stack/service-function.ts, SqsEventSource's
 * consume grant). A missing `sendTo`, table access or secret fails here, in tests, instead
 * of first in AWS. Outside an invocation (pollers, tests' own setup) nothing is checked.
 */
import { AsyncLocalStorage } from "node:async_hooks";
import type { InitializeMiddleware } from "@smithy/types";
import { onServiceClients } from "../../shared/aws.ts";
import { config } from "../../shared/config.ts";
import { API_RATE_LIMIT_SUFFIX, keys } from "../../shared/keys.ts";
import type { QueueName } from "../../shared/table.ts";
import {
  type FunctionEntry,
  type QueueConsumerEntry,
  TABLE_READ_ACTIONS,
  TABLE_WRITE_ACTIONS,
} from "../../shared/wiring.ts";

export class AccessDeniedError extends Error {
  constructor(functionId: string, denial: string) {
    super(`AccessDenied: ${functionId} may not ${denial} (shared/wiring.ts)`);
    this.name = "AccessDeniedException";
  }
}

const running = new AsyncLocalStorage<FunctionEntry>();

/** Runs `fn` as `entry`: its requests are checked against the entry's access. */
export const runAs = <T>(entry: FunctionEntry, fn: () => T): T => running.run(entry, fn);

export interface QueueUrls {
  queues: Partial<Record<QueueName, string>>;
  deadLetterQueues?: Partial<Record<QueueName, string>>;
}

/** What a transaction item or a batch request needs, as IAM sees it. */
const TRANSACTION_ACTIONS: Record<string, string[]> = {
  TransactWriteItems: ["PutItem", "UpdateItem", "DeleteItem", "ConditionCheckItem"],
  TransactGetItems: ["GetItem"],
};

/** The partition key a single-item request names, marshalled or not. */
function partitionKeyOf(input: Record<string, unknown>): string | undefined {
  const pk = (input.Key as Record<string, unknown> | undefined)?.pk;
  return typeof pk === "string" ? pk : (pk as { S?: string } | undefined)?.S;
}

/** Why `entry` may not call `action` on the table, or undefined when it may. */
export function tableDenial(entry: FunctionEntry, action: string, input: Record<string, unknown>): string | undefined {
  const access = entry.access.table;
  if (entry.access.apiRateLimit && (action === "GetItem" || action === "UpdateItem")) {
    const pk = partitionKeyOf(input);
    if (pk?.startsWith("ORG#") && pk.endsWith(API_RATE_LIMIT_SUFFIX)) return undefined;
  }
  const needed = TRANSACTION_ACTIONS[action] ?? [action];
  const denied = `call dynamodb:${action}: its access grants table ${access ? `"${access}"` : "nothing"}`;
  if (!access) return denied;
  if (access === "apiKeys") {
    // The authorizer's grant: GetItem, on API-key items only (dynamodb:LeadingKeys).
    const pk = partitionKeyOf(input);
    return action === "GetItem" && pk?.startsWith(keys.apiKey("").pk)
      ? undefined
      : `${denied}, on ${pk ?? "the table"}`;
  }
  const granted = new Set<string>([...TABLE_READ_ACTIONS, ...(access === "readWrite" ? TABLE_WRITE_ACTIONS : [])]);
  return needed.every((one) => granted.has(one)) ? undefined : denied;
}

const SENDS = new Set(["SendMessage", "SendMessageBatch"]);
/** SqsEventSource's grant to a consumer, on the queue it consumes. */
const CONSUMES = new Set([
  "ReceiveMessage",
  "ChangeMessageVisibility",
  "ChangeMessageVisibilityBatch",
  "DeleteMessage",
  "DeleteMessageBatch",
  "GetQueueAttributes",
  "GetQueueUrl",
]);

/** Why `entry` may not call `action` on the queue at `queueUrl`, or undefined when it may. */
export function queueDenial(entry: FunctionEntry, action: string, queueUrl: string, urls: QueueUrls) {
  const name = Object.entries(urls.queues).find(([, url]) => url === queueUrl)?.[0] ?? queueUrl;
  const denied = `call sqs:${action} on ${name}: its access has sendTo ${JSON.stringify(entry.access.sendTo ?? [])}`;
  if (SENDS.has(action)) {
    const allowed = (entry.access.sendTo ?? []).map((queue) => urls.queues[queue]);
    return allowed.includes(queueUrl) ? undefined : denied;
  }
  const consumer = entry as Partial<QueueConsumerEntry>;
  if (CONSUMES.has(action) && consumer.queue) {
    const own = consumer.deadLetters ? urls.deadLetterQueues?.[consumer.queue] : urls.queues[consumer.queue];
    if (own === queueUrl) return undefined;
  }
  return denied;
}

const actionOf = (commandName: string | undefined) => String(commandName ?? "").replace(/Command$/, "");

let installed: QueueUrls | undefined;

/**
 * Checks every request the service's clients and the model client make inside an invocation.
 * Installed once per process; the queue URLs are those of the latest runtime started.
 */
export function installAccessGuard(urls: QueueUrls): void {
  const first = !installed;
  installed = urls;
  if (!first) return;
  const guard: InitializeMiddleware<Record<string, unknown>, object> = (next, context) => (args) => {
    const entry = running.getStore();
    if (!entry || !installed) return next(args);
    const action = actionOf(context.commandName);
    const denial =
      context.clientName === "SQSClient"
        ? queueDenial(entry, action, String(args.input.QueueUrl ?? ""), installed)
        : tableDenial(entry, action, args.input);
    if (denial) throw new AccessDeniedError(entry.id, denial);
    return next(args);
  };
  onServiceClients((client) => {
    // Either client's stack: the guard reads only the command's name and input.
    const stack = client.middlewareStack as { add(middleware: unknown, options: object): void };
    stack.add(guard, { step: "initialize", name: "localAccessGuard", override: true });
  });
  guardModelCalls();
}

/** The model's API key is a secret: only functions granted `anthropic` may call the model. */
function guardModelCalls() {
  const unguarded = globalThis.fetch;
  globalThis.fetch = (input, init) => {
    const entry = running.getStore();
    if (entry && !(entry.access.secrets ?? []).includes("anthropic")) {
      const url = new URL(input instanceof Request ? input.url : String(input));
      const model = new URL(config().anthropicBaseUrl ?? "https://api.anthropic.com");
      if (url.origin === model.origin) {
        return Promise.reject(
          new AccessDeniedError(entry.id, 'call the model: its access lacks secrets ["anthropic"] (the API key)'),
        );
      }
    }
    return unguarded(input, init);
  };
}

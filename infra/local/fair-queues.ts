/**
 * SQS fair queues, locally. In AWS, a standard queue whose messages carry a `MessageGroupId`
 * is a fair queue: when one group (tenant) has a backlog, SQS returns the messages of groups
 * with few messages in flight first, so a small tenant's work does not wait behind a large
 * one's. fauxqs keeps one list per standard queue and drops the group, so the local runtime
 * models fairness itself: one emulator queue per message group, created on first use with
 * the fair queue's attributes (visibility timeout, retention, redrive policy to the same
 * dead-letter queue); the service's sends are routed to their group's queue by a middleware
 * on its clients, which also see the groups' queues as one (attributes set on all, counts
 * summed); and the queue's poller receives from the group with the fewest messages in flight
 * (sqs-poller.ts). Messages sent without a group stay on the queue itself, polled too.
 */
import { createHash } from "node:crypto";
import {
  CreateQueueCommand,
  DeleteQueueCommand,
  GetQueueAttributesCommand,
  QueueDoesNotExist,
  type SendMessageBatchCommandOutput,
  type SendMessageBatchRequestEntry,
  type SQSClient,
} from "@aws-sdk/client-sqs";
import type { InitializeHandler, InitializeHandlerArguments, InitializeMiddleware } from "@smithy/types";
import { onServiceClients } from "../../shared/aws.ts";

/** What the local fair queue copies from the queue to each group's queue. */
const COPIED_ATTRIBUTES = ["VisibilityTimeout", "MessageRetentionPeriod", "RedrivePolicy"] as const;

export class FairQueue {
  readonly url: string;
  readonly #sqs: SQSClient;
  readonly #groups = new Map<string, Promise<string>>();
  readonly #urls: string[];
  #waiters: (() => void)[] = [];
  /** Whether a poller is waiting with the short recheck; the others wait for sends. */
  #sweeping = false;

  constructor(sqs: SQSClient, url: string) {
    this.#sqs = sqs;
    this.url = url;
    this.#urls = [url];
  }

  /** The queue itself, then each group's queue, in the order they were made. */
  urls(): readonly string[] {
    return this.#urls;
  }

  /**
   * What a poller waits on instead of a long poll, which cannot span several queues: a send
   * through the service's clients (each wakes one waiting poller, as a long poll returns to
   * one receiver), or abort. One waiting poller at a time also looks again after `recheckMs`,
   * for messages that become visible by themselves (delayed, or back from a visibility
   * timeout); the others only after `longMs`.
   */
  activity(recheckMs: number, longMs: number, signal: AbortSignal): Promise<void> {
    const sweeper = !this.#sweeping;
    if (sweeper) this.#sweeping = true;
    return new Promise((resolve) => {
      const done = () => {
        clearTimeout(timer);
        signal.removeEventListener("abort", done);
        this.#waiters = this.#waiters.filter((waiter) => waiter !== done);
        if (sweeper) this.#sweeping = false;
        resolve();
      };
      const timer = setTimeout(done, sweeper ? recheckMs : longMs);
      signal.addEventListener("abort", done, { once: true });
      this.#waiters.push(done);
    });
  }

  /** Wakes a waiting poller per send request. */
  sent(requests = 1): void {
    for (const wake of this.#waiters.slice(0, requests)) wake();
  }

  /** The emulator queue holding `group`'s messages, made on first use. */
  groupUrl(group: string): Promise<string> {
    let url = this.#groups.get(group);
    if (!url) {
      url = this.#createGroupQueue(group);
      this.#groups.set(group, url);
      // A failed creation is tried again by the next send.
      url.catch(() => this.#groups.delete(group));
    }
    return url;
  }

  async #createGroupQueue(group: string): Promise<string> {
    const { Attributes } = await this.#sqs.send(
      new GetQueueAttributesCommand({ QueueUrl: this.url, AttributeNames: [...COPIED_ATTRIBUTES, "QueueArn"] }),
    );
    const name = Attributes?.QueueArn?.split(":").at(-1);
    if (!name) throw new Error(`Queue ${this.url} has no ARN`);
    // Queue names take 80 characters of [A-Za-z0-9_-]: the group goes in as a short hash.
    const suffix = createHash("sha256").update(group).digest("hex").slice(0, 12);
    const attributes = Object.fromEntries(
      COPIED_ATTRIBUTES.flatMap((key) => (Attributes?.[key] ? [[key, Attributes[key]]] : [])),
    );
    const { QueueUrl } = await this.#sqs.send(
      new CreateQueueCommand({ QueueName: groupQueueName(name, suffix), Attributes: attributes }),
    );
    if (!QueueUrl) throw new Error(`CreateQueue for group ${group} returned no URL`);
    this.#urls.push(QueueUrl);
    return QueueUrl;
  }

  /** Deletes the groups' queues (the queue itself belongs to whoever made it). */
  async deleteGroupQueues(): Promise<void> {
    await Promise.all(
      this.#urls.slice(1).map(async (QueueUrl) => {
        try {
          await this.#sqs.send(new DeleteQueueCommand({ QueueUrl }));
        } catch (error) {
          if (!(error instanceof QueueDoesNotExist)) throw error;
        }
      }),
    );
  }
}

/** A group's queue: the fair queue's name, `--g`, and the group's hash. */
const groupQueueName = (queueName: string, groupHash: string) => `${queueName.slice(0, 64)}--g${groupHash}`;

/** The fair queue a queue name belongs to: itself, or the queue whose group it holds. */
export const logicalQueueName = (queueName: string) => queueName.replace(/--g[0-9a-f]{12}$/, "");

const fairQueues = new Map<string, FairQueue>();

/** Routes the service's sends to fair queues to their group's queue; installed once per process. */
let routing = false;

type QueueInput = {
  QueueUrl?: string;
  MessageGroupId?: string;
  Entries?: SendMessageBatchRequestEntry[];
  Attributes?: Record<string, string>;
  AttributeNames?: string[];
};
type Answer = Awaited<ReturnType<InitializeHandler<object, object>>>;

/** Queue counts a fair queue answers as the sum over its groups' queues. */
const COUNTS = [
  "ApproximateNumberOfMessages",
  "ApproximateNumberOfMessagesNotVisible",
  "ApproximateNumberOfMessagesDelayed",
] as const;

type Forward = (QueueUrl: string, more?: Partial<QueueInput>) => Promise<Answer>;
type AttributesOutput = { Attributes?: Record<string, string> };

/** A batch split by group, one request each; the answers merged as one, entry ids kept. */
async function sendBatchByGroup(fair: FairQueue, entries: SendMessageBatchRequestEntry[], forward: Forward) {
  const byGroup = Map.groupBy(entries, (entry) => entry.MessageGroupId ?? "");
  const answers = await Promise.all(
    [...byGroup].map(async ([group, Entries]) => forward(group ? await fair.groupUrl(group) : fair.url, { Entries })),
  );
  const outputs = answers.map((answer) => answer.output as SendMessageBatchCommandOutput);
  const output = {
    ...outputs[0],
    Successful: outputs.flatMap((one) => one.Successful ?? []),
    Failed: outputs.flatMap((one) => one.Failed ?? []),
  };
  return { ...answers[0], output } as Answer;
}

/** The queue's attributes, its message counts summed over its groups' queues. */
async function attributesSummed(fair: FairQueue, forward: Forward) {
  const answers = await Promise.all(fair.urls().map((url) => forward(url)));
  const outputs = answers.map((answer) => answer.output as AttributesOutput);
  const attributes = { ...outputs[0]?.Attributes };
  for (const count of COUNTS) {
    if (attributes[count] === undefined) continue;
    attributes[count] = String(outputs.reduce((sum, output) => sum + Number(output.Attributes?.[count] ?? 0), 0));
  }
  return { ...answers[0], output: { ...outputs[0], Attributes: attributes } } as Answer;
}

/**
 * Makes a fair queue look like one queue to the service's clients: sends go to their group's
 * queue, attribute changes reach every group's queue, and message counts add up over them.
 */
const groupRouter: InitializeMiddleware<object, object> =
  (next: InitializeHandler<object, object>, context) => async (args: InitializeHandlerArguments<object>) => {
    const input = args.input as QueueInput;
    const fair = input.QueueUrl ? fairQueues.get(input.QueueUrl) : undefined;
    if (!fair) return next(args);
    const forward: Forward = (QueueUrl, more = {}) => next({ ...args, input: { ...input, ...more, QueueUrl } });
    switch (context.commandName) {
      case "SendMessageCommand": {
        const answer = input.MessageGroupId
          ? await forward(await fair.groupUrl(input.MessageGroupId))
          : await next(args);
        fair.sent();
        return answer;
      }
      case "SendMessageBatchCommand": {
        const answer = await sendBatchByGroup(fair, input.Entries ?? [], forward);
        fair.sent(new Set((input.Entries ?? []).map((entry) => entry.MessageGroupId)).size);
        return answer;
      }
      case "SetQueueAttributesCommand": {
        const [answer] = await Promise.all(fair.urls().map((url) => forward(url)));
        return answer as Answer;
      }
      case "GetQueueAttributesCommand":
        return attributesSummed(fair, forward);
      default:
        return next(args);
    }
  };

/** Makes `url` a fair queue for this process's service clients; answers its model. */
export function makeFairQueue(sqs: SQSClient, url: string): FairQueue {
  const fair = new FairQueue(sqs, url);
  fairQueues.set(url, fair);
  if (!routing) {
    routing = true;
    onServiceClients((client) => {
      const stack = client.middlewareStack as { add(middleware: unknown, options: object): void };
      // After the access guard, which checks the queue the service named.
      stack.add(groupRouter, { step: "initialize", name: "localFairQueueRouter", priority: "low", override: true });
    });
  }
  return fair;
}

/** Forgets a stopped runtime's fair queues, deleting their groups' queues. */
export async function dropFairQueue(url: string): Promise<void> {
  const fair = fairQueues.get(url);
  fairQueues.delete(url);
  await fair?.deleteGroupQueues();
}

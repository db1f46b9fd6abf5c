/**
 * What a key may do: `read-only` reads, `member` also creates, changes and runs things (and
 * so spends on the model), `admin` also manages keys and the webhook secret.
 */
export const roles = ["admin", "member", "read-only"] as const;
export type Role = (typeof roles)[number];
export const isRole = (value: unknown): value is Role => roles.includes(value as Role);

import { describe, expect, it } from "vitest";
import {
  matchesAnyFilterPattern,
  matchesFilterPattern,
  validateFilterPattern,
} from "../../infra/local/event-filter.ts";
import { wiring } from "../../shared/wiring.ts";

const jobModify = {
  eventName: "MODIFY",
  dynamodb: {
    NewImage: { entity: { S: "Job" }, status: { S: "PROCESSING" }, totalItems: { N: "3" } },
    OldImage: { entity: { S: "Job" }, status: { S: "PENDING" } },
    SequenceNumber: "100",
  },
  count: 7,
  tags: ["a", "b"],
};

describe("matchesFilterPattern", () => {
  it("matches the finalizer's pattern only for MODIFY records of jobs", () => {
    const finalizer = wiring.streamConsumers.find((consumer) => consumer.id === "stream-router");
    const pattern = finalizer?.filterPattern ?? {};
    expect(matchesFilterPattern(pattern, jobModify)).toBe(true);
    expect(matchesFilterPattern(pattern, { ...jobModify, eventName: "INSERT" })).toBe(false);
    const value = { ...jobModify, dynamodb: { ...jobModify.dynamodb, NewImage: { entity: { S: "Value" } } } };
    expect(matchesFilterPattern(pattern, value)).toBe(false);
    expect(matchesFilterPattern(pattern, { eventName: "REMOVE", dynamodb: { OldImage: {} } })).toBe(false);
  });

  it("treats an empty pattern as match-all and requires every key of a pattern", () => {
    expect(matchesFilterPattern({}, jobModify)).toBe(true);
    expect(matchesFilterPattern({ eventName: ["MODIFY"], count: [7] }, jobModify)).toBe(true);
    expect(matchesFilterPattern({ eventName: ["MODIFY"], count: [8] }, jobModify)).toBe(false);
  });

  it("matches exact values strictly by type", () => {
    expect(matchesFilterPattern({ count: ["7"] }, jobModify)).toBe(false);
    expect(matchesFilterPattern({ flag: [true] }, { flag: true })).toBe(true);
    expect(matchesFilterPattern({ flag: [null] }, { flag: null })).toBe(true);
    expect(matchesFilterPattern({ flag: [null] }, {})).toBe(false);
    expect(matchesFilterPattern({ eventName: [] }, jobModify)).toBe(false);
  });

  it("supports prefix, suffix and equals-ignore-case", () => {
    expect(matchesFilterPattern({ dynamodb: { SequenceNumber: [{ prefix: "10" }] } }, jobModify)).toBe(true);
    expect(matchesFilterPattern({ dynamodb: { SequenceNumber: [{ prefix: "2" }] } }, jobModify)).toBe(false);
    expect(matchesFilterPattern({ eventName: [{ suffix: "IFY" }] }, jobModify)).toBe(true);
    expect(matchesFilterPattern({ eventName: [{ "equals-ignore-case": "modify" }] }, jobModify)).toBe(true);
    expect(matchesFilterPattern({ count: [{ prefix: "7" }] }, jobModify)).toBe(false);
  });

  it("supports exists true and false, including missing parents", () => {
    expect(matchesFilterPattern({ dynamodb: { OldImage: [{ exists: true }] } }, jobModify)).toBe(true);
    expect(matchesFilterPattern({ dynamodb: { OldImage: [{ exists: false }] } }, jobModify)).toBe(false);
    expect(matchesFilterPattern({ dynamodb: { NewImage: { errorMessage: [{ exists: false }] } } }, jobModify)).toBe(
      true,
    );
    expect(matchesFilterPattern({ missing: { deeper: [{ exists: false }] } }, jobModify)).toBe(true);
    expect(matchesFilterPattern({ missing: { deeper: [{ exists: true }] } }, jobModify)).toBe(false);
  });

  it("supports anything-but with a value, a list and a prefix", () => {
    expect(matchesFilterPattern({ eventName: [{ "anything-but": "REMOVE" }] }, jobModify)).toBe(true);
    expect(matchesFilterPattern({ eventName: [{ "anything-but": ["INSERT", "MODIFY"] }] }, jobModify)).toBe(false);
    expect(matchesFilterPattern({ eventName: [{ "anything-but": { prefix: "MOD" } }] }, jobModify)).toBe(false);
    // A missing field is not "anything but": it does not match.
    expect(matchesFilterPattern({ missing: [{ "anything-but": "x" }] }, jobModify)).toBe(false);
  });

  it("supports numeric ranges on JSON numbers only", () => {
    expect(matchesFilterPattern({ count: [{ numeric: [">", 5, "<=", 7] }] }, jobModify)).toBe(true);
    expect(matchesFilterPattern({ count: [{ numeric: ["<", 7] }] }, jobModify)).toBe(false);
    expect(matchesFilterPattern({ dynamodb: { SequenceNumber: [{ numeric: [">", 1] }] } }, jobModify)).toBe(false);
  });

  it("matches array fields when any element matches", () => {
    expect(matchesFilterPattern({ tags: ["b"] }, jobModify)).toBe(true);
    expect(matchesFilterPattern({ tags: ["c"] }, jobModify)).toBe(false);
    expect(matchesFilterPattern({ tags: [{ "anything-but": "a" }] }, jobModify)).toBe(false);
  });

  it("supports $or", () => {
    const pattern = { $or: [{ eventName: ["INSERT"] }, { count: [7] }] };
    expect(matchesFilterPattern(pattern, jobModify)).toBe(true);
    expect(matchesFilterPattern(pattern, { eventName: "REMOVE", count: 1 })).toBe(false);
  });

  it("does not match nested patterns against scalars", () => {
    expect(matchesFilterPattern({ eventName: { S: ["MODIFY"] } }, jobModify)).toBe(false);
  });

  it("rejects malformed patterns loudly", () => {
    expect(() => matchesFilterPattern({ eventName: "MODIFY" }, jobModify)).toThrow(/arrays of allowed values/);
    expect(() => matchesFilterPattern({ eventName: [{ wildcard: "M*" }] }, jobModify)).toThrow(/Unsupported/);
  });

  it("validates patterns up front", () => {
    for (const consumer of wiring.streamConsumers)
      expect(() => validateFilterPattern(consumer.filterPattern)).not.toThrow();
    expect(() =>
      validateFilterPattern({ a: { b: [{ prefix: "x" }, "y", 1, null] }, $or: [{ c: [{ exists: true }] }] }),
    ).not.toThrow();
    expect(() => validateFilterPattern({ a: { b: "x" } })).toThrow(/a\.b/);
    expect(() => validateFilterPattern({ a: [{ wildcard: "x*" }] })).toThrow(/Unsupported filter matcher/);
    expect(() => validateFilterPattern({ a: [{ prefix: "x", suffix: "y" }] })).toThrow(/Unsupported filter matcher/);
    expect(() => validateFilterPattern({ a: [{ numeric: [">"] }] })).toThrow(/numeric/);
  });

  it("ORs several patterns; none means everything", () => {
    expect(matchesAnyFilterPattern([], jobModify)).toBe(true);
    expect(matchesAnyFilterPattern([{ eventName: ["INSERT"] }, { eventName: ["MODIFY"] }], jobModify)).toBe(true);
    expect(matchesAnyFilterPattern([{ eventName: ["INSERT"] }], jobModify)).toBe(false);
  });
});

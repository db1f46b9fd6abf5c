/**
 * API Gateway's route matching, locally: the most specific template of the wiring's routes
 * wins (literal over {param} over {greedy+}), path parameters decoded as API Gateway does.
 */
import type { RouteEntry } from "../../shared/wiring.ts";

export type RouteMatch =
  | { kind: "route"; route: RouteEntry; pathParameters: Record<string, string> }
  | { kind: "methodNotAllowed"; allowed: string[] }
  | { kind: "notFound" };

type SegmentKind = 0 | 1 | 2; // literal, {param}, {greedy+}: lower is more specific

interface CompiledTemplate {
  segments: { kind: SegmentKind; value: string }[];
}

function compileTemplate(path: string): CompiledTemplate {
  const segments = path
    .split("/")
    .slice(1)
    .map((segment) => {
      const param = /^\{([^{}]+)\}$/.exec(segment)?.[1];
      if (param === undefined) return { kind: 0 as const, value: segment };
      return param.endsWith("+") ? { kind: 2 as const, value: param.slice(0, -1) } : { kind: 1 as const, value: param };
    });
  return { segments };
}

function decodeSegment(segment: string): string {
  try {
    return decodeURIComponent(segment);
  } catch {
    return segment; // API Gateway passes malformed escapes through rather than failing
  }
}

/** The path parameters when `rawPath` fits the template, else undefined. */
function matchTemplate(template: CompiledTemplate, rawSegments: string[]): Record<string, string> | undefined {
  const parameters: Record<string, string> = {};
  for (const [index, segment] of template.segments.entries()) {
    if (segment.kind === 2) {
      const rest = rawSegments.slice(index);
      if (rest.length === 0 || rest.every((part) => part === "")) return undefined;
      parameters[segment.value] = rest.map(decodeSegment).join("/");
      return parameters;
    }
    const part = rawSegments[index];
    if (part === undefined) return undefined;
    if (segment.kind === 0) {
      if (part !== segment.value) return undefined;
    } else {
      if (part === "") return undefined;
      parameters[segment.value] = decodeSegment(part);
    }
  }
  return rawSegments.length === template.segments.length ? parameters : undefined;
}

/** API Gateway prefers the most specific path: literals over {param} over {greedy+}, left to right. */
function compareSpecificity(a: CompiledTemplate, b: CompiledTemplate): number {
  const length = Math.max(a.segments.length, b.segments.length);
  for (let i = 0; i < length; i++) {
    const kindA = a.segments[i]?.kind ?? 3;
    const kindB = b.segments[i]?.kind ?? 3;
    if (kindA !== kindB) return kindA - kindB;
  }
  return 0;
}

export function createRouter(routes: RouteEntry[]) {
  const compiled = routes.map((route) => ({ route, template: compileTemplate(route.path) }));
  return (method: string, rawPath: string): RouteMatch => {
    const rawSegments = rawPath.split("/").slice(1);
    const candidates = compiled
      .map((candidate) => ({ ...candidate, parameters: matchTemplate(candidate.template, rawSegments) }))
      .filter((candidate) => candidate.parameters !== undefined);
    const sameMethod = candidates
      .filter((candidate) => candidate.route.method === method)
      .sort((a, b) => compareSpecificity(a.template, b.template));
    const best = sameMethod[0];
    if (best?.parameters) return { kind: "route", route: best.route, pathParameters: best.parameters };
    if (candidates.length > 0) {
      return { kind: "methodNotAllowed", allowed: [...new Set(candidates.map((candidate) => candidate.route.method))] };
    }
    return { kind: "notFound" };
  };
}

/** The benchmark's figures: printed as a table and written to bench/results/<date>.json. */
import { mkdir, writeFile } from "node:fs/promises";
import { join } from "node:path";

export interface BenchFigure {
  name: string;
  measured: string;
  target: string;
  /** null: reported, no target. */
  met: boolean | null;
  note?: string;
}

export const log = (line: string) => console.log(line);

export const fmt = (n: number, digits = 2) => (Number.isFinite(n) ? n.toFixed(digits) : String(n));

export function printFigures(figures: BenchFigure[]) {
  const nameWidth = Math.max(...figures.map((figure) => figure.name.length)) + 2;
  const measuredWidth = Math.max(...figures.map((figure) => figure.measured.length)) + 2;
  log(`${"Figure".padEnd(nameWidth) + "Measured".padEnd(measuredWidth) + "Target".padEnd(12)}Result`);
  for (const figure of figures) {
    const result = figure.met === null ? "" : figure.met ? "met" : "MISSED";
    log(figure.name.padEnd(nameWidth) + figure.measured.padEnd(measuredWidth) + figure.target.padEnd(12) + result);
    if (figure.note) log(`    ${figure.note}`);
  }
}

/** Writes the run's results to bench/results/<date>[-quick].json and returns the file. */
export async function writeResults(result: { date: string; mode: string; [key: string]: unknown }): Promise<string> {
  const dir = join(import.meta.dirname, "results");
  await mkdir(dir, { recursive: true });
  const file = join(dir, `${result.date.slice(0, 10)}${result.mode === "quick" ? "-quick" : ""}.json`);
  await writeFile(file, `${JSON.stringify(result, null, 2)}\n`);
  return file;
}

/** `node bench/analytics-main.ts [--quick]`: the analytics benchmark alone, as a table. */
import { runAnalyticsBench } from "./analytics.ts";

const quick = process.argv.includes("--quick");
const figures = await runAnalyticsBench({ quick });
const width = Math.max(...figures.map((f) => f.name.length));
for (const figure of figures) {
  const verdict = figure.met === null ? "" : figure.met ? "met" : "MISSED";
  console.log(
    `${figure.name.padEnd(width)}  ${figure.measured.padEnd(32)}  ${figure.target.padEnd(6)}  ${verdict}${
      figure.note ? `  (${figure.note})` : ""
    }`,
  );
}
process.exit(figures.some((figure) => figure.met === false) ? 1 : 0);

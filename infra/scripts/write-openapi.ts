/** `npm run openapi`: writes openapi.json at the repo root from the API contract. */
import { writeFileSync } from "node:fs";
import { fileURLToPath } from "node:url";
import { buildOpenApi } from "../../shared/http/openapi.ts";

const target = fileURLToPath(new URL("../../openapi.json", import.meta.url));
const document = buildOpenApi();
writeFileSync(target, `${JSON.stringify(document, null, 2)}\n`);
const operations = Object.values(document.paths).reduce((n, ops) => n + Object.keys(ops).length, 0);
console.log(`Wrote ${target}: ${operations} operations, ${Object.keys(document.components.schemas).length} schemas`);

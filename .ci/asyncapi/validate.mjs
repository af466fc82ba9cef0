// Validates an AsyncAPI document (a file path, or - for stdin) with @asyncapi/parser: the schema
// of the specification plus the parser's own rules. Fails on any error, and on any warning too:
// a document that is ours to shape has no reason to carry either.
import { readFileSync } from "node:fs";
import { Parser, DiagnosticSeverity } from "@asyncapi/parser";

const source = process.argv[2];
if (!source) {
  console.error("usage: node validate.mjs FILE|-");
  process.exit(2);
}
const text = readFileSync(source === "-" ? 0 : source, "utf8");
const { document, diagnostics } = await new Parser().parse(text);
const serious = diagnostics.filter(
  (d) => d.severity === DiagnosticSeverity.Error || d.severity === DiagnosticSeverity.Warning,
);
for (const d of diagnostics) {
  const level = ["error", "warning", "information", "hint"][d.severity] ?? d.severity;
  console.log(`${level}: ${d.code}: ${d.message} at /${d.path.join("/")}`);
}
if (!document || serious.length > 0) {
  console.error(`AsyncAPI document rejected: ${serious.length} errors or warnings`);
  process.exit(1);
}
const channels = document.channels().all().map((c) => c.address());
console.log(`AsyncAPI ${document.version()} document valid: ${channels.length} channels (${channels.join(", ")})`);

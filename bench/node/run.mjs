// One node process runs every selected case for one framework, in order, as a
// server would host many apps in one process.
//   node --expose-gc bench/node/run.mjs <alien|preact> [filter[,filter...]]
// Prints one line per case: "CASE\t<name>\t<ms>\t<ok|FAIL>", failures as
// "FAIL\t<name>\t<message>".
import { cases, takeFailures } from "./cases.mjs";
import { frameworks } from "./frameworks.mjs";

const fwName = process.argv[2];
const fw = frameworks[fwName];
if (!fw) {
  console.error(`usage: run.mjs <${Object.keys(frameworks).join("|")}> [filter]`);
  process.exit(2);
}
const filters = (process.argv[3] || "").split(",").filter((f) => f !== "");
const selected = (name) =>
  filters.length === 0 || filters.some((f) => name.toLowerCase().includes(f.toLowerCase()));

for (const c of cases) {
  if (!selected(c.name)) continue;
  takeFailures();
  let ms;
  let failures;
  try {
    ms = await c.run(fw);
    failures = takeFailures();
  } catch (err) {
    failures = [String(err && err.stack ? err.stack.split("\n")[0] : err)];
    ms = NaN;
  }
  for (const f of failures) console.log(`FAIL\t${c.name}\t${f}`);
  console.log(`CASE\t${c.name}\t${ms.toFixed(3)}\t${failures.length ? "FAIL" : "ok"}`);
}

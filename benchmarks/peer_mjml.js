// The Node peer of P1/P1b (benchmarks/bench.py): npm `mjml` + `juice` on the same MJML,
// one warm process. Reads the MJML file named on the command line, then answers each
// line on stdin with one render: "<milliseconds> <cpu milliseconds> <html bytes>".
// Installed by the bench into .cache/bench/node (NODE_PATH), never into the project.
const fs = require("fs");
const readline = require("readline");
const mjml2html = require("mjml");
const juice = require("juice");

const source = fs.readFileSync(process.argv[2], "utf8");

async function once() {
  const started = process.hrtime.bigint();
  const cpu = process.cpuUsage();
  // mjml 5 answers with a promise; 4 with the result: await takes both.
  const result = await mjml2html(source, { validationLevel: "skip", minify: false });
  // CSS variables are not resolved (premailer does not either); juice 11.1.1 throws on
  // a comment among the declarations when it tries.
  const html = juice(result.html, { resolveCSSVariables: false });
  const used = process.cpuUsage(cpu);
  const ms = Number(process.hrtime.bigint() - started) / 1e6;
  return `${ms} ${(used.user + used.system) / 1000} ${Buffer.byteLength(html)}`;
}

const lines = readline.createInterface({ input: process.stdin });
lines.on("line", async () => {
  process.stdout.write((await once()) + "\n");
});

// Parses an AsyncAPI document with the AsyncAPI initiative's own parser and prints its
// diagnostics as JSON lines, then the channels it found; exits 1 on any error.
// Usage: ASYNCAPI_PARSER=<path of @asyncapi/parser> node validate_asyncapi.cjs <document>
const { Parser, fromFile } = require(process.env.ASYNCAPI_PARSER);

(async () => {
  const { document, diagnostics } = await fromFile(new Parser(), process.argv[2]).parse();
  for (const d of diagnostics) {
    console.log(JSON.stringify({ severity: d.severity, code: d.code, message: d.message, path: d.path.join(".") }));
  }
  const errors = diagnostics.filter((d) => d.severity === 0);
  if (!document || errors.length) {
    console.error(`${errors.length} error(s)`);
    process.exit(1);
  }
  console.log(JSON.stringify({ channels: document.channels().all().map((c) => c.address()) }));
})();

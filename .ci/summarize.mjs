// Adds up vitest JSON reports and prints the plain closing line CI reads.
import fs from 'node:fs';

let passed = 0;
let failed = 0;
for (const file of process.argv.slice(2)) {
  if (!fs.existsSync(file)) {
    console.log(`missing test report ${file}: counting it as one failure`);
    failed += 1;
    continue;
  }
  const r = JSON.parse(fs.readFileSync(file, 'utf8'));
  passed += r.numPassedTests;
  failed += r.numFailedTests;
  // A suite that failed to load has no failed tests but is a failure all the same.
  failed += (r.testResults ?? []).filter((t) => t.status === 'failed' && t.assertionResults.length === 0).length;
  // Name each failure in the closing lines too: CI shows only the tail of the log.
  for (const suite of r.testResults ?? []) {
    const where = String(suite.name ?? '').replace(process.cwd() + '/', '');
    if (suite.status === 'failed' && (suite.assertionResults ?? []).length === 0) {
      console.log(
        `FAILED to load ${where}: ${String(suite.message ?? '')
          .split('\n')[0]
          .slice(0, 300)}`,
      );
    }
    for (const t of suite.assertionResults ?? []) {
      if (t.status !== 'failed') continue;
      const why = String((t.failureMessages ?? [])[0] ?? '')
        .split('\n')
        .slice(0, 3)
        .join(' | ')
        .slice(0, 400);
      console.log(`FAILED ${where} > ${t.fullName}: ${why}`);
    }
  }
  console.log(`${file.split('/').pop()}: ${r.numPassedTests} passed, ${r.numFailedTests} failed, ${r.numPendingTests} skipped`);
}
if (passed + failed === 0) failed = 1;
console.log(`${passed} passed, ${failed} failed`);
process.exit(failed > 0 ? 1 : 0);

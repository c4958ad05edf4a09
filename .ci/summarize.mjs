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
  console.log(`${file.split('/').pop()}: ${r.numPassedTests} passed, ${r.numFailedTests} failed, ${r.numPendingTests} skipped`);
}
if (passed + failed === 0) failed = 1;
console.log(`${passed} passed, ${failed} failed`);
process.exit(failed > 0 ? 1 : 0);

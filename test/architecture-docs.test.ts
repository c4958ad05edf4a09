/**
 * docs/architecture.md shows the permission table and the table-owner map. They are rendered here
 * from the code that enforces them, so the page cannot drift from the rules: when a permission or an
 * owner changes, this test fails; `npx tsx test/helpers/architecture-docs.ts` prints the sections.
 */
import fs from 'node:fs';
import { describe, expect, it } from 'vitest';
import { ownerMap, permissionTable } from './helpers/architecture-docs.js';

const doc = fs.readFileSync(new URL('../docs/architecture.md', import.meta.url), 'utf8');

describe('docs/architecture.md', () => {
  it('shows the permission table as src/modules/authz/authz.ts defines it', () => {
    const table = permissionTable();
    if (!doc.includes(table)) console.log(`Paste into docs/architecture.md (Permissions):\n\n${table}\n`);
    expect(doc.includes(table)).toBe(true);
  });
  it('shows the table-owner map as src/db/owners.ts defines it', () => {
    const map = ownerMap();
    if (!doc.includes(map)) console.log(`Paste into docs/architecture.md (Who owns which table):\n\n${map}\n`);
    expect(doc.includes(map)).toBe(true);
  });
});

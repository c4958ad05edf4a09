/**
 * docs/architecture.md shows the permission table and the table-owner map. They are rendered here
 * from the code that enforces them, so the page cannot drift from the rules: when a permission or an
 * owner changes, this test fails and prints the section to paste.
 */
import fs from 'node:fs';
import { describe, expect, it } from 'vitest';
import { PERMISSIONS, PERMISSION_WORDS, PERSON_ONLY, ROLE_PERMISSIONS, ROLES, VAULT_WIDE } from '../src/modules/authz/authz.js';
import { TABLE_OWNERS, TABLE_READS, type ModuleName, type TableName } from '../src/db/owners.js';

const doc = fs.readFileSync(new URL('../docs/architecture.md', import.meta.url), 'utf8');

function permissionTable(): string {
  const head = `| permission | ${ROLES.join(' | ')} | what it allows |`;
  const sep = `|---|${ROLES.map(() => ':-:').join('|')}|---|`;
  const rows = PERMISSIONS.map((p) => {
    const notes = [VAULT_WIDE.includes(p) ? 'all clients only' : '', PERSON_ONLY.includes(p) ? 'never an API token' : ''].filter(Boolean);
    const cells = ROLES.map((r) => (ROLE_PERMISSIONS[r].includes(p) ? (r === 'client-viewer' && (p === 'key:reveal' || p === 'key:lookup') ? 'where allowed' : 'yes') : ''));
    return `| \`${p}\` | ${cells.join(' | ')} | ${PERMISSION_WORDS[p]}${notes.length ? ` (${notes.join('; ')})` : ''} |`;
  });
  return [head, sep, ...rows].join('\n');
}

function ownerMap(): string {
  const byModule = new Map<ModuleName, TableName[]>();
  for (const [table, owner] of Object.entries(TABLE_OWNERS) as [TableName, ModuleName][]) {
    byModule.set(owner, [...(byModule.get(owner) ?? []), table]);
  }
  const modules = [...new Set([...byModule.keys(), ...(Object.keys(TABLE_READS) as ModuleName[])])].sort();
  const rows = modules.map((m) => {
    const owns = (byModule.get(m) ?? []).sort().map((t) => `\`${t}\``).join(', ') || '—';
    const reads = [...(TABLE_READS[m] ?? [])].sort().map((t) => `\`${t}\``).join(', ') || '—';
    return `| ${m} | ${owns} | ${reads} |`;
  });
  return ['| module | owns (only its repos write these) | also reads (joins, never writes) |', '|---|---|---|', ...rows].join('\n');
}

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

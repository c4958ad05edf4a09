/** Renders the permission table and the table-owner map as docs/architecture.md shows them. */
import { PERMISSIONS, PERMISSION_WORDS, PERSON_ONLY, ROLE_PERMISSIONS, ROLES, VAULT_WIDE } from '../../src/modules/authz/authz.js';
import { TABLE_OWNERS, TABLE_READS, type ModuleName, type TableName } from '../../src/db/owners.js';

export function permissionTable(): string {
  const head = `| permission | ${ROLES.join(' | ')} | what it allows |`;
  const sep = `|---|${ROLES.map(() => ':-:').join('|')}|---|`;
  const rows = PERMISSIONS.map((p) => {
    const notes = [VAULT_WIDE.includes(p) ? 'all clients only' : '', PERSON_ONLY.includes(p) ? 'never an API token' : ''].filter(Boolean);
    const cells = ROLES.map((r) =>
      ROLE_PERMISSIONS[r].includes(p) ? (r === 'client-viewer' && (p === 'key:reveal' || p === 'key:lookup') ? 'where allowed' : 'yes') : '',
    );
    return `| \`${p}\` | ${cells.join(' | ')} | ${PERMISSION_WORDS[p]}${notes.length ? ` (${notes.join('; ')})` : ''} |`;
  });
  return [head, sep, ...rows].join('\n');
}

export function ownerMap(): string {
  const byModule = new Map<ModuleName, TableName[]>();
  for (const [table, owner] of Object.entries(TABLE_OWNERS) as [TableName, ModuleName][]) {
    byModule.set(owner, [...(byModule.get(owner) ?? []), table]);
  }
  const modules = [...new Set([...byModule.keys(), ...(Object.keys(TABLE_READS) as ModuleName[])])].sort();
  const rows = modules.map((m) => {
    const owns =
      (byModule.get(m) ?? [])
        .sort()
        .map((t) => `\`${t}\``)
        .join(', ') || '—';
    const reads =
      [...(TABLE_READS[m] ?? [])]
        .sort()
        .map((t) => `\`${t}\``)
        .join(', ') || '—';
    return `| ${m} | ${owns} | ${reads} |`;
  });
  return ['| module | owns (only its repos write these) | also reads (joins, never writes) |', '|---|---|---|', ...rows].join('\n');
}

// `npx tsx test/helpers/architecture-docs.ts` prints both sections.
if (import.meta.url === `file://${process.argv[1]}`) console.log(`${permissionTable()}\n\n${ownerMap()}`);

/**
 * The architecture rules of docs/architecture.md, made executable. The checker reads the source
 * tree with the TypeScript parser (no type checker, no database) and names file and line for:
 *
 *   queries        a query (query builder or raw SQL statement on a table) outside `src/**\/*.repo.ts` and src/db/;
 *   ownership      a repo writing a table its module does not own, or reading one that is neither owned
 *                  nor listed for its module in TABLE_READS (src/db/owners.ts);
 *   client-scope   the client-scope idiom outside src/db/scope.ts (an always-false predicate, or an
 *                  `in` filter against a scope list);
 *   route-factory  a route file calling a `create*` factory imported from src/modules;
 *   import-cycle   a runtime import cycle among src/**\/*.ts;
 *   role-names     a role name compared outside src/modules/authz (the permission table decides).
 *
 * Every rule has self-tests on small in-memory sources, so a checker that silently stops seeing
 * something fails here too.
 */
import fs from 'node:fs';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import ts from 'typescript';
import { afterAll, describe, expect, it } from 'vitest';
import { TABLE_OWNERS, TABLE_READS } from '../src/db/owners.js';
import { ROLES } from '../src/modules/authz/authz.js';

// ---------------------------------------------------------------------------------------------
// The checker

const RULES = ['queries', 'ownership', 'client-scope', 'route-factory', 'import-cycle', 'role-names'] as const;
type Rule = (typeof RULES)[number];

const RULE_TITLES: Record<Rule, string> = {
  queries: 'queries outside *.repo.ts and src/db/',
  ownership: 'repo touches a table its module does not own or may not read',
  'client-scope': 'client-scope idiom outside src/db/scope.ts (use inClientScope)',
  'route-factory': 'route file constructs a service or repo (take it from the container)',
  'import-cycle': 'runtime import cycle',
  'role-names': 'role name compared outside src/modules/authz (check a permission)',
};

type Violation = { rule: Rule; file: string; line: number; message: string };
type Source = { path: string; text: string };
type Config = {
  owners: Readonly<Record<string, string>>;
  reads: Readonly<Partial<Record<string, readonly string[]>>>;
  roles: readonly string[];
};

/** src/db/bulk.ts's multi-row insert: a plain function whose first argument names the table it writes. */
const BULK_INSERT = 'bulkInsert';
/** Methods that start a query on a table (the first argument names it). */
const WRITE_ROOTS = new Set(['insertInto', 'updateTable', 'deleteFrom', 'replaceInto', 'mergeInto', BULK_INSERT]);
const QUERY_ROOTS = new Set(['selectFrom', ...WRITE_ROOTS]);
function queryFunctionName(node: ts.CallExpression): string | undefined {
  return ts.isIdentifier(node.expression) && node.expression.text === BULK_INSERT ? BULK_INSERT : undefined;
}
/** Methods that read a further table in a query. */
const JOINS = new Set(['innerJoin', 'leftJoin', 'rightJoin', 'fullJoin', 'crossJoin', 'innerJoinLateral', 'leftJoinLateral', 'crossJoinLateral']);
/** `updateTable(..).from(t)` (PostgreSQL) and `mergeInto(..).using(t)` / `deleteFrom(..).using(t)` read t; counted only when t is a known table. */
const SECONDARY_READS = new Set(['from', 'using']);
/** Table references in raw SQL: the keyword, then the table name. */
const SQL_TABLE_REF = /\b(from|join|into|update)\s+"?([a-z_][a-z0-9_]*)"?/gi;
const ALWAYS_FALSE_SQL = /^\(?\s*(1\s*=\s*0|0\s*=\s*1|false|1\s*<>\s*1|1\s*!=\s*1|0\s*<>\s*0)\s*\)?$/i;
const CLIENT_COLUMN = /(^|\.)client_id$/;
const KYSELY_TABLES = new Set(['kysely_migration', 'kysely_migration_lock']);

const isTest = (p: string) => /\.test\.tsx?$/.test(p) || p.endsWith('.d.ts');
const isRepo = (p: string) => p.endsWith('.repo.ts');
const inDbLayer = (p: string) => p.startsWith('src/db/');
const isRouteFile = (p: string) => /^src\/http\/routes\/[^/]+\.routes\.ts$/.test(p);
const moduleOf = (p: string) => /^src\/modules\/([^/]+)\//.exec(p)?.[1];

function lineOf(sf: ts.SourceFile, node: ts.Node): number {
  // For a chained call (`db\n  .selectFrom(...)`) the line of the method name, not of the chain's start.
  const at = ts.isCallExpression(node) && ts.isPropertyAccessExpression(node.expression) ? node.expression.name : node;
  return sf.getLineAndCharacterOfPosition(at.getStart(sf)).line + 1;
}

/** `x.name(...)` or `x?.name(...)`: the method name, else undefined. */
function methodName(node: ts.CallExpression): string | undefined {
  return ts.isPropertyAccessExpression(node.expression) ? node.expression.name.text : undefined;
}

function stringValue(node: ts.Node | undefined): string | undefined {
  return node && (ts.isStringLiteral(node) || ts.isNoSubstitutionTemplateLiteral(node)) ? node.text : undefined;
}

/** Strips parentheses, `as` / `satisfies` casts, `!` and a spread copy (`[...x]`). */
function unwrap(node: ts.Expression): ts.Expression {
  for (;;) {
    if (ts.isParenthesizedExpression(node) || ts.isAsExpression(node) || ts.isSatisfiesExpression(node) || ts.isNonNullExpression(node)) node = node.expression;
    else if (ts.isArrayLiteralExpression(node) && node.elements.length === 1 && ts.isSpreadElement(node.elements[0]!)) node = node.elements[0]!.expression;
    else return node;
  }
}

/** 'devices as d' -> 'devices'; 'public.devices' -> 'devices'. */
function tableOf(ref: string): string {
  const name = ref
    .trim()
    .split(/\s+as\s+/i)[0]!
    .trim();
  return name.slice(name.lastIndexOf('.') + 1);
}

type TableArg = { kind: 'tables'; names: string[] } | { kind: 'expression' } | { kind: 'dynamic'; text: string };

/** The string literals a type annotation allows (`'a' | 'b'`), or undefined when it allows any other value. */
function literalUnion(type: ts.TypeNode | undefined): string[] | undefined {
  if (!type) return undefined;
  const parts = ts.isUnionTypeNode(type) ? type.types : [type];
  const out: string[] = [];
  for (const p of parts) {
    if (!ts.isLiteralTypeNode(p) || !ts.isStringLiteral(p.literal)) return undefined;
    out.push(p.literal.text);
  }
  return out;
}

/**
 * The table names an identifier can hold, from its declaration in an enclosing scope: a parameter or
 * variable typed with a union of string literals, or a const initialised with one.
 */
function identifierTables(id: ts.Identifier): string[] | undefined {
  for (let scope: ts.Node | undefined = id.parent; scope; scope = scope.parent) {
    if (ts.isFunctionLike(scope)) {
      const param = scope.parameters.find((p) => ts.isIdentifier(p.name) && p.name.text === id.text);
      if (param) return literalUnion(param.type);
    }
    if (ts.isBlock(scope) || ts.isSourceFile(scope)) {
      for (const st of scope.statements) {
        if (!ts.isVariableStatement(st)) continue;
        const decl = st.declarationList.declarations.find((d) => ts.isIdentifier(d.name) && d.name.text === id.text);
        if (decl)
          return literalUnion(decl.type) ?? (decl.initializer && stringValue(decl.initializer) !== undefined ? [stringValue(decl.initializer)!] : undefined);
      }
    }
  }
  return undefined;
}

/** What the first argument of a query root or join names. */
function tableArg(arg: ts.Expression | undefined, sf: ts.SourceFile): TableArg {
  if (!arg) return { kind: 'expression' };
  arg = unwrap(arg);
  const s = stringValue(arg);
  if (s !== undefined) return { kind: 'tables', names: [tableOf(s)] };
  if (ts.isIdentifier(arg)) {
    const names = identifierTables(arg);
    if (names) return { kind: 'tables', names: names.map(tableOf) };
  }
  if (ts.isArrayLiteralExpression(arg)) {
    const names: string[] = [];
    for (const el of arg.elements) {
      const v = stringValue(el);
      if (v === undefined) {
        if (ts.isCallExpression(el) || ts.isArrowFunction(el) || ts.isFunctionExpression(el)) continue;
        return { kind: 'dynamic', text: el.getText(sf) };
      }
      names.push(tableOf(v));
    }
    return { kind: 'tables', names };
  }
  // A subquery (`eb.selectFrom(...).as('x')`, `(eb) => ...`) is checked where it is built.
  if (ts.isCallExpression(arg) || ts.isArrowFunction(arg) || ts.isFunctionExpression(arg)) return { kind: 'expression' };
  return { kind: 'dynamic', text: arg.getText(sf) };
}

/** The text of a sql`...` template (substitutions as `?`), or undefined when the node is no sql tag. */
function sqlTemplateText(node: ts.Node): string | undefined {
  if (!ts.isTaggedTemplateExpression(node)) return undefined;
  const tag = node.tag;
  if (!(ts.isIdentifier(tag) && tag.text === 'sql')) return undefined;
  const t = node.template;
  if (ts.isNoSubstitutionTemplateLiteral(t)) return t.text;
  return t.head.text + t.templateSpans.map((s) => `?${s.literal.text}`).join('');
}

/** Known tables a raw SQL text touches, with how. */
function sqlTables(text: string, tables: ReadonlySet<string>): { table: string; write: boolean }[] {
  const out: { table: string; write: boolean }[] = [];
  for (const m of text.matchAll(SQL_TABLE_REF)) {
    const keyword = m[1]!.toLowerCase();
    const table = m[2]!.toLowerCase();
    if (!tables.has(table)) continue;
    const before = text.slice(0, m.index).trimEnd().toLowerCase();
    const write = keyword === 'into' || keyword === 'update' || (keyword === 'from' && before.endsWith('delete'));
    out.push({ table, write });
  }
  return out;
}

function resolveImport(from: string, spec: string, files: ReadonlySet<string>): string | undefined {
  if (!spec.startsWith('.')) return undefined;
  const base = path.posix.normalize(path.posix.join(path.posix.dirname(from), spec));
  const candidates = [base.replace(/\.js$/, '.ts').replace(/\.mjs$/, '.mts'), base.replace(/\.js$/, '.tsx'), `${base}.ts`, `${base}/index.ts`, base];
  return candidates.find((c) => files.has(c));
}

/** The runtime imports of a file: `import type`, all-`type` specifier lists and `export type` are left out. */
function runtimeImports(sf: ts.SourceFile): { spec: string; line: number }[] {
  const out: { spec: string; line: number }[] = [];
  for (const st of sf.statements) {
    if (ts.isImportDeclaration(st) && ts.isStringLiteral(st.moduleSpecifier)) {
      const clause = st.importClause;
      if (clause?.isTypeOnly) continue;
      if (clause && !clause.name && clause.namedBindings && ts.isNamedImports(clause.namedBindings)) {
        const els = clause.namedBindings.elements;
        if (els.length > 0 && els.every((e) => e.isTypeOnly)) continue;
      }
      out.push({ spec: st.moduleSpecifier.text, line: lineOf(sf, st) });
    } else if (ts.isExportDeclaration(st) && st.moduleSpecifier && ts.isStringLiteral(st.moduleSpecifier)) {
      if (st.isTypeOnly) continue;
      if (st.exportClause && ts.isNamedExports(st.exportClause)) {
        const els = st.exportClause.elements;
        if (els.length > 0 && els.every((e) => e.isTypeOnly)) continue;
      }
      out.push({ spec: st.moduleSpecifier.text, line: lineOf(sf, st) });
    }
  }
  return out;
}

function checkArchitecture(sources: readonly Source[], config: Config): Violation[] {
  const violations: Violation[] = [];
  const report = (rule: Rule, file: string, line: number, message: string) => violations.push({ rule, file, line, message });
  const tables = new Set(Object.keys(config.owners));
  const roles = new Set(config.roles);
  const inScope = sources.filter((s) => s.path.startsWith('src/') && /\.tsx?$/.test(s.path) && !isTest(s.path));
  const parsed = new Map(inScope.map((s) => [s.path, ts.createSourceFile(s.path, s.text, ts.ScriptTarget.Latest, true, ts.ScriptKind.TS)]));
  const paths = new Set(parsed.keys());

  for (const [file, sf] of parsed) {
    const queriesAllowed = isRepo(file) || inDbLayer(file);
    const repoModule = isRepo(file) && !inDbLayer(file) ? moduleOf(file) : undefined;
    const checkOwnership = isRepo(file) && !inDbLayer(file);
    const scopeFile = file === 'src/db/scope.ts';
    const authzFile = file.startsWith('src/modules/authz/') || file.startsWith('src/modules/demo/');
    if (checkOwnership && !repoModule) report('ownership', file, 1, 'a repo lives in its owning module folder (src/modules/<module>/*.repo.ts)');

    // CTE names declared in the file (`.with('name', ...)`) are not tables.
    const ctes = new Set<string>();
    // Factories a route file imports from src/modules, and namespaces imported from there.
    const factories = new Set<string>();
    const moduleNamespaces = new Set<string>();
    // Same-file constant arrays of string literals (to tell a role list from another list).
    const constLists = new Map<string, string[]>();
    let importsAuthzRoles = false;

    for (const st of sf.statements) {
      if (!ts.isImportDeclaration(st) || !ts.isStringLiteral(st.moduleSpecifier) || st.importClause?.isTypeOnly) continue;
      const target =
        resolveImport(file, st.moduleSpecifier.text, paths) ?? path.posix.normalize(path.posix.join(path.posix.dirname(file), st.moduleSpecifier.text));
      const clause = st.importClause;
      if (target.startsWith('src/modules/authz/') && clause?.namedBindings && ts.isNamedImports(clause.namedBindings)) {
        if (clause.namedBindings.elements.some((e) => (e.propertyName ?? e.name).text === 'ROLES' && e.name.text === 'ROLES')) importsAuthzRoles = true;
      }
      if (!target.startsWith('src/modules/') || !clause) continue;
      if (clause.name && /^create/.test(clause.name.text)) factories.add(clause.name.text);
      const nb = clause.namedBindings;
      if (nb && ts.isNamespaceImport(nb)) moduleNamespaces.add(nb.name.text);
      if (nb && ts.isNamedImports(nb))
        for (const e of nb.elements) if (!e.isTypeOnly && /^create/.test((e.propertyName ?? e.name).text)) factories.add(e.name.text);
    }

    const visitDecls = (node: ts.Node): void => {
      if (ts.isCallExpression(node) && (methodName(node) === 'with' || methodName(node) === 'withRecursive')) {
        const name = stringValue(node.arguments[0]);
        if (name) ctes.add(name.replace(/\(.*$/s, '').trim());
      }
      if (ts.isVariableDeclaration(node) && ts.isIdentifier(node.name) && node.initializer) {
        const init = unwrap(node.initializer);
        if (ts.isArrayLiteralExpression(init) && init.elements.every((e) => stringValue(e) !== undefined))
          constLists.set(
            node.name.text,
            init.elements.map((e) => stringValue(e)!),
          );
      }
      ts.forEachChild(node, visitDecls);
    };
    visitDecls(sf);

    const checkTable = (node: ts.Node, table: string, write: boolean, how: string) => {
      if (!checkOwnership || !repoModule) return;
      const line = lineOf(sf, node);
      const owner = config.owners[table];
      if (owner === undefined) {
        // Kysely's own bookkeeping (the migration tables) may be read, never written.
        if (!write && KYSELY_TABLES.has(table)) return;
        if (!ctes.has(table)) report('ownership', file, line, `${how} '${table}', which is no table in TABLE_OWNERS`);
        return;
      }
      if (owner === repoModule) return;
      if (write) report('ownership', file, line, `module '${repoModule}' writes '${table}' (${how}), which module '${owner}' owns`);
      else if (!(config.reads[repoModule] ?? []).includes(table))
        report('ownership', file, line, `module '${repoModule}' reads '${table}' (${how}), owned by '${owner}' and not in TABLE_READS.${repoModule}`);
    };

    const visit = (node: ts.Node): void => {
      if (ts.isCallExpression(node)) {
        const name = methodName(node) ?? queryFunctionName(node);
        const callee = node.expression;

        // queries + ownership
        if (name && QUERY_ROOTS.has(name)) {
          if (!queriesAllowed)
            report(
              'queries',
              file,
              lineOf(sf, node),
              `${callee.getText(sf).replace(/\s+/g, ' ').slice(-60)}(${node.arguments[0]?.getText(sf).slice(0, 40) ?? ''})`,
            );
          const arg = tableArg(node.arguments[0], sf);
          if (arg.kind === 'tables') for (const t of arg.names) checkTable(node, t, WRITE_ROOTS.has(name), name);
          else if (arg.kind === 'dynamic' && checkOwnership)
            report('ownership', file, lineOf(sf, node), `${name}(${arg.text}): name the table with a string literal so its owner can be checked`);
        } else if (name && JOINS.has(name)) {
          const arg = tableArg(node.arguments[0], sf);
          if (arg.kind === 'tables') for (const t of arg.names) checkTable(node, t, false, name);
          else if (arg.kind === 'dynamic' && checkOwnership)
            report('ownership', file, lineOf(sf, node), `${name}(${arg.text}): name the table with a string literal so its owner can be checked`);
        } else if (name && SECONDARY_READS.has(name)) {
          const arg = tableArg(node.arguments[0], sf);
          if (arg.kind === 'tables') for (const t of arg.names) if (tables.has(t)) checkTable(node, t, false, name);
        }

        // client-scope: an always-false predicate, or `in` against a scope list
        if (!scopeFile) {
          if ((name === 'val' || name === 'lit') && node.arguments.length === 1 && node.arguments[0]!.kind === ts.SyntaxKind.FalseKeyword) {
            report('client-scope', file, lineOf(sf, node), `${callee.getText(sf)}(false): an always-false filter is the scope idiom's empty case`);
          }
          const isWhere = name === 'where' || name === 'on' || name === 'having' || (ts.isIdentifier(callee) && callee.text === 'eb');
          if (isWhere && node.arguments.length === 3 && stringValue(node.arguments[1]) === 'in') {
            const col = stringValue(node.arguments[0]) ?? '';
            const value = unwrap(node.arguments[2]!);
            const valueName = ts.isIdentifier(value) ? value.text : ts.isPropertyAccessExpression(value) ? value.name.text : undefined;
            if (valueName && (/scope/i.test(valueName) || (CLIENT_COLUMN.test(col) && /^(allowed|visible)?clients$/i.test(valueName)))) {
              report('client-scope', file, lineOf(sf, node), `${node.getText(sf).replace(/\s+/g, ' ').slice(0, 90)}: a hand-applied client scope`);
            }
          }
        }

        // route-factory
        if (isRouteFile(file)) {
          const called = ts.isIdentifier(callee) && factories.has(callee.text);
          const viaNamespace =
            ts.isPropertyAccessExpression(callee) &&
            ts.isIdentifier(callee.expression) &&
            moduleNamespaces.has(callee.expression.text) &&
            /^create/.test(callee.name.text);
          if (called || viaNamespace)
            report('route-factory', file, lineOf(sf, node), `${callee.getText(sf)}(...) constructs a module's service or repo; take it from the container`);
        }

        // role-names: membership of a role in a list other than the authz ROLES (validation) or a same-file list without role names
        if (!authzFile && name === 'includes' && node.arguments.length === 1 && ts.isPropertyAccessExpression(callee)) {
          const arg = unwrap(node.arguments[0]!);
          const isRole = (ts.isPropertyAccessExpression(arg) && arg.name.text === 'role') || (ts.isIdentifier(arg) && arg.text === 'role');
          const list = unwrap(callee.expression);
          const listName = ts.isIdentifier(list) ? list.text : undefined;
          const validation = listName === 'ROLES' && importsAuthzRoles;
          const otherNames = listName !== undefined && constLists.has(listName) && !constLists.get(listName)!.some((v) => roles.has(v));
          if (isRole && !validation && !otherNames) report('role-names', file, lineOf(sf, node), `${node.getText(sf).slice(0, 90)}: a role-based check`);
        }
      }

      // raw SQL: statements on tables (queries, ownership) and always-false predicates (client-scope)
      const text = sqlTemplateText(node);
      if (text !== undefined) {
        const refs = sqlTables(text, tables);
        if (refs.length && !queriesAllowed)
          report(
            'queries',
            file,
            lineOf(sf, node),
            `raw SQL on ${[...new Set(refs.map((r) => r.table))].join(', ')}: ${text.replace(/\s+/g, ' ').trim().slice(0, 70)}`,
          );
        for (const r of refs) checkTable(node, r.table, r.write, 'raw SQL');
        if (!scopeFile && ALWAYS_FALSE_SQL.test(text.trim()))
          report('client-scope', file, lineOf(sf, node), `sql\`${text.trim()}\`: an always-false filter is the scope idiom's empty case`);
      }

      // role-names: comparisons and switch cases on role names
      if (!authzFile && ts.isBinaryExpression(node)) {
        const op = node.operatorToken.kind;
        if (
          op === ts.SyntaxKind.EqualsEqualsEqualsToken ||
          op === ts.SyntaxKind.ExclamationEqualsEqualsToken ||
          op === ts.SyntaxKind.EqualsEqualsToken ||
          op === ts.SyntaxKind.ExclamationEqualsToken
        ) {
          const lit = stringValue(node.left) ?? stringValue(node.right);
          if (lit !== undefined && roles.has(lit)) report('role-names', file, lineOf(sf, node), `${node.getText(sf).slice(0, 90)}`);
        }
      }
      if (!authzFile && ts.isCaseClause(node)) {
        const lit = stringValue(node.expression);
        if (lit !== undefined && roles.has(lit)) report('role-names', file, lineOf(sf, node), `case '${lit}': a role-based branch`);
      }
      if (!authzFile && ts.isIdentifier(node) && node.text === 'ROLE_RANK' && !ts.isImportSpecifier(node.parent)) {
        report('role-names', file, lineOf(sf, node), `ROLE_RANK: a role-rank comparison (compare permissions instead)`);
      }

      ts.forEachChild(node, visit);
    };
    visit(sf);
  }

  // import-cycle: strongly connected components of the runtime import graph
  const edges = new Map<string, { to: string; line: number }[]>();
  for (const [file, sf] of parsed) {
    const out: { to: string; line: number }[] = [];
    for (const imp of runtimeImports(sf)) {
      const to = resolveImport(file, imp.spec, paths);
      if (to) out.push({ to, line: imp.line });
    }
    edges.set(file, out);
  }
  let index = 0;
  const idx = new Map<string, number>();
  const low = new Map<string, number>();
  const onStack = new Set<string>();
  const stack: string[] = [];
  const components: string[][] = [];
  const strong = (v: string) => {
    idx.set(v, index);
    low.set(v, index);
    index++;
    stack.push(v);
    onStack.add(v);
    for (const { to } of edges.get(v) ?? []) {
      if (!idx.has(to)) {
        strong(to);
        low.set(v, Math.min(low.get(v)!, low.get(to)!));
      } else if (onStack.has(to)) low.set(v, Math.min(low.get(v)!, idx.get(to)!));
    }
    if (low.get(v) === idx.get(v)) {
      const comp: string[] = [];
      let w: string;
      do {
        w = stack.pop()!;
        onStack.delete(w);
        comp.push(w);
      } while (w !== v);
      components.push(comp);
    }
  };
  for (const v of [...edges.keys()].sort()) if (!idx.has(v)) strong(v);
  for (const comp of components) {
    const members = new Set(comp);
    const start = [...comp].sort()[0]!;
    const selfLoop = (edges.get(start) ?? []).find((e) => e.to === start);
    if (comp.length === 1 && !selfLoop) continue;
    // The shortest cycle through `start`, by breadth-first search inside the component.
    const prev = new Map<string, { from: string; line: number }>();
    const queue = [start];
    let found: { from: string; line: number } | undefined = selfLoop ? { from: start, line: selfLoop.line } : undefined;
    while (queue.length && !found) {
      const v = queue.shift()!;
      for (const e of edges.get(v) ?? []) {
        if (!members.has(e.to)) continue;
        if (e.to === start) {
          found = { from: v, line: e.line };
          break;
        }
        if (!prev.has(e.to)) {
          prev.set(e.to, { from: v, line: e.line });
          queue.push(e.to);
        }
      }
    }
    const hops: string[] = [];
    let at = found!.from;
    hops.unshift(`${at}:${found!.line}`);
    while (at !== start) {
      const p = prev.get(at)!;
      hops.unshift(`${p.from}:${p.line}`);
      at = p.from;
    }
    const firstLine = hops[0]!.slice(hops[0]!.lastIndexOf(':') + 1);
    const others = comp.length > hops.length ? ` (${comp.length} files are in this cycle group)` : '';
    report('import-cycle', start, Number(firstLine), `${hops.join(' -> ')} -> ${start}${others}`);
  }

  return violations.sort((a, b) => RULES.indexOf(a.rule) - RULES.indexOf(b.rule) || a.file.localeCompare(b.file) || a.line - b.line);
}

function formatViolations(vs: readonly Violation[]): string {
  return vs.map((v) => `  ${v.file}:${v.line}  ${v.message}`).join('\n');
}

// ---------------------------------------------------------------------------------------------
// Self-tests: each rule catches a small breach and leaves the correct form alone.

const TEST_CONFIG: Config = {
  owners: { users: 'identity', sessions: 'identity', clients: 'clients', devices: 'devices', recovery_keys: 'keys', jobs: 'agent' },
  reads: { clients: ['devices'] },
  roles: ['owner', 'admin', 'technician', 'helpdesk', 'auditor', 'client-viewer'],
};
const check = (...sources: Source[]) => checkArchitecture(sources, TEST_CONFIG);
const rulesOf = (vs: Violation[], rule: Rule) => vs.filter((v) => v.rule === rule);

describe('architecture checker (self-tests)', () => {
  it('queries: finds query builder calls and raw SQL outside repos and src/db', () => {
    const vs = check(
      { path: 'src/modules/keys/keys.service.ts', text: `export async function f(db) {\n  return db.selectFrom('users').selectAll().execute();\n}` },
      { path: 'src/http/routes/x.routes.ts', text: `await c.db.insertInto('jobs').values(v).execute();` },
      { path: 'src/cli/commands/x.ts', text: `await exec\n  .updateTable('devices').set({}).execute(); await trx.deleteFrom('sessions').execute();` },
      { path: 'src/modules/keys/keys.ingest.ts', text: `const insert = bulkInsert<Row>('recovery_keys', ['id']);` },
      {
        path: 'src/modules/metrics/metrics.ts',
        text: 'await sql<{ n: number }>`select count(*) as n from notification_outbox`.execute(db); await sql`select 1`.execute(db); await sql`update devices set x = ${1}`.execute(db);',
      },
    );
    expect(rulesOf(vs, 'queries').map((v) => `${v.file}:${v.line}`)).toEqual([
      'src/cli/commands/x.ts:2',
      'src/cli/commands/x.ts:2',
      'src/http/routes/x.routes.ts:1',
      'src/modules/keys/keys.ingest.ts:1',
      'src/modules/keys/keys.service.ts:2',
      // notification_outbox is not in the test owner map; `select 1` touches no table
      'src/modules/metrics/metrics.ts:1',
    ]);
    expect(rulesOf(vs, 'queries').at(-1)!.message).toContain('raw SQL on devices');
  });

  it('queries: repos, src/db and tests may query', () => {
    const text = `db.selectFrom('users').selectAll(); db.deleteFrom('sessions');`;
    const vs = check(
      { path: 'src/modules/identity/identity.repo.ts', text },
      { path: 'src/db/migrations/0001_initial.ts', text },
      { path: 'src/modules/identity/identity.test.ts', text },
      { path: 'test/foo.test.ts', text },
      { path: 'bench/run.ts', text },
    );
    expect(vs).toEqual([]);
  });

  it('ownership: a repo writing another module’s table, or reading one it may not, is named', () => {
    const vs = check({
      path: 'src/modules/clients/clients.repo.ts',
      text: [
        `exec.selectFrom('clients as c').innerJoin('devices as d', 'd.client_id', 'c.id');`, // owned + TABLE_READS
        `exec.selectFrom('clients').select((eb) => [eb.selectFrom('recovery_keys as k').select('k.id').as('n')]);`, // subquery read, not allowed
        `exec.updateTable('devices').set({ x: 1 });`, // read-only table written
        `exec.insertInto('jobs').values({});`, // foreign write
        `exec.selectFrom(['clients', 'users as u']);`, // array form
        `exec.selectFrom('clients').leftJoin('sessions as s', 's.id', 'c.id');`, // join read, not allowed
        `exec.with('recent', (q) => q.selectFrom('clients').selectAll()).selectFrom('recent').selectAll();`, // CTE
        `exec.selectFrom('nonesuch');`,
        'await sql`delete from devices where id = ${id}`.execute(exec);',
        `exec.selectFrom(tableName);`,
        `exec.updateTable('clients').from('devices as d').set({});`, // PostgreSQL update ... from: a read
        `Array.from('abc');`,
        `const count = (exec, t: 'clients' | 'users') => exec.selectFrom(t).selectAll();`, // a typed parameter names its tables
        `exec.selectFrom('kysely_migration' as never).selectAll();`,
        `const insertJobs = bulkInsert<JobsTable>('jobs', ['id']);`, // foreign write through src/db/bulk.ts
        `const insertClients = bulkInsert<ClientsTable>('clients', ['id']);`,
      ].join('\n'),
    });
    expect(vs.filter((v) => v.rule !== 'ownership')).toEqual([]);
    expect(vs.map((v) => v.line)).toEqual([2, 3, 4, 5, 6, 8, 9, 10, 13, 15]);
    expect(vs[0]!.message).toContain("reads 'recovery_keys'");
    expect(vs[1]!.message).toContain("writes 'devices'");
    expect(vs[2]!.message).toContain("writes 'jobs' (insertInto), which module 'agent' owns");
    expect(vs[3]!.message).toContain("reads 'users'");
    expect(vs[4]!.message).toContain("reads 'sessions' (leftJoin)");
    expect(vs[5]!.message).toContain("'nonesuch'");
    expect(vs[6]!.message).toContain("writes 'devices' (raw SQL)");
    expect(vs[7]!.message).toContain('string literal');
    expect(vs[8]!.message).toContain("reads 'users'");
    expect(vs[9]!.message).toContain("writes 'jobs' (bulkInsert), which module 'agent' owns");
  });

  it('ownership: a repo outside a module folder, or in a module that owns nothing, reads nothing', () => {
    const vs = check(
      { path: 'src/http/x.repo.ts', text: `db.selectFrom('users');` },
      { path: 'src/modules/reports/reports.repo.ts', text: `db.selectFrom('devices');` },
    );
    expect(vs.map((v) => `${v.rule} ${v.file}:${v.line}`)).toEqual(['ownership src/http/x.repo.ts:1', 'ownership src/modules/reports/reports.repo.ts:1']);
  });

  it('client-scope: the hand-copied idiom is named, inClientScope is not', () => {
    const vs = check(
      {
        path: 'src/modules/graph/graph.service.ts',
        text: `if (scope) q = scope.length ? q.where('client_id', 'in', scope as string[]) : q.where((eb) => eb.val(false));`,
      },
      {
        path: 'src/modules/agent/agent.repo.ts',
        text: `if (clients) { if (!clients.length) return []; q = q.where('d.client_id', 'in', clients as string[]); }`,
      },
      { path: 'src/modules/devices/devices.repo.ts', text: "q = q.where(sql<boolean>`1 = 0`); q = q.where('d.client_id', 'in', [...actorScope]);" },
      { path: 'src/modules/keys/keys.repo.ts', text: `return inClientScope(exec.selectFrom('recovery_keys as k').selectAll(), 'k.client_id', scope);` },
      { path: 'src/modules/exports/exports.repo.ts', text: `q.where('k.client_id', 'in', clientIds as string[]).where('k.state', 'in', [...STATES]);` },
      { path: 'src/db/scope.ts', text: "return scope.length ? qb.where(sql.ref(column), 'in', [...scope]) : qb.where(sql<boolean>`1 = 0`);" },
    );
    expect(rulesOf(vs, 'client-scope').map((v) => `${v.file}:${v.line}`)).toEqual([
      'src/modules/agent/agent.repo.ts:1',
      'src/modules/devices/devices.repo.ts:1',
      'src/modules/devices/devices.repo.ts:1',
      'src/modules/graph/graph.service.ts:1',
      'src/modules/graph/graph.service.ts:1',
    ]);
  });

  it('route-factory: a route file calling a module factory is named, container methods are not', () => {
    const vs = check({
      path: 'src/http/routes/console.routes.ts',
      text: [
        `import { createConsoleService } from '../../modules/console/console.service.js';`,
        `import * as keys from '../../modules/keys/keys.repo.js';`,
        `import { createHash } from 'node:crypto';`,
        `import { type createThing } from '../../modules/x/x.js';`,
        `const svc = createConsoleService({ db: c.db });`,
        `const repo = keys.createKeysRepo();`,
        `await c.identity.createUser(actor, body); createHash('sha256');`,
      ].join('\n'),
    });
    expect(rulesOf(vs, 'route-factory').map((v) => v.line)).toEqual([5, 6]);
    // The same call outside a route file is the container's business.
    expect(
      check({ path: 'src/container.ts', text: `import { createConsoleService } from './modules/console/console.service.js';\ncreateConsoleService({});` }),
    ).toEqual([]);
  });

  it('import-cycle: a runtime cycle is named with its path; type-only imports are not edges', () => {
    const vs = check(
      { path: 'src/a.ts', text: `import { b } from './b.js';\nexport const a = 1;` },
      { path: 'src/b.ts', text: `import type { X } from './x.js';\nimport { c } from './lib/c.js';\nexport const b = 1;` },
      { path: 'src/lib/c.ts', text: `export { a } from '../a.js';` },
      { path: 'src/x.ts', text: `import { type B } from './b.js';\nimport type { A } from './a.js';\nexport type X = 1;` },
      { path: 'src/self.ts', text: `import './self.js';` },
    );
    expect(rulesOf(vs, 'import-cycle').map((v) => v.message)).toEqual([
      'src/a.ts:1 -> src/b.ts:2 -> src/lib/c.ts:1 -> src/a.ts',
      'src/self.ts:1 -> src/self.ts',
    ]);
    expect(rulesOf(vs, 'import-cycle')[0]).toMatchObject({ file: 'src/a.ts', line: 1 });
  });

  it('role-names: role comparisons outside authz are named, other string comparisons are not', () => {
    const vs = check(
      {
        path: 'src/modules/exports/exports.service.ts',
        text: [
          `if (actor.role !== 'owner') throw forbidden();`,
          `const r = t.role; if ('client-viewer' === r) {}`,
          `switch (actor.role) { case 'admin': break; }`,
          `if (REPORT_READERS[k].includes(actor.role)) {}`,
          `if (ROLE_RANK[a.role] > ROLE_RANK[b.role]) {}`,
          `if (role === 'worker' || status === 'active') {}`,
          `if (SERVE_ROLES.includes(opts.role)) {}`,
          `const SERVE_ROLES = ['all', 'api', 'worker'] as const;`,
        ].join('\n'),
      },
      { path: 'src/modules/authz/authz.ts', text: `if (actor.role === 'owner') {}` },
      { path: 'src/modules/demo/demo.seed.ts', text: `users.find((u) => u.role === 'owner');` },
      {
        path: 'src/modules/identity/identity.service.ts',
        text: `import { ROLES } from '../authz/authz.js';\nif (!(ROLES as readonly string[]).includes(role)) throw badRequest();`,
      },
    );
    expect(rulesOf(vs, 'role-names').map((v) => `${v.file}:${v.line}`)).toEqual([
      'src/modules/exports/exports.service.ts:1',
      'src/modules/exports/exports.service.ts:2',
      'src/modules/exports/exports.service.ts:3',
      'src/modules/exports/exports.service.ts:4',
      'src/modules/exports/exports.service.ts:5',
      'src/modules/exports/exports.service.ts:5',
    ]);
  });
});

// ---------------------------------------------------------------------------------------------
// The real tree

function readTree(root: string, dir: string, out: Source[] = []): Source[] {
  for (const entry of fs.readdirSync(path.join(root, dir), { withFileTypes: true })) {
    const rel = path.posix.join(dir, entry.name);
    if (entry.isDirectory()) readTree(root, rel, out);
    else if (/\.tsx?$/.test(entry.name)) out.push({ path: rel, text: fs.readFileSync(path.join(root, rel), 'utf8') });
  }
  return out;
}

describe('architecture of src/', () => {
  const root = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..');
  const found = checkArchitecture(readTree(root, 'src'), { owners: TABLE_OWNERS, reads: TABLE_READS, roles: ROLES });

  afterAll(() => {
    const counts = RULES.map((r) => `${r}: ${found.filter((v) => v.rule === r).length}`).join(', ');
    console.log(`architecture violations by rule: ${counts} (total ${found.length})`);
  });

  it('the tree was read', () => {
    expect(found.length).toBeGreaterThanOrEqual(0);
    expect(Object.keys(TABLE_OWNERS).length).toBeGreaterThan(0);
  });

  for (const rule of RULES) {
    it(`no ${RULE_TITLES[rule]}`, () => {
      const vs = found.filter((v) => v.rule === rule);
      if (vs.length) expect.fail(`${vs.length} × ${RULE_TITLES[rule]}:\n${formatViolations(vs)}`);
    });
  }
});

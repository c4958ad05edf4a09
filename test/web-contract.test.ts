import fs from 'node:fs';
import path from 'node:path';
import ts from 'typescript';
import { describe, expect, it } from 'vitest';
import { generate, openApiDocument } from '../tools/gen-api-types.js';

/**
 * The console and the server share one contract: web/src/api.gen.ts is generated from the server's
 * OpenAPI document, and web/ declares no API shapes of its own (issue 17, item 1).
 */
const ROOT = path.resolve(import.meta.dirname, '..');
const WEB = path.join(ROOT, 'web', 'src');
const GENERATED = path.join(WEB, 'api.gen.ts');

function webFiles(dir = WEB): string[] {
  return fs.readdirSync(dir, { withFileTypes: true }).flatMap((e) => {
    const p = path.join(dir, e.name);
    if (e.isDirectory()) return webFiles(p);
    return /\.tsx?$/.test(e.name) && p !== GENERATED ? [p] : [];
  });
}

type Schema = { type?: string; properties?: Record<string, Schema>; items?: Schema; anyOf?: Schema[]; oneOf?: Schema[]; allOf?: Schema[] };

/** Every object shape the API answers or takes, as its set of property names. */
function apiShapes(doc: { paths: Record<string, Record<string, unknown>> }): Set<string>[] {
  const shapes: Set<string>[] = [];
  const walk = (s: Schema | undefined) => {
    if (!s || typeof s !== 'object') return;
    if (s.properties) {
      shapes.push(new Set(Object.keys(s.properties)));
      for (const p of Object.values(s.properties)) walk(p);
    }
    walk(s.items);
    for (const k of [s.anyOf, s.oneOf, s.allOf]) for (const x of k ?? []) walk(x);
  };
  const visit = (v: unknown) => {
    if (!v || typeof v !== 'object') return;
    const o = v as Record<string, unknown>;
    if (o.schema) walk(o.schema as Schema);
    for (const x of Object.values(o)) if (x && typeof x === 'object' && x !== o.schema) visit(x);
  };
  visit(doc.paths);
  return shapes;
}

/** Object type literals written in web/ (type aliases, interfaces, inline annotations) with their property names. */
function writtenShapes(file: string): { line: number; names: string[] }[] {
  const src = ts.createSourceFile(file, fs.readFileSync(file, 'utf8'), ts.ScriptTarget.Latest, true);
  const out: { line: number; names: string[] }[] = [];
  const visit = (n: ts.Node) => {
    if (ts.isTypeLiteralNode(n) || ts.isInterfaceDeclaration(n)) {
      const names = n.members.flatMap((m) => (m.name && (ts.isIdentifier(m.name) || ts.isStringLiteral(m.name)) ? [m.name.text] : []));
      out.push({ line: src.getLineAndCharacterOfPosition(n.getStart()).line + 1, names });
    }
    ts.forEachChild(n, visit);
  };
  visit(src);
  return out;
}

/** A shape copies the API when it names 3 or more fields and all of them are fields of one API object. */
export function copiedApiShapes(files: string[], shapes: Set<string>[]): string[] {
  const found: string[] = [];
  for (const f of files) {
    for (const w of writtenShapes(f)) {
      if (w.names.length < 3) continue;
      const copy = shapes.find((s) => w.names.every((n) => s.has(n)));
      if (copy) found.push(`${path.relative(ROOT, f)}:${w.line} { ${w.names.join(', ')} }`);
    }
  }
  return found;
}

describe('one typed contract between server and console', () => {
  it('web/src/api.gen.ts is what the OpenAPI document generates now (npm run build checks the same)', async () => {
    expect(fs.readFileSync(GENERATED, 'utf8') === (await generate()), 'web/src/api.gen.ts is stale: run npm run gen:api').toBe(true);
  });

  it('web/ writes no API shapes by hand: every type of an answer or a body comes from the generated file', async () => {
    const shapes = apiShapes((await openApiDocument()) as { paths: Record<string, Record<string, unknown>> });
    expect(shapes.length).toBeGreaterThan(50);
    expect(copiedApiShapes(webFiles(), shapes)).toEqual([]);
  });

  it('the check catches a hand-written copy of an answer', async () => {
    const shapes = apiShapes((await openApiDocument()) as { paths: Record<string, Record<string, unknown>> });
    // test-output/ is not in the repository: a fresh checkout that runs this file alone has none yet.
    fs.mkdirSync(path.join(ROOT, 'test-output'), { recursive: true });
    const dir = fs.mkdtempSync(path.join(ROOT, 'test-output', 'contract-'));
    try {
      const f = path.join(dir, 'Copy.tsx');
      fs.writeFileSync(f, 'type Token = { id: string; prefix: string; expiresAt: string | null; revokedAt: string | null };\nexport const x = 1;\n');
      expect(copiedApiShapes([f], shapes)).toEqual([expect.stringContaining('Copy.tsx:1')]);
    } finally {
      fs.rmSync(dir, { recursive: true, force: true });
    }
  });

  it('only web/src/api.ts talks to the server (no other fetch, no string-built /api/v1 URLs)', () => {
    const offenders = webFiles()
      .filter((f) => !f.endsWith(`${path.sep}api.ts`))
      .flatMap((f) =>
        fs
          .readFileSync(f, 'utf8')
          .split('\n')
          .flatMap((line, i) => (/\bfetch\(|XMLHttpRequest|[`'"]\/api\/v1\/[^'"`]*\$\{/.test(line) ? [`${path.relative(ROOT, f)}:${i + 1}`] : [])),
      );
    expect(offenders).toEqual([]);
  });
});

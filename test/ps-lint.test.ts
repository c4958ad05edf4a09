import { execFile } from 'node:child_process';
import fs from 'node:fs';
import path from 'node:path';
import { promisify } from 'node:util';
import { describe, expect, it } from 'vitest';
import { formatProblem, lintFiles, lintPowerShell, listPowerShellFiles, type PsProblem } from '../tools/ps-lint.js';

const ROOT = path.resolve(import.meta.dirname, '..');
const SAMPLES = path.join(ROOT, 'test', 'fixtures', 'ps-lint');

async function lintSample(name: string): Promise<PsProblem[]> {
  return lintPowerShell(fs.readFileSync(path.join(SAMPLES, name)), name);
}

/** `line:column rule` per problem, the shape the expectations below are written in. */
const where = (problems: PsProblem[]) => problems.map((p) => `${p.line}:${p.column} ${p.rule}`);

/**
 * tools/ps-lint.ts is what `npm run lint` (and so .ci/run) runs over every .ps1 of the agent: a
 * PowerShell 7 construct must fail it. Each rule is shown firing on a small bad sample
 * (test/fixtures/ps-lint/), and not firing on a sample of 5.1 code that looks like them.
 */
describe('PowerShell 5.1 lint', () => {
  it('passes 5.1 code that only looks like PowerShell 7 (comments, strings, Group-Object -AsHashTable, ? alias, splatting, -Token on its own function)', async () => {
    expect((await lintSample('good.ps1')).map(formatProblem)).toEqual([]);
  });

  it('names the null-coalescing operators', async () => {
    const problems = await lintSample('null-coalescing.ps1');
    expect(where(problems)).toEqual(['2:18 ps7-syntax', '3:7 ps7-syntax']);
    expect(problems[0]!.message).toContain('null-coalescing operator ??');
    expect(problems[1]!.message).toContain('null-coalescing assignment ??=');
  });

  it('names the null-conditional operators', async () => {
    const problems = await lintSample('null-conditional.ps1');
    expect(where(problems)).toEqual(['2:23 ps7-syntax', '3:18 ps7-syntax']);
    expect(problems[0]!.message).toContain('member access ?.');
    expect(problems[1]!.message).toContain('index ?[');
  });

  it('names the ternary operator', async () => {
    const problems = await lintSample('ternary.ps1');
    expect(where(problems)).toEqual(['2:18 ps7-syntax']);
    expect(problems[0]!.message).toContain('ternary operator');
  });

  it('names the pipeline chain operators && and ||', async () => {
    const problems = await lintSample('pipeline-chain.ps1');
    expect(where(problems)).toEqual(['1:27 ps7-syntax', '2:29 ps7-syntax']);
    expect(problems[0]!.message).toContain('pipeline chain operator &&');
    expect(problems[1]!.message).toContain('pipeline chain operator ||');
  });

  it('names the background operator and the clean block', async () => {
    expect((await lintSample('background.ps1')).map((p) => `${where([p])[0]} ${p.message}`)).toEqual([
      expect.stringMatching(/^1:24 ps7-syntax the background operator &/),
    ]);
    expect((await lintSample('clean-block.ps1')).map((p) => `${where([p])[0]} ${p.message}`)).toEqual([
      expect.stringMatching(/^4:5 ps7-syntax the clean \{ \} block/),
    ]);
  });

  it('finds PowerShell 7 parameters given directly, by alias, with a colon and by splatting', async () => {
    const problems = await lintSample('ps7-parameters.ps1');
    expect(problems.map((p) => `${p.line} ${p.rule} ${p.message.split(' is ')[0]}`)).toEqual([
      '1 ps7-parameter ForEach-Object -Parallel',
      '1 ps7-parameter ForEach-Object -ThrottleLimit (with -Parallel)',
      '2 ps7-parameter -SkipCertificateCheck',
      '3 ps7-parameter -StatusCodeVariable', // irm alias
      '3 ps7-parameter -SkipHttpErrorCheck', // -Name:$true
      '4 ps7-parameter ConvertFrom-Json -AsHashtable',
      '4 ps7-parameter ConvertFrom-Json -Depth',
      '5 ps7-parameter -Authentication',
      '5 ps7-parameter -Token',
      '5 ps7-parameter -NoProxy',
      '6 ps7-parameter -ResponseHeadersVariable', // @{ … } splatted on line 8
      '7 ps7-parameter -AllowUnencryptedAuthentication', // $request['…'] splatted on line 8
      '9 ps7-parameter Join-Path with more than two paths',
      '10 ps7-encoding -Encoding utf8NoBOM',
      '11 ps7-parameter ConvertTo-Json -EnumsAsStrings',
    ]);
    expect(problems.find((p) => p.line === 6)!.message).toContain('splatted into Invoke-RestMethod with @request');
  });

  it('finds PowerShell 7 cmdlets, automatic variables, string escapes, number literals, -replace with a script block and #Requires', async () => {
    const problems = await lintSample('ps7-commands.ps1');
    expect(problems.map((p) => `${p.line} ${p.rule} ${p.message.split(' is ')[0]}`)).toEqual([
      '1 ps7-command Get-Error',
      '2 ps7-command Test-Json',
      '2 ps7-command Join-String',
      '3 ps7-variable $PSStyle',
      '3 ps7-syntax the escape `e',
      '4 ps7-variable $IsWindows',
      '4 ps7-syntax the escape `u{...}',
      '5 ps7-syntax the number literal 0b1010 (type suffix or 0b binary)',
      '6 ps7-syntax the number literal 10u (type suffix or 0b binary)',
      '7 ps7-syntax a script block as -replace replacement',
      '8 ps7-syntax #Requires -Version 7.2 makes Windows PowerShell 5.1 refuse the file',
    ]);
  });

  it('reports parse errors with line and column', async () => {
    const problems = await lintSample('parse-error.ps1');
    expect(problems.map(formatProblem)).toEqual([
      'parse-error.ps1:2:16: parse-error: parse error: missing `decimal_integer_literal`',
      'parse-error.ps1:4:2: parse-error: parse error: missing `}`',
    ]);
    // Valid PowerShell the grammar cannot read gets a message that says what to change.
    const oneLine = await lintPowerShell(Buffer.from('function Get-A { param($a) $a }\n'), 'one-line.ps1');
    expect(oneLine.map(formatProblem)).toEqual([
      "one-line.ps1:1:18: parse-error: parse error: put a line break or ; between param(...) and the code after it (the checker's grammar needs one)",
    ]);
  });

  // Byte-level samples are built here rather than kept as files: git may rewrite line ends or
  // strip a BOM on checkout, and then the sample would no longer show what it is meant to.
  describe('bytes', () => {
    const lint = (bytes: Buffer) => lintPowerShell(bytes, 'sample.ps1');

    it('refuses a UTF-8 BOM and UTF-16', async () => {
      const bom = await lint(Buffer.concat([Buffer.from([0xef, 0xbb, 0xbf]), Buffer.from("Write-Output 'x'\r\n")]));
      expect(bom.map(formatProblem)).toEqual(['sample.ps1:1:1: bom: the file starts with a UTF-8 byte order mark: save it as plain ASCII without one']);
      const utf16 = await lint(Buffer.concat([Buffer.from([0xff, 0xfe]), Buffer.from("Write-Output 'x'\r\n", 'utf16le')]));
      expect(where(utf16)).toEqual(['1:1 bom']);
      expect(utf16[0]!.message).toContain('UTF-16');
    });

    it('refuses non-ASCII characters, once per line, in code, strings and comments', async () => {
      const problems = await lint(Buffer.from("# Schl\u00fcssel\n$a = 'caf\u00e9 \u00e0'\n$b = 1 \u2013 1\nWrite-Output 'ok'\n", 'utf8'));
      expect(where(problems).filter((w) => w.endsWith('non-ascii'))).toEqual(['1:7 non-ascii', '2:10 non-ascii', '3:8 non-ascii']);
      expect(problems.find((p) => p.rule === 'non-ascii' && p.line === 3)!.message).toContain('U+2013');
      // A file saved in an ANSI code page: 0xE4 is not UTF-8.
      const ansi = await lint(Buffer.from([...Buffer.from("$a = '"), 0xe4, ...Buffer.from("'\n")]));
      expect(where(ansi)).toEqual(['1:7 non-ascii']);
      expect(ansi[0]!.message).toContain('neither ASCII nor UTF-8');
    });

    it('refuses mixed line ends and a lone CR', async () => {
      const mixed = await lint(Buffer.from('$a = 1\r\n$b = 2\r\n$c = 3\n$d = 4\r\n'));
      expect(mixed.map(formatProblem)).toEqual([
        'sample.ps1:3:7: line-endings: mixed line ends (3 CRLF, 1 LF): use one kind in the whole file; this is the first LF',
      ]);
      // (The grammar does not end a line at a lone CR either, so a parse error comes with it.)
      expect(where(await lint(Buffer.from('$a = 1\r$b = 2\n'))).filter((w) => w.endsWith('line-endings'))).toEqual(['1:7 line-endings']);
      // One kind throughout is fine, either kind.
      expect(await lint(Buffer.from('$a = 1\r\n$b = 2\r\n'))).toEqual([]);
      expect(await lint(Buffer.from('$a = 1\n$b = 2\n'))).toEqual([]);
    });
  });

  it('keeps a file that carries a token free of words that make Windows log whole scripts (event 4104)', async () => {
    const problems = await lintSample('autolog-word.ps1');
    expect(where(problems)).toEqual(['3:8 autolog-word']);
    expect(problems[0]!.message).toContain('"Add-Type"');
    // Only files marked as carrying a token: the agent itself compiles its pinning helper.
    expect(await lintPowerShell(Buffer.from('$x = 1\n# uses Add-Type later\n'), 'unmarked.ps1')).toEqual([]);
    // Inside longer words, in strings, any case: PowerShell checks the raw text the same way.
    const hidden = await lintPowerShell(
      Buffer.from("# ps-lint: carries-secrets\n$p = 'powershell -ExecutionPolicy bypass'\n$m = 'RijndaelManagedX'\n"),
      'hidden.ps1',
    );
    expect(hidden.map((p) => `${p.line} ${p.message.split(' (in')[0]}`)).toEqual(['2 "Bypass"', '3 "RijndaelManaged"']);
    // The Syncro wrapper is marked, so the rule guards it.
    expect(fs.readFileSync(path.join(ROOT, 'agent', 'examples', 'Syncro-Keywarden.ps1'), 'utf8')).toMatch(/^# ps-lint: carries-secrets/m);
  });

  it('every PowerShell file of the agent passes', async () => {
    const files = listPowerShellFiles();
    expect(files).toEqual(expect.arrayContaining(['agent/Keywarden-Agent.ps1', 'agent/examples/Install-KeywardenAgent.ps1']));
    expect((await lintFiles(files)).map(formatProblem)).toEqual([]);
  });

  it('the command line exits 1 and prints file:line:column for a bad file; npm run lint runs it', async () => {
    const tsx = path.join(ROOT, 'node_modules', '.bin', 'tsx');
    const bad = path.relative(ROOT, path.join(SAMPLES, 'ternary.ps1'));
    const run = await promisify(execFile)(tsx, ['tools/ps-lint.ts', bad], { cwd: ROOT }).then(
      () => ({ code: 0, stdout: '' }),
      (error: { code: number; stdout: string }) => ({ code: error.code, stdout: error.stdout }),
    );
    expect(run.code).toBe(1);
    expect(run.stdout).toContain(`${bad}:2:18: ps7-syntax: the ternary operator`);

    // .ci/run runs `npm run lint`, which must include this checker.
    const scripts = JSON.parse(fs.readFileSync(path.join(ROOT, 'package.json'), 'utf8')).scripts;
    expect(scripts.lint).toContain('npm run lint:ps');
    expect(scripts['lint:ps']).toBe('tsx tools/ps-lint.ts');
    expect(fs.readFileSync(path.join(ROOT, '.ci', 'run'), 'utf8')).toMatch(/^if npm run lint; then/m);
  });
});

/**
 * Checks the Windows agent's PowerShell without Windows: every file must parse, must run on
 * Windows PowerShell 5.1 (the only PowerShell every Windows 10/11 machine has) and must be plain
 * ASCII with one kind of line end and no BOM (5.1 reads a BOM-less file as the ANSI code page, so
 * any non-ASCII byte changes meaning from one machine to the next).
 *
 * The parser is the tree-sitter PowerShell grammar compiled to WebAssembly (npm
 * tree-sitter-powershell + web-tree-sitter): nothing native is built. The grammar follows
 * PowerShell 7, except that it has no `??`, `?.`, `?[` or ternary: those come out as ERROR
 * nodes, which this checker recognizes by their text and names.
 *
 * Rules: parse-error (ERROR and MISSING nodes); ps7-syntax (`??`, `??=`, `?.`, `?[`, ternary,
 * `&&` / `||` chains, a trailing `&`, `clean {}`, "`e" and "`u{}" escapes, 1u / 0b1 literals,
 * `-replace` with a script block, `#Requires -Version 7`); ps7-command, ps7-parameter (given,
 * by alias, with a colon or splatted from a hashtable of the same file), ps7-variable,
 * ps7-encoding (the tables below, each entry with its reason); non-ascii, bom, line-endings;
 * autolog-word (only in files marked `# ps-lint: carries-secrets`).
 * Comments and strings are never read as code: the checks walk the syntax tree.
 *
 *   npm run lint:ps                     every .ps1/.psm1/.psd1 under agent/ and docs/
 *   npx tsx tools/ps-lint.ts FILE...    the given files
 *
 * Prints one `file:line:column: rule: message` per problem and exits 1 when there is any.
 * Bad samples for every rule: test/fixtures/ps-lint/ (test/ps-lint.test.ts).
 */
import fs from 'node:fs';
import { createRequire } from 'node:module';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import v8 from 'node:v8';
import { Language, Parser, type Node } from 'web-tree-sitter';

export type PsRule =
  'parse-error' | 'ps7-syntax' | 'ps7-command' | 'ps7-parameter' | 'ps7-variable' | 'ps7-encoding' | 'non-ascii' | 'bom' | 'line-endings' | 'autolog-word';

export interface PsProblem {
  file: string;
  /** 1-based */
  line: number;
  /** 1-based, in characters */
  column: number;
  rule: PsRule;
  message: string;
}

// ---------------------------------------------------------------------------------------------
// What Windows PowerShell 5.1 does not have. Each entry says why, in one line.
// ---------------------------------------------------------------------------------------------

/** Cmdlets that do not exist in Windows PowerShell 5.1 (keys lower case). */
export const PS7_COMMANDS: Record<string, string> = {
  'get-error': 'Get-Error is PowerShell 7.0+; in 5.1 read $Error[0] / $_.Exception',
  'test-json': 'Test-Json is PowerShell 6.1+; in 5.1 try ConvertFrom-Json and catch',
  'join-string': 'Join-String is PowerShell 6.2+; use the -join operator',
  'convertfrom-markdown': 'ConvertFrom-Markdown is PowerShell 6.1+',
  'show-markdown': 'Show-Markdown is PowerShell 6.1+',
  'get-markdownoption': 'Get-MarkdownOption is PowerShell 6.1+',
  'set-markdownoption': 'Set-MarkdownOption is PowerShell 6.1+',
  'remove-alias': 'Remove-Alias is PowerShell 6.0+; use Remove-Item Alias:\\Name',
  'remove-service': 'Remove-Service is PowerShell 6.0+; use sc.exe delete or Win32_Service',
  'get-uptime': 'Get-Uptime is PowerShell 6.0+; use Win32_OperatingSystem.LastBootUpTime',
  'get-experimentalfeature': 'experimental features are PowerShell 6.2+',
  'enable-experimentalfeature': 'experimental features are PowerShell 6.2+',
  'disable-experimentalfeature': 'experimental features are PowerShell 6.2+',
  'get-securerandom': 'Get-SecureRandom is PowerShell 7.4+; use RandomNumberGenerator',
  'convertto-clixml': 'ConvertTo-CliXml is PowerShell 7.5+; use [Management.Automation.PSSerializer]',
  'convertfrom-clixml': 'ConvertFrom-CliXml is PowerShell 7.5+; use [Management.Automation.PSSerializer]',
  'start-threadjob': 'the ThreadJob module ships with PowerShell 6.1+, not with Windows PowerShell 5.1',
};

const WEB = ['Invoke-RestMethod', 'Invoke-WebRequest'];

/** Parameters that a 5.1 cmdlet does not have (exact names; the cmdlet decides). */
export const PS7_PARAMETERS: { commands: string[]; parameter: string; why: string }[] = [
  { commands: ['ForEach-Object'], parameter: 'Parallel', why: 'ForEach-Object -Parallel is PowerShell 7.0+' },
  { commands: ['ForEach-Object'], parameter: 'ThrottleLimit', why: 'ForEach-Object -ThrottleLimit (with -Parallel) is PowerShell 7.0+' },
  { commands: ['ForEach-Object'], parameter: 'TimeoutSeconds', why: 'ForEach-Object -TimeoutSeconds (with -Parallel) is PowerShell 7.0+' },
  { commands: ['ForEach-Object'], parameter: 'AsJob', why: 'ForEach-Object -AsJob (with -Parallel) is PowerShell 7.0+' },
  { commands: ['ForEach-Object'], parameter: 'UseNewRunspace', why: 'ForEach-Object -UseNewRunspace is PowerShell 7.1+' },
  { commands: WEB, parameter: 'SkipCertificateCheck', why: '-SkipCertificateCheck is PowerShell 6.0+; 5.1 validates through ServicePointManager' },
  { commands: WEB, parameter: 'SkipHttpErrorCheck', why: '-SkipHttpErrorCheck is PowerShell 7.0+; in 5.1 an HTTP error status throws' },
  { commands: ['Invoke-RestMethod'], parameter: 'StatusCodeVariable', why: "-StatusCodeVariable is PowerShell 7.0+; in 5.1 read the exception's Response" },
  { commands: ['Invoke-RestMethod'], parameter: 'ResponseHeadersVariable', why: '-ResponseHeadersVariable is PowerShell 6.0+' },
  { commands: ['Invoke-RestMethod'], parameter: 'FollowRelLink', why: '-FollowRelLink is PowerShell 6.0+' },
  { commands: ['Invoke-RestMethod'], parameter: 'MaximumFollowRelLink', why: '-MaximumFollowRelLink is PowerShell 6.0+' },
  { commands: WEB, parameter: 'NoProxy', why: '-NoProxy is PowerShell 6.0+; 5.1 uses the system proxy unless -Proxy is given' },
  { commands: WEB, parameter: 'Authentication', why: '-Authentication is PowerShell 6.0+; in 5.1 set the Authorization header' },
  { commands: WEB, parameter: 'Token', why: '-Token is PowerShell 6.0+; in 5.1 set the Authorization header' },
  { commands: WEB, parameter: 'AllowUnencryptedAuthentication', why: '-AllowUnencryptedAuthentication is PowerShell 6.0+' },
  { commands: WEB, parameter: 'SkipHeaderValidation', why: '-SkipHeaderValidation is PowerShell 6.0+' },
  { commands: WEB, parameter: 'SslProtocol', why: '-SslProtocol is PowerShell 6.0+; 5.1 uses ServicePointManager.SecurityProtocol' },
  { commands: WEB, parameter: 'CustomMethod', why: '-CustomMethod is PowerShell 6.0+' },
  { commands: WEB, parameter: 'PreserveAuthorizationOnRedirect', why: '-PreserveAuthorizationOnRedirect is PowerShell 6.0+' },
  { commands: WEB, parameter: 'Form', why: '-Form is PowerShell 6.1+' },
  { commands: WEB, parameter: 'Resume', why: '-Resume is PowerShell 6.1+' },
  { commands: WEB, parameter: 'MaximumRetryCount', why: '-MaximumRetryCount is PowerShell 6.1+; 5.1 never retries' },
  { commands: WEB, parameter: 'RetryIntervalSec', why: '-RetryIntervalSec is PowerShell 6.1+' },
  { commands: WEB, parameter: 'HttpVersion', why: '-HttpVersion is PowerShell 7.1+' },
  { commands: WEB, parameter: 'ConnectionTimeoutSeconds', why: '-ConnectionTimeoutSeconds is PowerShell 7.4+; 5.1 has -TimeoutSec' },
  { commands: WEB, parameter: 'OperationTimeoutSeconds', why: '-OperationTimeoutSeconds is PowerShell 7.4+; 5.1 has -TimeoutSec' },
  { commands: WEB, parameter: 'AllowInsecureRedirect', why: '-AllowInsecureRedirect is PowerShell 7.4+' },
  { commands: WEB, parameter: 'PreserveHttpMethodOnRedirect', why: '-PreserveHttpMethodOnRedirect is PowerShell 7.4+' },
  { commands: WEB, parameter: 'UnixSocket', why: '-UnixSocket is PowerShell 7.4+' },
  { commands: ['ConvertFrom-Json'], parameter: 'AsHashtable', why: 'ConvertFrom-Json -AsHashtable is PowerShell 6.0+; 5.1 returns PSCustomObject' },
  { commands: ['ConvertFrom-Json'], parameter: 'Depth', why: 'ConvertFrom-Json -Depth is PowerShell 6.2+' },
  { commands: ['ConvertFrom-Json'], parameter: 'NoEnumerate', why: 'ConvertFrom-Json -NoEnumerate is PowerShell 7.0+' },
  { commands: ['ConvertFrom-Json'], parameter: 'DateKind', why: 'ConvertFrom-Json -DateKind is PowerShell 7.5+' },
  { commands: ['ConvertTo-Json'], parameter: 'EnumsAsStrings', why: 'ConvertTo-Json -EnumsAsStrings is PowerShell 6.2+; 5.1 writes enums as numbers' },
  { commands: ['ConvertTo-Json'], parameter: 'AsArray', why: 'ConvertTo-Json -AsArray is PowerShell 6.2+' },
  { commands: ['ConvertTo-Json'], parameter: 'EscapeHandling', why: 'ConvertTo-Json -EscapeHandling is PowerShell 6.2+' },
  { commands: ['Get-Content', 'Set-Content', 'Add-Content'], parameter: 'AsByteStream', why: '-AsByteStream is PowerShell 6.0+; 5.1 uses -Encoding Byte' },
  { commands: ['Split-Path'], parameter: 'LeafBase', why: 'Split-Path -LeafBase is PowerShell 6.0+; use [IO.Path]::GetFileNameWithoutExtension' },
  { commands: ['Split-Path'], parameter: 'Extension', why: 'Split-Path -Extension is PowerShell 6.0+; use [IO.Path]::GetExtension' },
  { commands: ['Join-Path'], parameter: 'AdditionalChildPath', why: 'Join-Path -AdditionalChildPath is PowerShell 6.0+; nest Join-Path' },
  { commands: ['Select-String'], parameter: 'Raw', why: 'Select-String -Raw is PowerShell 7.0+' },
  { commands: ['Select-String'], parameter: 'NoEmphasis', why: 'Select-String -NoEmphasis is PowerShell 7.0+' },
  { commands: ['Get-Date'], parameter: 'AsUTC', why: 'Get-Date -AsUTC is PowerShell 7.1+; use .ToUniversalTime()' },
  { commands: ['Get-Date'], parameter: 'UnixTimeSeconds', why: 'Get-Date -UnixTimeSeconds is PowerShell 7.1+' },
  { commands: ['Sort-Object'], parameter: 'Top', why: 'Sort-Object -Top is PowerShell 6.0+; use Select-Object -First' },
  { commands: ['Sort-Object'], parameter: 'Bottom', why: 'Sort-Object -Bottom is PowerShell 6.0+; use Select-Object -Last' },
  { commands: ['Sort-Object'], parameter: 'Stable', why: 'Sort-Object -Stable is PowerShell 6.0+' },
  { commands: ['Export-Csv', 'ConvertTo-Csv'], parameter: 'UseQuotes', why: '-UseQuotes is PowerShell 7.0+' },
  { commands: ['Export-Csv', 'ConvertTo-Csv'], parameter: 'QuoteFields', why: '-QuoteFields is PowerShell 7.0+' },
  { commands: ['Export-Csv', 'ConvertTo-Csv'], parameter: 'IncludeTypeInformation', why: '-IncludeTypeInformation is PowerShell 6.0+' },
  { commands: ['Import-Module'], parameter: 'UseWindowsPowerShell', why: 'Import-Module -UseWindowsPowerShell is PowerShell 7.0+' },
];

/** Built-in aliases (present in 5.1) of the cmdlets above. */
const ALIASES: Record<string, string> = {
  '%': 'ForEach-Object',
  foreach: 'ForEach-Object',
  irm: 'Invoke-RestMethod',
  iwr: 'Invoke-WebRequest',
  curl: 'Invoke-WebRequest',
  wget: 'Invoke-WebRequest',
  gc: 'Get-Content',
  cat: 'Get-Content',
  type: 'Get-Content',
  sc: 'Set-Content',
  ac: 'Add-Content',
  sls: 'Select-String',
  sort: 'Sort-Object',
  epcsv: 'Export-Csv',
  ipmo: 'Import-Module',
};

/** Automatic variables that 5.1 does not define: there they read as $null, silently. */
export const PS7_VARIABLES: Record<string, string> = {
  psstyle: '$PSStyle is PowerShell 7.2+',
  iswindows: '$IsWindows is PowerShell 6.0+',
  islinux: '$IsLinux is PowerShell 6.0+',
  ismacos: '$IsMacOS is PowerShell 6.0+',
  iscoreclr: '$IsCoreCLR is PowerShell 6.0+',
  enabledexperimentalfeatures: '$EnabledExperimentalFeatures is PowerShell 6.2+',
  psnativecommanduseerroractionpreference: '$PSNativeCommandUseErrorActionPreference is PowerShell 7.3+; 5.1 ignores it',
  psnativecommandargumentpassing: '$PSNativeCommandArgumentPassing is PowerShell 7.3+; 5.1 ignores it',
};

/** -Encoding values that only PowerShell 6+ knows (5.1: UTF8 always writes a BOM). */
const PS7_ENCODINGS = new Set(['utf8nobom', 'utf8bom', 'ansi']);

// ---------------------------------------------------------------------------------------------
// Parser
// ---------------------------------------------------------------------------------------------

let parserPromise: Promise<Parser> | undefined;

function loadParser(): Promise<Parser> {
  parserPromise ??= (async () => {
    // The grammar's lexer is one huge WebAssembly function. V8 first compiles it quickly
    // (Liftoff) and then optimizes it on background threads (TurboFan), which costs 20+ seconds
    // of CPU and keeps the process from exiting, for a parse that takes well under a second
    // either way. The flag holds for the rest of the process: the command line loads no other
    // WebAssembly, and in a test worker it could only make other WebAssembly slower, not wrong.
    v8.setFlagsFromString('--liftoff-only');
    const require = createRequire(import.meta.url);
    await Parser.init();
    const language = await Language.load(require.resolve('tree-sitter-powershell/tree-sitter-powershell.wasm'));
    const parser = new Parser();
    parser.setLanguage(language);
    return parser;
  })();
  return parserPromise;
}

// ---------------------------------------------------------------------------------------------
// The checks
// ---------------------------------------------------------------------------------------------

/** Checks one file's bytes. `file` is only used in the problems' `file` field. */
export async function lintPowerShell(bytes: Buffer, file: string): Promise<PsProblem[]> {
  const problems: PsProblem[] = [];
  const hasBom = bytes.length >= 3 && bytes[0] === 0xef && bytes[1] === 0xbb && bytes[2] === 0xbf;
  const text = bytes.toString('utf8', hasBom ? 3 : 0);
  const lineStarts = [0];
  for (let i = 0; i < text.length; i++) if (text[i] === '\n') lineStarts.push(i + 1);
  const at = (index: number, rule: PsRule, message: string) => {
    let lo = 0;
    let hi = lineStarts.length - 1;
    while (lo < hi) {
      const mid = (lo + hi + 1) >> 1;
      if (lineStarts[mid]! <= index) lo = mid;
      else hi = mid - 1;
    }
    problems.push({ file, line: lo + 1, column: index - lineStarts[lo]! + 1, rule, message });
  };

  if (hasBom) at(0, 'bom', 'the file starts with a UTF-8 byte order mark: save it as plain ASCII without one');
  if (bytes.length >= 2 && ((bytes[0] === 0xff && bytes[1] === 0xfe) || (bytes[0] === 0xfe && bytes[1] === 0xff))) {
    at(0, 'bom', 'the file is UTF-16: save it as plain ASCII');
    return problems;
  }
  checkBytes(text, at);
  if (CARRIES_SECRETS.test(text)) checkAutologWords(text, at);

  const parser = await loadParser();
  const tree = parser.parse(text);
  if (!tree) throw new Error(`${file}: the PowerShell parser returned nothing`);
  try {
    checkTree(tree.rootNode, text, at);
  } finally {
    tree.delete();
  }
  return problems.sort((a, b) => a.line - b.line || a.column - b.column || a.rule.localeCompare(b.rule));
}

type Report = (index: number, rule: PsRule, message: string) => void;

/**
 * A file that an RMM fills with an enrollment token (the Syncro wrapper) says so with this
 * comment. Windows PowerShell 5.1 writes the whole text of any script holding one of the words
 * below to event 4104, even where Script Block Logging was never turned on (the
 * suspicious-content list of System.Management.Automation's CompiledScriptBlock); in such a
 * file one of them would put the token into the event log of every device.
 */
const CARRIES_SECRETS = /^#\s*ps-lint:\s*carries-secrets\b/im;
export const AUTOLOG_WORDS = `Add-Type DllImport DefineDynamicAssembly DefineDynamicModule DefineType DefineConstructor CreateType
  DefineLiteral DefineEnum DefineField ILGenerator Emit UnverifiableCodeAttribute DefinePInvokeMethod GetTypes GetAssemblies Methods
  Properties GetConstructor GetConstructors GetDefaultMembers GetEvent GetEvents GetField GetFields GetInterface GetInterfaceMap
  GetInterfaces GetMember GetMembers GetMethod GetMethods GetNestedType GetNestedTypes GetProperties GetProperty InvokeMember
  MakeArrayType MakeByRefType MakeGenericType MakePointerType DeclaringMethod DeclaringType ReflectedType TypeHandle TypeInitializer
  UnderlyingSystemType InteropServices Marshal AllocHGlobal PtrToStructure StructureToPtr FreeHGlobal IntPtr MemoryStream
  DeflateStream FromBase64String EncodedCommand Bypass ToBase64String ExpandString GetPowerShell OpenProcess VirtualAlloc VirtualFree
  WriteProcessMemory CreateUserThread CloseHandle GetDelegateForFunctionPointer kernel32 CreateThread memcpy LoadLibrary GetModuleHandle
  GetProcAddress VirtualProtect FreeLibrary ReadProcessMemory CreateRemoteThread AdjustTokenPrivileges WriteByte WriteInt32 OpenThreadToken
  PtrToString ZeroFreeGlobalAllocUnicode OpenProcessToken GetTokenInformation SetThreadToken ImpersonateLoggedOnUser RevertToSelf
  GetLogonSessionData CreateProcessWithToken DuplicateTokenEx OpenWindowStation OpenDesktop MiniDumpWriteDump AddSecurityPackage
  EnumerateSecurityPackages GetProcessHandle DangerousGetHandle CryptoServiceProvider Cryptography RijndaelManaged SHA1Managed
  CryptoStream CreateEncryptor CreateDecryptor TransformFinalBlock DeviceIoControl SetInformationProcess PasswordDeriveBytes
  GetAsyncKeyState GetKeyboardState GetForegroundWindow BindingFlags NonPublic ScriptBlockLogging LogPipelineExecutionDetails
  ProtectedEventLogging`
  .split(/\s+/)
  .filter(Boolean);
const AUTOLOG_LOWER = AUTOLOG_WORDS.map((w) => w.toLowerCase());

function checkAutologWords(text: string, at: Report) {
  // Like PowerShell, look inside every word (digits kept in, which is stricter), in comments and
  // strings too: the event holds the script's whole text.
  for (const m of text.matchAll(/[A-Za-z0-9-]+/g)) {
    const run = m[0].toLowerCase();
    const word = AUTOLOG_WORDS[AUTOLOG_LOWER.findIndex((w) => run.includes(w))];
    if (!word) continue;
    at(
      m.index,
      'autolog-word',
      `"${word}" (in "${m[0]}") makes Windows PowerShell log this whole script to event 4104 on every device, and this file carries a token (ps-lint: carries-secrets): reword it`,
    );
  }
}

function checkBytes(text: string, at: Report) {
  // One non-ASCII report per line is enough to find it.
  let lastLine = -1;
  let line = 0;
  for (let i = 0; i < text.length; i++) {
    const c = text.charCodeAt(i);
    if (c === 10) line++;
    if (c > 0x7e || (c < 0x20 && c !== 9 && c !== 10 && c !== 13)) {
      if (line === lastLine) continue;
      lastLine = line;
      const cp = text.codePointAt(i)!;
      const name = `U+${cp.toString(16).toUpperCase().padStart(4, '0')}`;
      const why = 'Windows PowerShell 5.1 reads a file without BOM in the ANSI code page';
      if (c < 0x20 || c === 0x7f) at(i, 'non-ascii', `control character ${name}: write it as [char]${c}`);
      else if (cp === 0xfffd) at(i, 'non-ascii', `a byte that is neither ASCII nor UTF-8 (an ANSI code page character?): ${why}; use ASCII only`);
      else at(i, 'non-ascii', `character ${name} is not ASCII: ${why}; write it as [char]0x${cp.toString(16)} or leave it out`);
    }
  }

  let crlf = 0;
  let lf = 0;
  let firstCrlf = -1;
  let firstLf = -1;
  for (let i = 0; i < text.length; i++) {
    if (text[i] === '\n') {
      if (i > 0 && text[i - 1] === '\r') {
        crlf++;
        if (firstCrlf < 0) firstCrlf = i - 1;
      } else {
        lf++;
        if (firstLf < 0) firstLf = i;
      }
    } else if (text[i] === '\r' && text[i + 1] !== '\n') {
      at(i, 'line-endings', 'a lone CR (carriage return without line feed)');
    }
  }
  if (crlf > 0 && lf > 0) {
    const odd = crlf >= lf ? firstLf : firstCrlf;
    at(odd, 'line-endings', `mixed line ends (${crlf} CRLF, ${lf} LF): use one kind in the whole file; this is the first ${crlf >= lf ? 'LF' : 'CRLF'}`);
  }
}

/** Every node of the subtree, in source order. */
function* walk(root: Node): Generator<Node> {
  const stack: Node[] = [root];
  while (stack.length > 0) {
    const node = stack.pop()!;
    yield node;
    const children = node.children;
    for (let i = children.length - 1; i >= 0; i--) stack.push(children[i]!);
  }
}

/** The node types the checks look at; everything else is only walked through. */
const INTERESTING = new Set([
  'pipeline_chain_tail',
  'command',
  'variable',
  'expandable_string_literal',
  'expandable_here_string_literal',
  'assignment_expression',
  'invokation_expression',
  'comparison_operator',
  'comment',
]);

function checkTree(root: Node, text: string, at: Report) {
  // One cursor pass (materializing a Node for every one of the ~40,000 nodes of the agent is
  // several times slower); the nodes the checks need are collected by type.
  const found = new Map<string, Node[]>();
  const cursor = root.walk();
  try {
    for (;;) {
      const type = cursor.nodeType;
      let descend = true;
      if (type === 'ERROR') {
        // One message per error region; its inner nodes are part of the same mistake.
        reportError(cursor.currentNode, text, at);
        descend = false;
      } else if (cursor.nodeIsMissing) {
        at(cursor.startIndex, 'parse-error', `parse error: missing \`${type}\``);
      } else if (INTERESTING.has(type)) {
        const list = found.get(type) ?? [];
        list.push(cursor.currentNode);
        found.set(type, list);
      }
      if (descend && cursor.gotoFirstChild()) continue;
      while (!cursor.gotoNextSibling()) {
        if (!cursor.gotoParent()) return finish();
      }
    }
  } finally {
    cursor.delete();
  }

  function finish() {
    const of = (type: string) => found.get(type) ?? [];
    for (const node of of('pipeline_chain_tail')) {
      const op = node.text.trim();
      at(node.startIndex + node.text.indexOf(op), 'ps7-syntax', `the pipeline chain operator ${op} is PowerShell 7; use if ($?) / if (-not $?) or try/catch`);
    }
    const splats = collectSplatKeys(of('assignment_expression'), of('invokation_expression'));
    for (const node of of('command')) checkCommand(node, splats, at);
    for (const node of of('variable')) checkVariable(node, at);
    for (const node of [...of('expandable_string_literal'), ...of('expandable_here_string_literal')]) checkEscapes(node, at);
    for (const node of of('comparison_operator')) checkReplace(node, at);
    for (const node of of('comment')) checkRequires(node, at);
  }
}

/** Gives an ERROR region a name when it is a PowerShell 7 construct the grammar does not know. */
function reportError(node: Node, text: string, at: Report) {
  // `??`, `?.`, `?[` and the ternary `?` each leave an inner ERROR that starts with the `?`; a
  // region can hold several (two statements in a row), so each one is named.
  const named = new Set<number>();
  for (const n of walk(node)) {
    if (n.type !== 'ERROR') continue;
    const i = n.startIndex + (n.text.length - n.text.trimStart().length);
    // Nested ERROR nodes can start at the same `?`.
    if (text[i] !== '?' || named.has(i)) continue;
    named.add(i);
    const next = text.slice(i, i + 3);
    if (next === '??=') at(i, 'ps7-syntax', 'the null-coalescing assignment ??= is PowerShell 7; use if ($null -eq $x) { $x = ... }');
    else if (next.startsWith('??')) at(i, 'ps7-syntax', 'the null-coalescing operator ?? is PowerShell 7; use if ($null -ne $a) { $a } else { $b }');
    else if (next.startsWith('?.')) at(i, 'ps7-syntax', 'the null-conditional member access ?. is PowerShell 7; test for $null first');
    else if (next.startsWith('?[')) at(i, 'ps7-syntax', 'the null-conditional index ?[ is PowerShell 7; test for $null first');
    else at(i, 'ps7-syntax', 'the ternary operator a ? b : c is PowerShell 7; use if (a) { b } else { c }');
  }
  if (named.size > 0) return;

  const trimmed = node.text.trimEnd();
  if (trimmed.endsWith('&') && !trimmed.endsWith('&&')) {
    at(node.startIndex + trimmed.length - 1, 'ps7-syntax', 'the background operator & at the end of a pipeline is PowerShell 6+; use Start-Job');
    return;
  }
  const children = node.children;
  const clean = children.find((c) => c.type === 'simple_name' && c.text.trim().toLowerCase() === 'clean');
  if (clean && children.some((c) => c.type === 'named_block')) {
    at(clean.startIndex + clean.text.indexOf('c'), 'ps7-syntax', 'the clean { } block is PowerShell 7.3; use end { } with try/finally');
    return;
  }
  if (/^param\s*\(/i.test(node.text.trimStart())) {
    // Valid PowerShell that the grammar cannot read: `{ param($a) $a }` on one line.
    at(
      node.startIndex + (node.text.length - node.text.trimStart().length),
      'parse-error',
      "parse error: put a line break or ; between param(...) and the code after it (the checker's grammar needs one)",
    );
    return;
  }
  const snippet = node.text.trim().split(/\r?\n/)[0]!.slice(0, 40);
  at(node.startIndex + (node.text.length - node.text.trimStart().length), 'parse-error', `parse error: PowerShell cannot read this here: \`${snippet}\``);
}

const MODULE_QUALIFIER = /^[\w.]+\\/;

function canonicalCommand(name: string): string {
  const bare = name.replace(MODULE_QUALIFIER, '');
  const alias = ALIASES[bare.toLowerCase()];
  return (alias ?? bare).toLowerCase();
}

/** Numbers with the suffixes PowerShell 6.2+ added (1u, 5y, 3s, 7n, 10ul) or 7.0's binary literals. */
const PS7_NUMBER = /^(?:(?:0x[0-9a-f]+|\d+)(?:u|y|uy|s|us|ul|n)(?:kb|mb|gb|tb|pb)?|0b[01]+(?:[a-z]*)?)$/i;

function checkCommand(node: Node, splats: Map<string, { key: string; index: number }[]>, at: Report) {
  const nameNode = node.children.find((c) => c.type === 'command_name');
  if (!nameNode) return;
  const written = nameNode.text.trim();
  const command = canonicalCommand(written);
  const commandWhy = PS7_COMMANDS[command];
  if (commandWhy) at(nameNode.startIndex, 'ps7-command', commandWhy);
  if (PS7_NUMBER.test(written)) {
    // The grammar reads a number it does not know as a command name, and so does 5.1.
    at(nameNode.startIndex, 'ps7-syntax', `the number literal ${written} (type suffix or 0b binary) is PowerShell 6.2+/7; use a cast such as [uint32]10`);
  }

  const rules = PS7_PARAMETERS.filter((p) => p.commands.some((c) => c.toLowerCase() === command));
  const elements = node.children.find((c) => c.type === 'command_elements')?.children.filter((c) => c.type !== 'command_argument_sep') ?? [];
  const seps = node.children.find((c) => c.type === 'command_elements')?.children ?? [];
  for (const element of elements) {
    if (element.type === 'command_parameter') {
      const parameter = element.text.trim().replace(/^-/, '').replace(/:$/, '').toLowerCase();
      const rule = rules.find((p) => p.parameter.toLowerCase() === parameter);
      if (rule) at(element.startIndex, 'ps7-parameter', rule.why);
      if (parameter === 'encoding') checkEncoding(element, seps, at);
      continue;
    }
    const splat = /^@([\w:]+)$/.exec(element.text.trim());
    if (splat) {
      for (const { key, index } of splats.get(variableName(splat[1]!)) ?? []) {
        const rule = rules.find((p) => p.parameter.toLowerCase() === key.toLowerCase());
        if (rule) at(index, 'ps7-parameter', `${rule.why} (splatted into ${written} with @${splat[1]})`);
      }
    }
  }
  if (command === 'join-path') checkJoinPath(nameNode, elements, at);
}

/** The -Encoding value after the parameter (`-Encoding utf8NoBOM` or `-Encoding:'utf8NoBOM'`). */
function checkEncoding(parameter: Node, siblings: Node[], at: Report) {
  const start = siblings.findIndex((s) => s.type === 'command_parameter' && s.startIndex === parameter.startIndex);
  const value = siblings.slice(start + 1).find((s) => s.type !== 'command_argument_sep');
  if (!value) return;
  const word = value.text.trim().replace(/^['"]|['"]$/g, '');
  if (PS7_ENCODINGS.has(word.toLowerCase()) || /^\d+$/.test(word)) {
    at(
      value.startIndex,
      'ps7-encoding',
      `-Encoding ${word} is PowerShell 6+; in 5.1 write the bytes with [IO.File]::WriteAllText(path, text, [Text.UTF8Encoding]::new($false))`,
    );
  }
}

const JOIN_PATH_VALUE_PARAMETERS = [
  'path',
  'childpath',
  'credential',
  'additionalchildpath',
  'erroraction',
  'warningaction',
  'informationaction',
  'errorvariable',
  'warningvariable',
  'informationvariable',
  'outvariable',
  'outbuffer',
  'pipelinevariable',
];
const REDIRECTION = /^(?:\d|\*)?>>?(?:&\d)?/;

/** `Join-Path a b c` binds c to PowerShell 6's -AdditionalChildPath; 5.1 refuses the third path. */
function checkJoinPath(nameNode: Node, elements: Node[], at: Report) {
  let paths = 0;
  for (let i = 0; i < elements.length; i++) {
    const element = elements[i]!;
    const text = element.text.trim();
    if (element.type === 'command_parameter') {
      const parameter = text.replace(/^-/, '').replace(/:$/, '').toLowerCase();
      if (parameter.length > 0 && JOIN_PATH_VALUE_PARAMETERS.some((p) => p.startsWith(parameter))) {
        if (parameter === 'path' || parameter === 'childpath') paths++;
        i++; // its value
      }
      continue;
    }
    if (text.startsWith('@') || REDIRECTION.test(text)) {
      if (text.startsWith('@') && /^@[\w:]+$/.test(text)) return; // splatted: cannot count
      continue;
    }
    paths++;
  }
  if (paths > 2) {
    at(nameNode.startIndex, 'ps7-parameter', 'Join-Path with more than two paths is PowerShell 6.0+ (-AdditionalChildPath); nest Join-Path calls');
  }
}

function variableName(raw: string): string {
  return raw
    .replace(/^[$@]/, '')
    .replace(/^\{|\}$/g, '')
    .replace(/^(?:global|script|local|private):/i, '')
    .toLowerCase();
}

function checkVariable(node: Node, at: Report) {
  const text = node.text.trim();
  if (!text.startsWith('$')) return;
  const why = PS7_VARIABLES[variableName(text)];
  if (why) at(node.startIndex, 'ps7-variable', `${why}; in Windows PowerShell 5.1 it does not exist and reads as $null`);
}

/** "`e" (escape) and "`u{…}" (a code point) are PowerShell 6+ escapes; 5.1 prints e and u{…}. */
function checkEscapes(node: Node, at: Report) {
  const text = node.text;
  for (let i = 0; i < text.length - 1; i++) {
    if (text[i] !== '`') continue;
    const next = text[i + 1];
    if (next === 'e') at(node.startIndex + i, 'ps7-syntax', 'the escape `e is PowerShell 6+; use [char]27');
    else if (next === 'u' && text[i + 2] === '{') at(node.startIndex + i, 'ps7-syntax', 'the escape `u{...} is PowerShell 6+; use [char]0x...');
    i++; // the escaped character, so that `` is one escaped backtick
  }
}

/** Pattern, then a replacement that starts with `{`: `-replace 'a', { ... }`. */
const REPLACE_WITH_SCRIPTBLOCK = /^(?:'(?:[^']|'')*'|"(?:[^"`]|`.)*"|[^,'"]+?)\s*,\s*\{/s;

/** `-replace 'x', { … }` is PowerShell 6.1+; 5.1 turns the script block into replacement text. */
function checkReplace(node: Node, at: Report) {
  if (!/^-[ic]?replace$/i.test(node.text.trim())) return;
  const right = node.nextNamedSibling;
  if (right && REPLACE_WITH_SCRIPTBLOCK.test(right.text.trim())) {
    at(
      node.startIndex,
      'ps7-syntax',
      'a script block as -replace replacement is PowerShell 6.1+; 5.1 inserts its text. Use [regex]::Replace(text, pattern, { ... })',
    );
  }
}

/** `#Requires -Version 6` or later, or `-PSEdition Core`: Windows PowerShell 5.1 refuses to run the file. */
function checkRequires(node: Node, at: Report) {
  const text = node.text.trim();
  if (!/^#requires\b/i.test(text)) return;
  const version = /-version\s+(\d+)/i.exec(text);
  if ((version && Number(version[1]) >= 6) || /-psedition\s+core/i.test(text)) {
    at(node.startIndex, 'ps7-syntax', `${text} makes Windows PowerShell 5.1 refuse the file`);
  }
}

/**
 * Keys that reach a command by splatting: `$request = @{ Key = … }`, `$request['Key'] = …`,
 * `$request.Key = …` and `$request.Add('Key', …)`, by variable name across the file.
 */
function collectSplatKeys(assignments: Node[], invocations: Node[]): Map<string, { key: string; index: number }[]> {
  const keys = new Map<string, { key: string; index: number }[]>();
  const add = (variable: string, key: string, index: number) => {
    const name = variableName(variable);
    const list = keys.get(name) ?? [];
    list.push({ key: key.replace(/^['"]|['"]$/g, ''), index });
    keys.set(name, list);
  };
  for (const node of assignments) {
    const left = node.children.find((c) => c.type === 'left_assignment_expression');
    const right = node.children[node.children.length - 1];
    if (!left || !right) continue;
    const target = left.text.trim();
    const plain = /^\$([\w:]+|\{[^}]+\})$/.exec(target);
    if (plain && right.text.trim().startsWith('@{')) {
      const body = right.descendantsOfType('hash_literal_expression')[0]?.children.find((c) => c.type === 'hash_literal_body');
      for (const entry of body?.children.filter((c) => c.type === 'hash_entry') ?? []) {
        const key = entry.children.find((c) => c.type === 'key_expression');
        if (key) add(plain[1]!, key.text.trim(), key.startIndex);
      }
      continue;
    }
    const indexed = /^\$([\w:]+)\s*(?:\[\s*(['"]?)(\w+)\2\s*\]|\.(\w+))$/.exec(target);
    if (indexed) add(indexed[1]!, indexed[3] ?? indexed[4]!, left.startIndex);
  }
  for (const node of invocations) {
    const m = /^\$([\w:]+)\.Add\(\s*(['"])(\w+)\2/i.exec(node.text.trim());
    if (m) add(m[1]!, m[3]!, node.startIndex);
  }
  return keys;
}

// ---------------------------------------------------------------------------------------------
// Files and the command line
// ---------------------------------------------------------------------------------------------

const ROOT = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..');
const EXTENSIONS = /\.(ps1|psm1|psd1)$/i;

/** Every PowerShell file under agent/ and docs/, relative to the repository root, sorted. */
export function listPowerShellFiles(root = ROOT): string[] {
  const found: string[] = [];
  const visit = (dir: string) => {
    if (!fs.existsSync(path.join(root, dir))) return;
    for (const entry of fs.readdirSync(path.join(root, dir), { withFileTypes: true })) {
      const rel = path.posix.join(dir, entry.name);
      if (entry.isDirectory()) visit(rel);
      else if (EXTENSIONS.test(entry.name)) found.push(rel);
    }
  };
  visit('agent');
  visit('docs');
  return found.sort();
}

export async function lintFiles(files: string[], root = ROOT): Promise<PsProblem[]> {
  const problems: PsProblem[] = [];
  for (const file of files) problems.push(...(await lintPowerShell(fs.readFileSync(path.resolve(root, file)), file)));
  return problems;
}

export function formatProblem(p: PsProblem): string {
  return `${p.file}:${p.line}:${p.column}: ${p.rule}: ${p.message}`;
}

async function main(argv: string[]): Promise<number> {
  // Named files are relative to the working directory; the default set to the repository.
  const files = argv.length > 0 ? argv : listPowerShellFiles();
  if (files.length === 0) {
    console.error('ps-lint: no PowerShell files found');
    return 1;
  }
  const problems = await lintFiles(files, argv.length > 0 ? process.cwd() : ROOT);
  for (const p of problems) console.log(formatProblem(p));
  if (problems.length > 0) {
    console.log(
      `ps-lint: ${problems.length} problem(s) in ${new Set(problems.map((p) => p.file)).size} of ${files.length} file(s); Windows PowerShell 5.1 must run them`,
    );
    return 1;
  }
  console.log(`ps-lint: ${files.length} file(s) parse and use nothing Windows PowerShell 5.1 lacks`);
  return 0;
}

if (process.argv[1] && path.resolve(process.argv[1]) === fileURLToPath(import.meta.url)) {
  main(process.argv.slice(2)).then(
    (code) => process.exit(code),
    (error: unknown) => {
      console.error(error);
      process.exit(2);
    },
  );
}

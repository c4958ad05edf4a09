/** What a CLI command may touch, so tests run the real CLI in-process and read its output. */
export type CliIo = {
  stdout: (text: string) => void;
  stderr: (text: string) => void;
  env: NodeJS.ProcessEnv;
  cwd: string;
  /** True when stderr is a terminal: progress then redraws one line instead of printing many. */
  isTTY: boolean;
};

export const processIo = (): CliIo => ({
  stdout: (t) => process.stdout.write(t),
  stderr: (t) => process.stderr.write(t),
  env: process.env,
  cwd: process.cwd(),
  isTTY: Boolean(process.stderr.isTTY),
});

/** Exit codes. Scripts rely on them; they are listed in the README. */
export const EXIT = {
  ok: 0,
  /** import: some rows were rejected (the rest went in); other commands: a general failure */
  partial: 1,
  usage: 2,
  ambiguous: 3,
  notFound: 4,
  auditBroken: 5,
} as const;

export class CliExit extends Error {
  constructor(readonly code: number) {
    super(`exit ${code}`);
  }
}

export function table(rows: string[][], header: string[]): string {
  const all = [header, ...rows];
  const widths = header.map((_, i) => Math.max(...all.map((r) => (r[i] ?? '').length)));
  return all.map((r) => r.map((c, i) => (i === r.length - 1 ? c : (c ?? '').padEnd(widths[i]!))).join('  ')).join('\n') + '\n';
}

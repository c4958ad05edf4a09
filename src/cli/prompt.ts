import fs from 'node:fs';
import path from 'node:path';
import { badRequest } from '../lib/errors.js';
import type { CliIo } from './io.js';

/**
 * A password for a new account: from a file (scripts, CI) or a masked prompt (people). Never from
 * a command-line argument, which would sit in shell history and the process list.
 */
export async function readNewPassword(io: CliIo, file: string | undefined, what: string): Promise<string> {
  if (file) {
    let text: string;
    try {
      text = fs.readFileSync(path.resolve(io.cwd, file), 'utf8');
    } catch {
      throw badRequest(`Cannot read the password file ${file}.`);
    }
    return text.replace(/\r?\n$/, '');
  }
  if (!process.stdin.isTTY || io.env.CI) throw badRequest(`Give ${what} with --password-file FILE (no terminal to ask on).`);
  // Loaded only when someone is asked: scripts and --help never need it.
  const { isCancel, password } = await import('@clack/prompts');
  const first = await password({ message: `${what} (at least 12 characters)` });
  if (isCancel(first)) throw badRequest('Cancelled.');
  const again = await password({ message: 'Once more, to be sure' });
  if (isCancel(again)) throw badRequest('Cancelled.');
  if (first !== again) throw badRequest('The two passwords differ.');
  return first;
}

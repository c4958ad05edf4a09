#!/usr/bin/env node
import { runCli } from './cli/program.js';
import { processIo } from './cli/io.js';

const code = await runCli(process.argv.slice(2), processIo());
process.exitCode = code;

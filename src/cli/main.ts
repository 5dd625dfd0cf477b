#!/usr/bin/env node
// The blip-search command line: a thin commander program; each command lives in its own file and
// registers itself here (`npm run cli -- <command> --help`).
import { Command } from 'commander';
import { registerIngestCommand } from './ingest-command.js';

const program = new Command('blip-search').description('blip-search command line (talks to a server over its GraphQL API)');
registerIngestCommand(program);

await program.parseAsync(process.argv);

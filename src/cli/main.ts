#!/usr/bin/env node
// The blip-search command line: a thin commander program; each command lives in its own file and
// registers itself here (`npm run cli -- <command> --help`). `ingest` is a client of a server's
// GraphQL API; `keys` administers the database of this machine's configuration.
import { Command } from 'commander';
import { registerIngestCommand } from './client/ingest-command.js';
import { registerKeysCommand } from './admin/keys-command.js';

const program = new Command('blip-search').description('blip-search command line');
program.showHelpAfterError();
registerIngestCommand(program);
registerKeysCommand(program);

await program.parseAsync(process.argv);

import { Command } from 'commander';
import { registerKeysCommand } from './keys-command.js';

/**
 * `npm run cli -- <command>`: administration from the machine that holds the database. Only
 * registers the commands; each lives in its own src/cli/*-command.ts.
 */
const program = new Command('blip-search').description('blip-search administration (reads the same environment as the server)');
program.showHelpAfterError();
registerKeysCommand(program);

await program.parseAsync(process.argv);

import { execFileSync, spawnSync } from 'node:child_process';
import { cpSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { checkMessage } from '../../scripts/commit-msg.mjs';

const ok = 'search: keyset cursors for images';

describe('commit-msg check', () => {
  it('accepts `area: change` subjects of up to 72 characters, with or without a body', () => {
    expect(checkMessage(`${ok}\n`)).toEqual([]);
    expect(checkMessage('ml/runtime: one session per worker\n\nFigures and reasons go here.\n')).toEqual([]);
    expect(checkMessage('docs, tools: recipes\n')).toEqual([]);
    expect(checkMessage(`tools: ${'x'.repeat(72 - 'tools: '.length)}\n`)).toEqual([]);
    // what the editor shows below the message is not part of it
    expect(checkMessage(`${ok}\n# Please enter the commit message\n# ------------------------ >8 ------------------------\ndiff --git a b\n`)).toEqual([]);
    // subjects git writes itself
    expect(checkMessage("Merge branch 'tools44'\n")).toEqual([]);
    expect(checkMessage('fixup! search: keyset cursors\n')).toEqual([]);
  });

  it('EXPECTED FAILURE - a subject over 72 characters is refused, with its length', () => {
    const long = `tools: ${'x'.repeat(73 - 'tools: '.length)}`;
    expect(checkMessage(long)).toEqual([expect.stringMatching(/73 characters; at most 72/)]);
  });

  it('EXPECTED FAILURE - a subject without `area:` is refused', () => {
    for (const subject of ['Add keyset cursors', 'Search: keyset cursors', 'search:keyset cursors', ': keyset cursors', 'search keyset: cursors for images']) {
      expect(checkMessage(`${subject}\n`), subject).toEqual([expect.stringMatching(/not `area: change`/)]);
    }
  });

  it('EXPECTED FAILURE - an empty message, or a body that starts on the second line, is refused', () => {
    expect(checkMessage('\n# only comments\n')).toEqual(['the message is empty']);
    expect(checkMessage(`${ok}\nbody right below\n`)).toEqual([expect.stringMatching(/second line blank/)]);
  });
});

describe('npm run hooks:install', () => {
  const repo = mkdtempSync(join(tmpdir(), 'blip-hooks-'));
  afterAll(() => rmSync(repo, { recursive: true, force: true }));

  it('installs the check with one command; git then refuses bad subjects and keeps good ones', () => {
    // a fresh repository holding the check and this project's install script
    cpSync('.githooks', join(repo, '.githooks'), { recursive: true });
    cpSync('scripts/commit-msg.mjs', join(repo, 'scripts/commit-msg.mjs'));
    const install = (JSON.parse(readFileSync('package.json', 'utf8')) as { scripts: Record<string, string> }).scripts['hooks:install'];
    writeFileSync(join(repo, 'package.json'), JSON.stringify({ name: 'hooks-test', private: true, type: 'module', scripts: { 'hooks:install': install } }));
    const git = (...args: string[]) => spawnSync('git', ['-c', 'user.name=t', '-c', 'user.email=t@example.com', ...args], { cwd: repo, encoding: 'utf8' });
    expect(git('init', '-q').status).toBe(0);
    execFileSync('npm', ['run', '--silent', 'hooks:install'], { cwd: repo, stdio: 'pipe' });
    expect(git('config', 'core.hooksPath').stdout.trim()).toBe('.githooks');
    writeFileSync(join(repo, 'x.txt'), 'x');
    expect(git('add', '.').status).toBe(0);

    const refused = git('commit', '-q', '-m', 'Add the first file to this repository, with a subject that is far too long');
    expect(refused.status).not.toBe(0);
    expect(refused.stderr).toMatch(/commit message refused[\s\S]*at most 72[\s\S]*not `area: change`/);
    expect(git('rev-parse', '--verify', '-q', 'HEAD').status).not.toBe(0); // nothing committed

    expect(git('commit', '-q', '-m', 'repo: first file', '-m', 'A body with the reasons.').status).toBe(0);
    expect(git('log', '-1', '--format=%s').stdout.trim()).toBe('repo: first file');
  });
});

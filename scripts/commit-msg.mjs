#!/usr/bin/env node
/**
 * The commit-msg check (CONTRIBUTING.md, "Commits"): the subject is `area: change`, at most 72
 * characters, and a body, if any, is separated from it by a blank line. Git runs it through
 * .githooks/commit-msg once a developer has run `npm run hooks:install`; it can also be run by
 * hand on a message file: `node scripts/commit-msg.mjs .git/COMMIT_EDITMSG`.
 *
 * Written by hand rather than with commitlint: the rule is three lines of regular expressions,
 * and commitlint's conventional-commit types (feat, fix, ...) are not this project's areas.
 */
import { readFileSync } from 'node:fs';
import { pathToFileURL } from 'node:url';

export const MAX_SUBJECT = 72;
/** `area: change`: a lower-case area (letters, digits, `.`, `_`, `/`, `-`; several joined by `, `), then the change. */
const FORM = /^[a-z0-9][a-z0-9._/-]*(?:, [a-z0-9][a-z0-9._/-]*)*: \S/;
/** Subjects git writes itself. */
const GENERATED = /^(?:Merge |Revert "|fixup! |squash! |amend! )/;

/** The message as git will store it: comment lines and everything below a `git commit -v` scissors line dropped. */
export function cleanMessage(text) {
  const lines = text.replace(/\r\n/g, '\n').split('\n');
  const scissors = lines.findIndex((l) => /^# -+ >8 -+$/.test(l));
  return (scissors >= 0 ? lines.slice(0, scissors) : lines).filter((l) => !l.startsWith('#')).map((l) => l.trimEnd());
}

/** The problems of a commit message, empty when it follows the convention. */
export function checkMessage(text) {
  const lines = cleanMessage(text);
  while (lines.length && lines[0] === '') lines.shift();
  const subject = lines[0] ?? '';
  if (!subject) return ['the message is empty'];
  const problems = [];
  if ([...subject].length > MAX_SUBJECT) {
    problems.push(`the subject has ${[...subject].length} characters; at most ${MAX_SUBJECT} (figures and reasons go in the body)`);
  }
  if (!GENERATED.test(subject) && !FORM.test(subject)) {
    problems.push('the subject is not `area: change` (a lower-case area such as `search`, `ml/runtime` or `docs`, a colon, a space, the change)');
  }
  if (lines.length > 1 && lines[1] !== '') problems.push('leave the second line blank: the body starts on the third');
  return problems;
}

if (import.meta.url === pathToFileURL(process.argv[1] ?? '').href) {
  const file = process.argv[2];
  if (!file) {
    console.error('usage: node scripts/commit-msg.mjs <commit message file>');
    process.exit(2);
  }
  const problems = checkMessage(readFileSync(file, 'utf8'));
  if (problems.length) {
    const subject = cleanMessage(readFileSync(file, 'utf8')).find((l) => l !== '') ?? '';
    console.error(`commit message refused (CONTRIBUTING.md, "Commits"):\n  ${subject}\n${problems.map((p) => `  - ${p}`).join('\n')}`);
    process.exit(1);
  }
}

#!/usr/bin/env node
// `buf breaking` of proto/ against the previous commit (or the ref given as the first argument),
// read from the local git history: no network. Skipped, with a note, where there is no earlier
// commit with a proto/ folder (the first commit of a fresh history).
'use strict';
const { spawnSync } = require('node:child_process');
const path = require('node:path');

const root = path.resolve(__dirname, '..');
const ref = process.argv[2] ?? 'HEAD~1';
const git = (...args) => spawnSync('git', args, { cwd: root, encoding: 'utf8' });

if (git('rev-parse', '--verify', '--quiet', `${ref}^{commit}`).status !== 0) {
  console.log(`proto:breaking skipped: no commit ${ref} to compare with`);
  process.exit(0);
}
if (git('cat-file', '-e', `${ref}:proto/buf.yaml`).status !== 0) {
  console.log(`proto:breaking skipped: ${ref} has no proto/buf.yaml`);
  process.exit(0);
}
const against = `${path.join(root, '.git')}#ref=${git('rev-parse', ref).stdout.trim()},subdir=proto`;
const result = spawnSync(path.join(root, 'node_modules/.bin/buf'), ['breaking', 'proto', '--against', against], {
  cwd: root,
  stdio: 'inherit',
});
if (result.status !== 0) {
  console.error(
    `proto:breaking: the contracts break compatibility with ${ref} (see above); add fields and RPCs, never renumber, retype or remove them`,
  );
  process.exit(1);
}
console.log(`proto:breaking: no breaking change against ${ref}`);

#!/usr/bin/env node
// Generates the TypeScript contracts (ts-proto) and the descriptor set that server reflection
// serves, both from proto/ with the locally installed buf: one command, no network.
'use strict';
const { execFileSync } = require('node:child_process');
const fs = require('node:fs');
const path = require('node:path');

const root = path.resolve(__dirname, '..');
const out = path.join(root, 'libs/proto/src/gen');
const buf = path.join(root, 'node_modules/.bin/buf');

fs.rmSync(out, { recursive: true, force: true });
fs.mkdirSync(out, { recursive: true });
execFileSync(buf, ['generate', '--template', 'buf.gen.yaml'], { cwd: root, stdio: 'inherit' });
execFileSync(buf, ['build', 'proto', '--as-file-descriptor-set', '-o', path.join(out, 'descriptor-set.binpb')], {
  cwd: root,
  stdio: 'inherit',
});
console.log(`generated ${path.relative(root, out)}`);

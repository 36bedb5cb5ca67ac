#!/usr/bin/env node
// Runs the CLI from TypeScript sources in a development checkout (so it never runs a stale
// build), and from dist/ in an installed image where the sources or tsx are absent.
'use strict';
const { spawnSync } = require('node:child_process');
const { existsSync } = require('node:fs');
const path = require('node:path');

const source = path.join(__dirname, '..', 'src', 'main.ts');
let tsx;
try {
  tsx = require.resolve('tsx');
} catch {
  tsx = undefined;
}
if (existsSync(source) && tsx && !process.env.MEDSYN_CLI_DIST) {
  const args = ['--conditions=medsyn-source', '--import', 'tsx', source, ...process.argv.slice(2)];
  const result = spawnSync(process.execPath, args, { stdio: 'inherit' });
  process.exit(result.status ?? 1);
} else {
  require('../dist/main.js');
}

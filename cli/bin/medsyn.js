#!/usr/bin/env node
// Runs the CLI from TypeScript sources in a development checkout (so it never runs a stale
// build), and from dist/ in an installed image where the sources or tsx are absent.
'use strict';
const { spawn } = require('node:child_process');
const { existsSync } = require('node:fs');
const { constants } = require('node:os');
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
  const child = spawn(process.execPath, args, { stdio: 'inherit' });
  // `kill <pid>` of this wrapper reaches the CLI (Ctrl-C reaches both through the process group).
  for (const signal of ['SIGTERM', 'SIGHUP']) process.on(signal, () => child.kill(signal));
  process.on('SIGINT', () => {});
  child.on('exit', (code, signal) => process.exit(code ?? 128 + (constants.signals[signal] ?? 1)));
} else {
  require('../dist/main.js').runCli();
}

#!/usr/bin/env node
// Starts the four services locally on the embedded default (filesystem store, CPU) from their
// built entry files, prints where each listens, and stops them all on Ctrl-C / SIGTERM.
'use strict';
const { spawn } = require('node:child_process');
const path = require('node:path');
const readline = require('node:readline');

const root = path.resolve(__dirname, '..');
const SERVICES = ['anonymizer', 'synthesizer', 'pretrainer', 'evaluator'];
const store = process.env.MEDSYN_STORE ?? `file://${path.join(root, '.medsyn')}`;

const children = SERVICES.map((name) => {
  const child = spawn(process.execPath, [path.join(root, 'services', name, 'dist', 'main.js')], {
    env: { ...process.env, MEDSYN_STORE: store },
    stdio: ['ignore', 'pipe', 'inherit'],
  });
  readline.createInterface({ input: child.stdout }).on('line', (line) => {
    let entry;
    try {
      entry = JSON.parse(line);
    } catch {
      return console.log(`[${name}] ${line}`);
    }
    if (entry.msg === 'ready') {
      console.log(
        `${name.padEnd(12)} gRPC ${entry.grpcHost === '0.0.0.0' || !entry.grpcHost ? '127.0.0.1' : entry.grpcHost}:${entry.grpcPort}   metrics http://127.0.0.1:${entry.metricsPort}/metrics`,
      );
    } else if (entry.level >= 40) {
      console.log(`[${name}] ${entry.msg}`);
    }
  });
  child.on('exit', (code) => {
    if (!stopping) {
      console.error(`${name} exited with ${code}; stopping the others`);
      stop(code || 1);
    }
  });
  return child;
});

console.log(`medsyn services starting (store ${store}); Ctrl-C stops them.`);
// The services listen on loopback unless TLS or a bearer token is configured (docs/configuration.md).
if (!process.env.GRPC_AUTH_TOKEN && !process.env.GRPC_AUTH_TOKEN_FILE && !process.env.GRPC_TLS_CERT) {
  console.log('gRPC on 127.0.0.1 only (no TLS or token set); see docs/configuration.md to open it up.');
}
let stopping = false;
function stop(code = 0) {
  stopping = true;
  let left = children.length;
  for (const child of children) {
    if (child.exitCode !== null) left--;
    else child.once('exit', () => --left === 0 && process.exit(code)).kill('SIGTERM');
  }
  if (left === 0) process.exit(code);
}
process.on('SIGINT', () => stop(0));
process.on('SIGTERM', () => stop(0));

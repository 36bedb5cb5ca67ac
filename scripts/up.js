#!/usr/bin/env node
// Starts the four services locally on the embedded default (filesystem store, CPU) from their
// built entry files, prints where each listens once its health check says SERVING, and stops them
// all on Ctrl-C / SIGTERM. `npm run up` builds first, this launcher library included.
'use strict';
const path = require('node:path');
const { serviceNodeArgs, startServiceProcesses } = require('@medsyn/local-services');

const root = path.resolve(__dirname, '..');
// The services' own default ports (docs/configuration.md), given explicitly: the launcher checks
// each one's health there.
const PORTS = {
  anonymizer: { grpc: 50051, metrics: 9461 },
  synthesizer: { grpc: 50052, metrics: 9462 },
  pretrainer: { grpc: 50053, metrics: 9463 },
  evaluator: { grpc: 50054, metrics: 9464 },
};
const store = process.env.MEDSYN_STORE ?? `file://${path.join(root, '.medsyn')}`;

/** Its warnings and errors, and anything that is not a log line; the rest stays quiet. */
const printer = (name) => (line) => {
  let entry;
  try {
    entry = JSON.parse(line);
  } catch {
    return console.log(`[${name}] ${line}`);
  }
  if (entry.level >= 40) console.log(`[${name}] ${entry.msg}`);
};

let services = [];
let stopping = false;
async function stop(code) {
  stopping = true;
  await Promise.all(services.map((service) => service.stop()));
  process.exit(code);
}

console.log(`medsyn services starting (store ${store}); Ctrl-C stops them.`);
// The services listen on loopback unless TLS or a bearer token is configured (docs/configuration.md).
if (!process.env.GRPC_AUTH_TOKEN && !process.env.GRPC_AUTH_TOKEN_FILE && !process.env.GRPC_TLS_CERT) {
  console.log('gRPC on 127.0.0.1 only (no TLS or token set); see docs/configuration.md to open it up.');
}
process.on('SIGINT', () => stop(0));
process.on('SIGTERM', () => stop(0));
startServiceProcesses(
  Object.entries(PORTS).map(([name, ports]) => ({
    name,
    args: serviceNodeArgs(name, 'dist'),
    env: { ...process.env, MEDSYN_STORE: store },
    grpcPort: ports.grpc,
    metricsPort: ports.metrics,
    onLine: printer(name),
  })),
).then(
  (started) => {
    services = started;
    for (const service of services) {
      console.log(
        `${service.name.padEnd(12)} gRPC ${service.target}   metrics http://127.0.0.1:${service.metricsPort}/metrics`,
      );
      service.exited.then((how) => {
        if (stopping) return;
        console.error(`${service.name} exited (${how}); stopping the others`);
        stop(typeof how === 'number' && how !== 0 ? how : 1);
      });
    }
  },
  (error) => {
    console.error(error.message);
    process.exit(1);
  },
);

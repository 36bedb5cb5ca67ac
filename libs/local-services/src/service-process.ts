import { spawn, type ChildProcess } from 'node:child_process';
import * as fs from 'node:fs';
import * as net from 'node:net';
import * as path from 'node:path';
import * as readline from 'node:readline';
import type * as grpc from '@grpc/grpc-js';
import { healthCheck } from './health';

/** The monorepo's root folder. */
export const repoRoot = path.resolve(__dirname, '../../..');

/** Node arguments that run a workspace's TypeScript sources directly (tsx, "medsyn-source" exports). */
export function tsxLoaderArgs(): string[] {
  return ['--conditions=medsyn-source', '--import', require.resolve('tsx')];
}

/**
 * Node arguments that run services/<name>: its TypeScript sources through tsx (a checkout, the
 * tests), or its build (`npx nx build <name>`).
 */
export function serviceNodeArgs(name: string, from: 'source' | 'dist'): string[] {
  const main = path.join(repoRoot, 'services', name, ...(from === 'source' ? ['src', 'main.ts'] : ['dist', 'main.js']));
  if (!fs.existsSync(main))
    throw new Error(
      `cannot start the ${name}: no ${main}${from === 'dist' ? ` (build it: npx nx build ${name})` : ''}`,
    );
  return from === 'source' ? [...tsxLoaderArgs(), main] : [main];
}

/** A TCP port nothing listens on at the moment (the kernel's pick on loopback). */
export function freePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const server = net.createServer().listen(0, '127.0.0.1', () => {
      const { port } = server.address() as net.AddressInfo;
      server.close(() => resolve(port));
    });
    server.on('error', reject);
  });
}

export interface ServiceProcessOptions {
  /** Names it in errors: "the anonymizer exited ...". */
  name: string;
  /** The program it runs (default: this node, as for a medsyn service; e.g. python3 for another implementation). */
  command?: string;
  /** Its arguments: serviceNodeArgs(name, from) for a medsyn service. */
  args: string[];
  /** Its working folder (default: ours). */
  cwd?: string;
  /** Its whole environment; GRPC_PORT and METRICS_PORT are set from the ports below. */
  env: NodeJS.ProcessEnv;
  /** Default: a free port. */
  grpcPort?: number;
  /** Default: a free port. */
  metricsPort?: number;
  /**
   * Its stdout and stderr are appended to this file, which it writes itself, so it keeps logging
   * (and stops cleanly) after we are gone. Without it they come to us: onLine gets each line.
   */
  logFile?: string;
  onLine?: (line: string) => void;
  /** How to reach its health service: plaintext unless env turns TLS on (then its CA; a client certificate for mutual TLS). */
  credentials?: grpc.ChannelCredentials;
  /** Give up waiting for SERVING after this long (default 120 s: model loading on a busy CPU). */
  readyTimeoutMs?: number;
}

/** A medsyn service running as a child process, its health SERVING. */
export interface ServiceProcess {
  readonly name: string;
  readonly child: ChildProcess;
  /** host:port a client on this machine dials. */
  readonly target: string;
  readonly grpcPort: number;
  readonly metricsPort: number;
  /** Resolves with its exit code, or the signal's name, once it ends. */
  readonly exited: Promise<number | string>;
  /** SIGTERM (it drains and exits 0), then SIGKILL after graceMs; resolves with how it ended. */
  stop(graceMs?: number): Promise<number | string>;
  /** SIGKILL at once, as a crashed pod dies (no drain, no shutdown hook); resolves with how it ended. */
  kill(): Promise<number | string>;
}

/**
 * Longer than a service's own drain (SHUTDOWN_GRACE_SECONDS, 20 s by default), so SIGKILL only
 * ends one that is stuck.
 */
const STOP_GRACE_MS = 30_000;
/** Lines of its output an error quotes: enough for the fatal line and what led to it. */
const TAIL_LINES = 20;

/**
 * Starts a service as a child process on loopback ports and resolves once its standard health
 * check says SERVING. It lives no longer than we do: its stdin is a pipe from us, and it shuts
 * down when that ends (MEDSYN_EXIT_WITH_PARENT), even if we are killed. If it exits first or is
 * not ready in time, it is killed and the error names it and quotes the tail of its output (a
 * service logs ids and counts, never report text).
 */
export async function startServiceProcess(options: ServiceProcessOptions): Promise<ServiceProcess> {
  const grpcPort = options.grpcPort ?? (await freePort());
  const metricsPort = options.metricsPort ?? (await freePort());
  const log = options.logFile ? fs.openSync(options.logFile, 'a') : 'pipe';
  const logStart = options.logFile ? fs.fstatSync(log as number).size : 0;
  const child = spawn(options.command ?? process.execPath, options.args, {
    cwd: options.cwd,
    env: {
      ...options.env,
      GRPC_PORT: String(grpcPort),
      METRICS_PORT: String(metricsPort),
      MEDSYN_EXIT_WITH_PARENT: '1',
    },
    stdio: ['pipe', log, log],
  });
  if (typeof log === 'number') fs.closeSync(log);

  const recent: string[] = [];
  for (const stream of [child.stdout, child.stderr]) {
    if (!stream) continue;
    readline.createInterface({ input: stream }).on('line', (line) => {
      recent.push(line);
      if (recent.length > TAIL_LINES) recent.shift();
      options.onLine?.(line);
    });
  }
  const tail = () =>
    (options.logFile ? readFrom(options.logFile, logStart).split('\n') : recent).slice(-TAIL_LINES).join('\n').trim();

  // 'close', not 'exit': by then we have read all it wrote, for the tail an error quotes.
  const exited = new Promise<number | string>((resolve) => {
    child.once('close', (code, signal) => resolve(code ?? signal ?? -1));
    child.once('error', (error) => resolve(`not started: ${error.message}`));
  });
  let ended: number | string | undefined;
  void exited.then((how) => (ended = how));
  const host = options.env.GRPC_HOST;
  const service: ServiceProcess = {
    name: options.name,
    child,
    target: `${!host || host === '0.0.0.0' || host === '::' ? '127.0.0.1' : host}:${grpcPort}`,
    grpcPort,
    metricsPort,
    exited,
    async stop(graceMs = STOP_GRACE_MS) {
      if (ended === undefined) {
        child.kill('SIGTERM');
        const timer = setTimeout(() => child.kill('SIGKILL'), graceMs);
        await exited;
        clearTimeout(timer);
      }
      return exited;
    },
    kill() {
      if (ended === undefined) child.kill('SIGKILL');
      return exited;
    },
  };

  const timeoutMs = options.readyTimeoutMs ?? 120_000;
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    if ((await healthCheck(service.target, '', options.credentials).catch(() => undefined)) === 'SERVING')
      return service;
    const failure =
      ended !== undefined
        ? `the ${options.name} exited (${typeof ended === 'number' ? `code ${ended}` : ended}) before it was ready`
        : Date.now() > deadline
          ? `the ${options.name} was not SERVING within ${timeoutMs / 1000} s`
          : undefined;
    if (failure) {
      await service.kill();
      const output = tail();
      throw new Error(
        `${failure}${options.logFile ? ` (log: ${options.logFile})` : ''}${output ? `:\n${output}` : ''}`,
      );
    }
    await new Promise((resolve) => setTimeout(resolve, 100));
  }
}

/**
 * Starts several services at once; if one fails, stops those that started and rethrows its error
 * (with the others' failures, if any).
 */
export async function startServiceProcesses(list: readonly ServiceProcessOptions[]): Promise<ServiceProcess[]> {
  const results = await Promise.allSettled(list.map(startServiceProcess));
  const failures = results.filter((r) => r.status === 'rejected').map((r) => (r.reason as Error).message);
  const started = results.filter((r) => r.status === 'fulfilled').map((r) => r.value);
  if (failures.length) {
    await Promise.all(started.map((s) => s.stop()));
    throw new Error(failures.join('\n\n'));
  }
  return started;
}

function readFrom(file: string, offset: number): string {
  return fs.readFileSync(file).subarray(offset).toString('utf8');
}

import { spawn, type ChildProcess } from 'node:child_process';

export interface StartProcessOptions {
  args?: string[];
  env?: NodeJS.ProcessEnv;
  cwd?: string;
  /** Resolve once a line of stdout or stderr matches (default: at spawn). */
  readyWhen?: RegExp;
  /** Give up waiting for readiness after this many ms. */
  readyTimeoutMs?: number;
}

/** A child process whose output is kept for assertions and whose exit can be awaited. */
export interface ManagedProcess {
  readonly child: ChildProcess;
  /** Everything written to stdout and stderr so far. */
  output(): string;
  /** The first match of readyWhen. */
  readonly readyMatch: RegExpMatchArray | undefined;
  /** Resolves with the exit code (or the signal name) once the process ends. */
  readonly exited: Promise<number | string>;
  /** SIGTERM, then SIGKILL after graceMs; resolves on exit. */
  stop(graceMs?: number): Promise<number | string>;
}

/**
 * Starts command and waits for it to be ready; rejects with its output if it exits first. For a
 * program that is not a service, or a test of a process's own output and exit code: a service
 * starts through @medsyn/local-services, ready when its health check says SERVING.
 */
export async function startProcess(command: string, options: StartProcessOptions = {}): Promise<ManagedProcess> {
  const child = spawn(command, options.args ?? [], {
    cwd: options.cwd,
    env: { ...process.env, ...options.env },
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  let output = '';
  let readyMatch: RegExpMatchArray | undefined;
  const exited = new Promise<number | string>((resolve) =>
    child.on('exit', (code, signal) => resolve(code ?? signal ?? -1)),
  );
  const ready = new Promise<void>((resolve, reject) => {
    const onData = (chunk: Buffer) => {
      output += chunk.toString('utf8');
      if (!readyMatch && options.readyWhen) {
        const match = output.match(options.readyWhen);
        if (match) {
          readyMatch = match;
          resolve();
        }
      }
    };
    child.stdout!.on('data', onData);
    child.stderr!.on('data', onData);
    child.on('error', reject);
    if (!options.readyWhen) resolve();
    void exited.then((code) => reject(new Error(`${command} exited (${code}) before it was ready:\n${output}`)));
    const timer = setTimeout(
      () => reject(new Error(`${command} not ready after ${options.readyTimeoutMs ?? 20000} ms:\n${output}`)),
      options.readyTimeoutMs ?? 20000,
    );
    timer.unref();
  });
  const managed: ManagedProcess = {
    child,
    output: () => output,
    get readyMatch() {
      return readyMatch;
    },
    exited,
    async stop(graceMs = 5000) {
      if (child.exitCode === null && child.signalCode === null) {
        child.kill('SIGTERM');
        const timer = setTimeout(() => child.kill('SIGKILL'), graceMs);
        await exited;
        clearTimeout(timer);
      }
      return exited;
    },
  };
  try {
    await ready;
  } catch (error) {
    child.kill('SIGKILL');
    throw error;
  }
  return managed;
}

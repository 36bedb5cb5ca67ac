import { Command, CommanderError } from 'commander';
import * as fs from 'node:fs';
import * as path from 'node:path';
import { commands } from './commands';

/** The CLI's version, from its package.json (one level above both src/ and dist/). */
function packageVersion(): string {
  return (JSON.parse(fs.readFileSync(path.join(__dirname, '..', 'package.json'), 'utf8')) as { version: string })
    .version;
}

/** Builds the `medsyn` program; each subcommand lives in its own file under ./commands. */
export function buildProgram(): Command {
  const program = new Command('medsyn')
    .description('Vision-language pre-training on synthetic chest X-rays from anonymized reports.')
    .showHelpAfterError()
    .version(packageVersion())
    .exitOverride();
  for (const register of commands) register(program);
  return program;
}

/** Runs the CLI; usage errors exit 2, failures exit 1 with their message (never a stack of PHI). */
export async function main(argv: string[] = process.argv): Promise<number> {
  try {
    await buildProgram().parseAsync(argv);
    return 0;
  } catch (error) {
    if (error instanceof CommanderError) return error.exitCode === 0 ? 0 : 2;
    process.stderr.write(`medsyn: ${error instanceof Error ? error.message : String(error)}\n`);
    return 1;
  }
}

/** Runs the CLI on this process's arguments and sets its exit code (bin/medsyn.js calls this from dist/). */
export function runCli(): void {
  main().then((code) => {
    // A command may have set its own exit code (e.g. 2 for an invalid config) and returned normally.
    if (code !== 0 || process.exitCode === undefined) process.exitCode = code;
  });
}

if (require.main === module) runCli();

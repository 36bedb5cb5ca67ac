import { Command, CommanderError } from 'commander';
import { commands } from './commands';

/** Builds the `medsyn` program; each subcommand lives in its own file under ./commands. */
export function buildProgram(): Command {
  const program = new Command('medsyn')
    .description('Vision-language pre-training on synthetic chest X-rays from anonymized reports.')
    .showHelpAfterError()
    .version(require('../package.json').version as string)
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

if (require.main === module) {
  main().then((code) => {
    process.exitCode = code;
  });
}

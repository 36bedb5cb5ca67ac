// The TypeScript side of this service's cross-implementation tests: what libs/vlp,
// libs/artifact-store and libs/encoder-bundle make of the same inputs, printed as JSON.
//   node --conditions=medsyn-source --import tsx reference.ts COMMAND ARGS...
//   parse-config CASES_JSON                 each case -> { config, sha256 } or { error: { field, message } }
//   store-digest STORE_URI KEY [folder]     { sha256 (stat), digest (storedDigest) }
import { readFileSync } from 'node:fs';
import { openStore, storedDigest } from '@medsyn/artifact-store';
import { PretrainingConfigError, configDigest, parsePretrainingConfig } from '@medsyn/vlp';

type Command = (args: string[]) => Promise<unknown>;

const COMMANDS: Record<string, Command> = {
  'parse-config': async ([file]) =>
    (JSON.parse(readFileSync(file!, 'utf8')) as unknown[]).map((value) => {
      try {
        const config = parsePretrainingConfig(value);
        return { config, sha256: configDigest(config).sha256 };
      } catch (error) {
        if (error instanceof PretrainingConfigError) return { error: { field: error.field, message: error.message } };
        throw error;
      }
    }),
  'store-digest': async ([uri, key, folder]) => {
    const store = openStore(uri!);
    return { sha256: (await store.stat(key!))?.sha256 ?? null, digest: await storedDigest(store, key!, folder === 'folder') };
  },
};

async function main(): Promise<void> {
  const [command, ...args] = process.argv.slice(2);
  const run = COMMANDS[command ?? ''];
  if (!run) throw new Error(`unknown command ${command}; one of ${Object.keys(COMMANDS).join(', ')}`);
  process.stdout.write(`${JSON.stringify(await run(args))}\n`);
}

main().catch((error: Error) => {
  process.stderr.write(`${error.stack}\n`);
  process.exit(1);
});

import * as path from 'node:path';

/** The monorepo's root folder. */
export const repoRoot = path.resolve(__dirname, '../../..');

/** Node arguments that run a workspace's TypeScript sources directly (tsx, "medsyn-source" exports). */
export function tsxLoaderArgs(): string[] {
  return ['--conditions=medsyn-source', '--import', require.resolve('tsx')];
}

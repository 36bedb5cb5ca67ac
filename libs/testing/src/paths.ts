import * as fs from 'node:fs';
import * as path from 'node:path';
import { repoRoot } from '@medsyn/local-services';

/**
 * The project's real public datasets (see its README): `../shared/data` next to the repository,
 * or MEDSYN_SHARED_DATA. They are not in the repository (licences, size).
 */
export const sharedDataDir = process.env.MEDSYN_SHARED_DATA ?? path.resolve(repoRoot, '..', 'shared', 'data');

/** Whether this machine has the shared datasets. */
export const hasSharedData = fs.existsSync(path.join(sharedDataDir, 'covid-cxr', 'metadata.csv'));

const skipNotice = `needs the shared datasets in ${sharedDataDir} (set MEDSYN_SHARED_DATA)`;

/** describe() for tests on the shared datasets: on a machine without them the block is skipped, visibly, and its body never runs. */
export function describeWithSharedData(name: string, body: () => void): void {
  if (hasSharedData) describe(name, body);
  else describe.skip(name, () => it(skipNotice, () => undefined));
}

/** it() for one test on the shared datasets (skipped, visibly, without them). */
export function itWithSharedData(name: string, test: () => unknown, timeout?: number): void {
  if (hasSharedData) it(name, test as jest.ProvidesCallback, timeout);
  else it.skip(`${name} (${skipNotice})`, () => undefined);
}

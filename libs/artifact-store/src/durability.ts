import { execFile } from 'node:child_process';
import * as fsp from 'node:fs/promises';
import { promisify } from 'node:util';

const run = promisify(execFile);

/**
 * Whether `sync --file-system` (coreutils >= 8.24) is here: it is syncfs(2), which Node does not
 * expose. Asked once per process; BSD and macOS `sync` take no such option.
 */
let syncfsCommand: Promise<boolean> | undefined;
function hasSyncfs(): Promise<boolean> {
  syncfsCommand ??= run('sync', ['--help'])
    .then(({ stdout }) => stdout.includes('--file-system'))
    .catch(() => false);
  return syncfsCommand;
}

/**
 * Makes the data and metadata of `files` durable, all of them on the filesystem holding `dir`.
 * One syncfs(2) flushes every dirty page of that filesystem with one device cache flush, where an
 * fsync(2) per file pays one journal commit and one flush each (about 4 ms apiece on the virtio
 * disk the bench ran on: 4 s for a thousand images). Without syncfs, each file is fsynced.
 * syncfs reports writeback errors since Linux 5.8; `sync` exits non-zero on them.
 */
export async function syncFiles(dir: string, files: readonly string[]): Promise<void> {
  if (files.length === 0) return;
  if (files.length > 1 && (await hasSyncfs())) {
    await run('sync', ['--file-system', dir]);
    return;
  }
  await Promise.all(files.map(fsyncPath));
}

/** fsync(2) of each folder: the renames into it (and the folders created in it) are on disk once it returns. */
export async function syncDirectories(dirs: Iterable<string>): Promise<void> {
  await Promise.all([...dirs].map(fsyncPath));
}

async function fsyncPath(file: string): Promise<void> {
  const handle = await fsp.open(file, 'r');
  try {
    await handle.sync();
  } finally {
    await handle.close();
  }
}

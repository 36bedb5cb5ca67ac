import { randomUUID } from 'node:crypto';
import { existsSync, mkdirSync, renameSync, rmSync, writeFileSync } from 'node:fs';
import * as path from 'node:path';
import { setImmediate as nextTurn } from 'node:timers/promises';
import { syncDirectories, syncFiles } from './durability';
import { sidecarOf, writeNewFileUnsynced, type Digest } from './file-writes';
import type { ArtifactBatch, ArtifactRef, BatchOptions, ObjectBody, PutOptions } from './types';

/** Where a filesystem store keeps what: the batch writes the same files as its put. */
export interface FileLayout {
  root: string;
  pathOf(key: string): string;
  sidecarPath(key: string): string;
  refOf(key: string, digest: Digest, options: PutOptions): ArtifactRef;
}

/** A put written under `.tmp/`, object and sidecar, waiting for the commit. */
interface StagedPut {
  key: string;
  /** Order of the put() call: of two puts of one key, the later one is published. */
  order: number;
  tmp: string;
  /** Absent when the batch records no digests. */
  sidecarTmp?: string;
}

/** Renames done between two turns of the event loop while a batch is published. */
const RENAMES_PER_TURN = 128;

/**
 * The filesystem store's batch. Crash safety as its put's: each object's bytes (and its sidecar's)
 * are durable before it is renamed into place, so after a crash a key holds its previous object or
 * the whole new one; the renames are durable (their folders fsynced) before commit resolves. What a
 * crash interrupts stays in `.tmp/`, as with put.
 */
export class FileStoreBatch implements ArtifactBatch {
  private readonly staged: StagedPut[] = [];
  private readonly inFlight = new Set<Promise<unknown>>();
  private calls = 0;
  private open = true;

  constructor(
    private readonly options: BatchOptions,
    private readonly layout: FileLayout,
  ) {
    mkdirSync(path.join(layout.root, '.tmp'), { recursive: true });
  }

  async put(key: string, body: ObjectBody, options: PutOptions = {}): Promise<ArtifactRef> {
    if (!this.open) throw new Error(`batch put ${key}: the batch was already committed or aborted`);
    const order = this.calls++;
    this.layout.pathOf(key); // a bad key fails here, before anything is written
    const staging = this.stage(key, body, options, order);
    this.inFlight.add(staging);
    try {
      return await staging;
    } finally {
      this.inFlight.delete(staging);
    }
  }

  /**
   * One syncfs for every staged file, then each sidecar and its object renamed into place (the
   * order put uses), then an fsync of every folder a rename went into or created.
   */
  async commit(): Promise<void> {
    await this.close();
    const latest = new Map<string, StagedPut>();
    for (const put of this.staged.sort((a, b) => a.order - b.order)) latest.set(put.key, put);
    const puts = [...latest.values()];
    removeTemporary(this.staged.splice(0).filter((put) => latest.get(put.key) !== put));
    try {
      await syncFiles(
        this.layout.root,
        puts.flatMap((s) => (s.sidecarTmp ? [s.tmp, s.sidecarTmp] : [s.tmp])),
      );
    } catch (error) {
      removeTemporary(puts);
      throw error;
    }
    const folders = new Set<string>();
    const made = new Set<string>();
    const makeFolder = (dir: string) => {
      if (made.has(dir)) return;
      const first = mkdirSync(dir, { recursive: true });
      // A new folder's own entry is in its parent: each level from the first one created is synced.
      for (let d = dir; first && d.length >= first.length; d = path.dirname(d)) folders.add(path.dirname(d));
      made.add(dir);
    };
    // Where no sidecar folder is, no earlier sidecar is to remove: one check per folder, not an rm per object.
    const sidecarFolders = new Map<string, boolean>();
    const hasSidecarFolder = (dir: string) => {
      if (!sidecarFolders.has(dir)) sidecarFolders.set(dir, existsSync(dir));
      return sidecarFolders.get(dir)!;
    };
    for (const [i, put] of puts.entries()) {
      const sidecar = this.layout.sidecarPath(put.key);
      const target = this.layout.pathOf(put.key);
      if (put.sidecarTmp) {
        makeFolder(path.dirname(sidecar));
        renameSync(put.sidecarTmp, sidecar);
        folders.add(path.dirname(sidecar));
      } else if (hasSidecarFolder(path.dirname(sidecar))) {
        // An earlier object's sidecar must not vouch for the new bytes (its size may match).
        rmSync(sidecar, { force: true });
      }
      makeFolder(path.dirname(target));
      renameSync(put.tmp, target);
      folders.add(path.dirname(target));
      if ((i + 1) % RENAMES_PER_TURN === 0) await nextTurn();
    }
    await syncDirectories(folders);
  }

  async abort(): Promise<void> {
    await this.close();
    removeTemporary(this.staged.splice(0));
  }

  private async close(): Promise<void> {
    this.open = false;
    await Promise.allSettled([...this.inFlight]);
  }

  /** The object and its sidecar (unless the batch records no digests) as temporary files, neither synced yet. */
  private async stage(key: string, body: ObjectBody, options: PutOptions, order: number): Promise<ArtifactRef> {
    const tmp = path.join(this.layout.root, '.tmp', randomUUID());
    const put: StagedPut = { key, order, tmp };
    try {
      const ref = this.layout.refOf(key, await writeNewFileUnsynced(put.tmp, body), options);
      if (this.options.recordDigests !== false) {
        put.sidecarTmp = `${tmp}.json`;
        writeFileSync(put.sidecarTmp, JSON.stringify(sidecarOf(ref)), { flag: 'wx' });
      }
      this.staged.push(put);
      return ref;
    } catch (error) {
      removeTemporary([put]);
      throw error;
    }
  }
}

function removeTemporary(puts: readonly StagedPut[]): void {
  for (const put of puts) {
    rmSync(put.tmp, { force: true });
    if (put.sidecarTmp) rmSync(put.sidecarTmp, { force: true });
  }
}

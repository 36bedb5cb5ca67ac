import { posix } from 'node:path';
import {
  ArtifactNotFoundError,
  InvalidKeyError,
  getBuffer,
  keyOf,
  readJsonl,
  sha256Hex,
  type ArtifactStore,
} from '@medsyn/artifact-store';
import { findPngText, sniffImageFormat } from '@medsyn/imaging';
import {
  DATASET_FORMAT,
  UNSPECIFIED,
  checkCardFacts,
  renderReadme,
  type CardFacts,
  type DatasetCard,
  type ShardEntry,
} from './card';
import { DatasetExportError } from './errors';
import { readPairManifests, type PairLine, type PairRecord } from './pair-manifest';
import { TarPacker } from './tar';

export interface ExportDatasetOptions {
  /** Where the pair manifests, their images and the reports are. */
  store: ArtifactStore;
  /** Pair manifests (keys or store URIs): the synthesizer's `pairs-shard-*.jsonl` or any other pair manifest. */
  pairs: string[];
  /** The anonymizer's `anonymized.jsonl` (key or URI): joined by the pairs' `id` so each `.txt` is the full anonymized report. */
  reports?: string;
  /** Where the bundle goes (a local folder is a FileArtifactStore). */
  out: ArtifactStore;
  /** Folder inside `out` ("" or ending in "/"). */
  outPrefix?: string;
  /** Samples per tar shard (default 1000). */
  shardSize?: number;
  card: CardFacts;
  onProgress?: (progress: { samples: number; total: number }) => void;
}

export interface ExportDatasetResult {
  samples: number;
  /** Keys in `out` (with the prefix). */
  shards: { key: string; sha256: string; samples: number }[];
  cardKey: string;
  readmeKey: string;
  card: DatasetCard;
}

/** What `<key>.json` holds: the sample's provenance, no store paths. */
export interface SampleMetadata {
  key: string;
  /** The report id (the sample key when the manifest has none). */
  id: string;
  image: string;
  image_sha256: string;
  text_source: 'anonymized_report' | 'prompt';
  prompt?: string;
  seed?: string;
  generator: { name: string; sha256?: string };
  labels?: Record<string, unknown>;
  prompt_truncated?: boolean;
}

/** A sample as it goes into a shard. */
interface Sample {
  key: string;
  record: PairRecord;
  line: PairLine;
}

export const DEFAULT_SHARD_SIZE = 1000;
/** Images read ahead of the shard writer. */
const CONCURRENT_READS = 8;
/** Entries carry a fixed time (the epoch), so the same inputs give byte-identical shards (and digests). */
const ENTRY_MTIME = 0;

/** A WebDataset key: WebDataset splits a member's name at its first dot, so keys have none. */
export function sampleKey(imageKey: string, used: Set<string>): string {
  const base =
    posix
      .basename(imageKey)
      .replace(/\.[^.]*$/, '')
      .replace(/[^A-Za-z0-9_-]/g, '_') || 'sample';
  let key = base;
  for (let n = 2; used.has(key); n++) key = `${base}_${n}`;
  used.add(key);
  return key;
}

/** The image's extension in a bundle from its bytes; only the formats the generators write travel in a bundle. */
export function imageExtension(bytes: Uint8Array): 'png' | 'jpg' | undefined {
  const format = sniffImageFormat(bytes);
  return format === 'png' ? 'png' : format === 'jpeg' ? 'jpg' : undefined;
}

/** The `medsyn:model_sha256` the synthesizer writes into each PNG's tEXt, if any. */
function pngModelDigest(png: Buffer): string | undefined {
  const digest = findPngText(png, 'medsyn:model_sha256');
  return digest && /^[0-9a-f]{64}$/.test(digest) ? digest : undefined;
}

function normalizePrefix(prefix: string | undefined, field: string): string {
  const p = (prefix ?? '').replace(/^\/+/, '');
  if (p !== '' && !p.endsWith('/')) throw new DatasetExportError(field, 'must be empty or end in "/"');
  return p;
}

/** The store key of a manifest option, or an error naming the option. */
async function manifestKey(store: ArtifactStore, uri: string, field: string): Promise<{ key: string; sha256: string }> {
  let key: string;
  try {
    key = keyOf(store, uri);
  } catch (error) {
    if (error instanceof InvalidKeyError)
      throw new DatasetExportError(field, `${uri} is not in the artifact store (${store.rootUri})`);
    throw error;
  }
  const ref = await store.stat(key);
  if (!ref) throw new DatasetExportError(field, `${uri} not found in ${store.rootUri}`);
  return { key, sha256: ref.sha256 };
}

/** The anonymized reports the samples need, by id; other lines are not kept in memory. */
async function loadReports(store: ArtifactStore, key: string, ids: Set<string>): Promise<Map<string, Report>> {
  const reports = new Map<string, Report>();
  for await (const line of readJsonl<Record<string, unknown>>(store, key)) {
    if (!line.ok) continue;
    const { id, text, labels } = line.value;
    if (typeof id !== 'string' || !ids.has(id) || typeof text !== 'string' || text.trim() === '') continue;
    reports.set(id, {
      text,
      labels: labels && typeof labels === 'object' ? (labels as Record<string, unknown>) : undefined,
    });
  }
  return reports;
}

/** An anonymized report of `anonymized.jsonl`. */
interface Report {
  text: string;
  labels?: Record<string, unknown>;
}

/** A sample ready for its shard: its members and what the card counts of it. */
interface PreparedSample {
  members: [string, Buffer][];
  modelDigest?: string;
  textSource: SampleMetadata['text_source'];
}

/**
 * One sample's tar members (`<key>.png|jpg`, `.txt`, `.json`), its image checked against the
 * manifest's `image_sha256` and the generator digest; undefined when the image is not in the store.
 */
async function prepareSample(
  store: ArtifactStore,
  sample: Sample,
  context: { generator: CardFacts['generator']; report?: Report },
): Promise<PreparedSample | undefined> {
  const { record, line, key } = sample;
  let image: Buffer;
  try {
    image = await getBuffer(store, record.imageKey);
  } catch (error) {
    if (error instanceof ArtifactNotFoundError) return undefined;
    throw error;
  }
  const what = `${record.manifest} line ${record.lineNumber}: image ${record.imageKey}`;
  const digest = sha256Hex(image);
  if (line.image_sha256 !== undefined && line.image_sha256 !== digest)
    throw new DatasetExportError('pairs', `${what} does not match its image_sha256`);
  const ext = imageExtension(image);
  if (!ext) throw new DatasetExportError('pairs', `${what} is neither PNG nor JPEG`);
  const modelDigest = ext === 'png' ? pngModelDigest(image) : undefined;
  const { generator, report } = context;
  if (modelDigest && generator.sha256 && modelDigest !== generator.sha256)
    throw new DatasetExportError(
      'card.generator.sha256',
      `${what} was made by model ${modelDigest}, not ${generator.sha256}`,
    );
  const generatorSha256 = modelDigest ?? generator.sha256;
  const labels = line.labels ?? report?.labels;
  const metadata: SampleMetadata = {
    key,
    id: record.id ?? key,
    image: `${key}.${ext}`,
    image_sha256: digest,
    text_source: report ? 'anonymized_report' : 'prompt',
    // A synthesizer's line (it has a seed) carries the prompt its image was made from.
    ...(line.seed !== undefined ? { prompt: line.report, seed: line.seed } : {}),
    generator: { name: generator.name, ...(generatorSha256 ? { sha256: generatorSha256 } : {}) },
    ...(labels ? { labels } : {}),
    ...(line.prompt_truncated !== undefined ? { prompt_truncated: line.prompt_truncated } : {}),
  };
  return {
    members: [
      [`${key}.${ext}`, image],
      [`${key}.txt`, Buffer.from(report?.text ?? record.report, 'utf8')],
      [`${key}.json`, Buffer.from(JSON.stringify(metadata), 'utf8')],
    ],
    modelDigest,
    textSource: metadata.text_source,
  };
}

/** Maps items through fn with up to `depth` calls in flight (reads overlap), yielding the results in order. */
async function* inOrder<T, R>(items: T[], fn: (item: T) => Promise<R>, depth: number): AsyncIterable<R> {
  const pending: Promise<R>[] = [];
  let next = 0;
  try {
    while (next < items.length || pending.length) {
      while (next < items.length && pending.length < depth) {
        const result = fn(items[next++]!);
        result.catch(() => undefined); // awaited in order below; a later failure must not go unhandled meanwhile
        pending.push(result);
      }
      yield await pending.shift()!;
    }
  } finally {
    await Promise.allSettled(pending);
  }
}

/**
 * Exports synthetic image-report pairs as a shareable bundle: WebDataset tar shards
 * (`shard-000000.tar`, ...; each sample `<key>.png`, `<key>.txt`, `<key>.json`) with a dataset
 * card, `dataset.json` and `README.md`. The pairs are read as the pretrainer reads them
 * (`readPairManifests`), so the same lines are kept and skipped; an image whose bytes do not
 * match the manifest's `image_sha256` fails the export. Re-exporting the same inputs gives
 * byte-identical shards; shards of an earlier, larger export under the prefix are removed.
 */
export async function exportDataset(options: ExportDatasetOptions): Promise<ExportDatasetResult> {
  const { store, out } = options;
  const facts = checkCardFacts(options.card);
  const outPrefix = normalizePrefix(options.outPrefix, 'outPrefix');
  const shardSize = options.shardSize ?? DEFAULT_SHARD_SIZE;
  if (!Number.isInteger(shardSize) || shardSize < 1)
    throw new DatasetExportError('shardSize', `must be an integer >= 1, got ${shardSize}`);
  if (!Array.isArray(options.pairs) || options.pairs.length === 0)
    throw new DatasetExportError('pairs', 'at least one pair manifest is required');

  const sources: DatasetCard['sources'] = [];
  const manifestKeys: string[] = [];
  for (const [i, uri] of options.pairs.entries()) {
    const manifest = await manifestKey(store, uri, `pairs[${i}]`);
    manifestKeys.push(manifest.key);
    sources.push({ kind: 'pairs', sha256: manifest.sha256 });
  }
  const reportsKey = options.reports ? await manifestKey(store, options.reports, 'reports') : undefined;
  if (reportsKey) sources.push({ kind: 'reports', sha256: reportsKey.sha256 });
  const cardKey = `${outPrefix}dataset.json`;
  const readmeKey = `${outPrefix}README.md`;
  // An earlier card goes first: a bundle without a card is unfinished, never a stale card over new shards.
  await out.delete(cardKey);

  // The lines are kept with their records, for the fields the pretrainer does not read (image_sha256, seed, ...).
  const loaded = await readPairManifests(
    store,
    [{ source: 'synthetic', manifests: manifestKeys, field: (i) => `pairs[${i}]` }],
    { keepLines: true },
  );
  const skipped: Record<string, number> = {};
  for (const s of loaded.skipped) skipped[s.reason] = (skipped[s.reason] ?? 0) + 1;
  if (loaded.records.length === 0)
    throw new DatasetExportError(
      'pairs',
      `no pair to export (${loaded.skipped.length} lines left out: ${
        Object.entries(skipped)
          .map(([r, n]) => `${n} ${r}`)
          .join(', ') || 'the manifests are empty'
      })`,
    );

  const used = new Set<string>();
  const samples: Sample[] = loaded.records.map((record) => ({
    key: sampleKey(record.imageKey, used),
    record,
    line: record.line!,
  }));
  const reports = reportsKey
    ? await loadReports(store, reportsKey.key, new Set(samples.flatMap((s) => (s.record.id ? [s.record.id] : []))))
    : new Map<string, Report>();
  const reportOf = (sample: Sample) => reports.get(sample.record.id ?? '');

  // The synthesizer stamps each PNG with its model's digest: it names the generator when the caller does not.
  const modelDigests = new Set<string>();
  let imagesWithoutDigest = 0;
  const text = { anonymized_report: 0, prompt: 0 };
  // A shard's put finishes (fsync, rename) while the next shard is read and written: each shard
  // starts once the previous one's members are all consumed, so samples stay in order.
  const writing: Promise<ShardEntry>[] = [];
  let failure: { error: unknown } | undefined;
  let exported = 0;
  for (let start = 0; start < samples.length; start += shardSize) {
    const key = `shard-${String(writing.length).padStart(6, '0')}.tar`;
    let count = 0;
    let consumed!: () => void;
    const allConsumed = new Promise<void>((resolve) => (consumed = resolve));
    const prepare = (sample: Sample) =>
      prepareSample(store, sample, { generator: facts.generator, report: reportOf(sample) });
    // What the shard's put writes, made as it is written: up to CONCURRENT_READS images read ahead,
    // their bytes handed to the store uncopied (TarPacker), the samples counted as they go in.
    async function* shardBytes(): AsyncIterable<Buffer> {
      try {
        const packer = new TarPacker();
        for await (const sample of inOrder(samples.slice(start, start + shardSize), prepare, CONCURRENT_READS)) {
          if (!sample) {
            skipped['image not found'] = (skipped['image not found'] ?? 0) + 1;
            continue;
          }
          if (sample.modelDigest) modelDigests.add(sample.modelDigest);
          else imagesWithoutDigest++;
          text[sample.textSource]++;
          for (const [name, body] of sample.members) yield* packer.add({ name, body, mtime: ENTRY_MTIME });
          count++;
          exported++;
          options.onProgress?.({ samples: exported, total: samples.length });
        }
        yield* packer.end();
      } finally {
        consumed();
      }
    }
    const put = out.put(`${outPrefix}${key}`, shardBytes(), { mediaType: 'application/x-tar' });
    const entry = put.then((ref): ShardEntry => ({
      key,
      sha256: ref.sha256,
      samples: count,
      size_bytes: ref.sizeBytes,
    }));
    entry.catch((error: unknown) => (failure ??= { error })); // thrown below, once no put is in flight
    writing.push(entry);
    await Promise.race([allConsumed, entry.catch(() => undefined)]);
    if (failure) break;
  }
  await Promise.allSettled(writing);
  if (failure) throw failure.error;
  const shards = await Promise.all(writing);

  if (!facts.generator.sha256 && modelDigests.size > 1) {
    throw new DatasetExportError(
      'pairs',
      `the images come from ${modelDigests.size} models (medsyn:model_sha256 ${[...modelDigests].map((d) => d.slice(0, 12)).join(', ')}): export each model's images as its own dataset`,
    );
  }
  const generatorSha256 =
    facts.generator.sha256 ?? (modelDigests.size === 1 && imagesWithoutDigest === 0 ? [...modelDigests][0] : undefined);

  // An earlier export with more shards must not leave stale ones behind the new card.
  const current = new Set(shards.map((s) => `${outPrefix}${s.key}`));
  for await (const object of out.list(`${outPrefix}shard-`)) {
    if (/^shard-\d+\.tar$/.test(object.key.slice(outPrefix.length)) && !current.has(object.key))
      await out.delete(object.key);
  }

  const card: DatasetCard = {
    format: DATASET_FORMAT,
    name: facts.name,
    ...(facts.description ? { description: facts.description } : {}),
    samples: exported,
    members: { image: ['png', 'jpg'], text: 'txt', metadata: 'json' },
    shards,
    generator: {
      name: facts.generator.name,
      ...(facts.generator.uri ? { uri: facts.generator.uri } : {}),
      ...(generatorSha256 ? { sha256: generatorSha256 } : {}),
    },
    prompts: { source: facts.promptsSource },
    text,
    deidentification: {
      mode: facts.deid?.mode?.trim() || UNSPECIFIED,
      ...(facts.deid?.recall !== undefined
        ? { recall: facts.deid.recall, recall_source: facts.deid.recallSource!.trim() }
        : {}),
    },
    licence: facts.licence,
    skipped,
    sources,
  };
  await out.put(readmeKey, renderReadme(card), { mediaType: 'text/markdown' });
  // The card last: its presence means the bundle is complete.
  await out.put(cardKey, `${JSON.stringify(card, null, 2)}\n`, { mediaType: 'application/json' });
  return {
    samples: exported,
    shards: shards.map((s) => ({ key: `${outPrefix}${s.key}`, sha256: s.sha256, samples: s.samples })),
    cardKey,
    readmeKey,
    card,
  };
}

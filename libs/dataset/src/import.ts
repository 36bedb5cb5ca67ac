import { TextDecoder } from 'node:util';
import {
  ArtifactNotFoundError,
  ArtifactStoreError,
  DigestMismatchError,
  InvalidKeyError,
  getBuffer,
  putJsonl,
  sha256Hex,
  validateKey,
  type ArtifactBatch,
  type ArtifactStore,
} from '@medsyn/artifact-store';
import { DATASET_FORMAT, type DatasetCard, type ShardEntry } from './card';
import { DatasetBundleError } from './errors';
import { imageExtension } from './export';
import type { PairLine } from './pair-manifest';
import { readTar } from './tar';

export interface ImportDatasetOptions {
  /** Where the bundle is (a local folder is a FileArtifactStore). */
  bundle: ArtifactStore;
  /** The bundle's folder inside `bundle` ("" or ending in "/"). */
  bundlePrefix?: string;
  /** Where the images and the pair manifest go. */
  store: ArtifactStore;
  /** Folder inside `store` (default `datasets/<name>-<digest>/`, the digest of the shards' digests). */
  prefix?: string;
  onProgress?: (progress: { samples: number; total: number }) => void;
  /** Largest member read, by kind, from its tar header before any byte of it is (default MEMBER_SIZE_LIMITS). */
  memberLimits?: Partial<MemberSizeLimits>;
}

/** Largest `.png`/`.jpg` and `.txt`/`.json` member an import reads into memory. */
export interface MemberSizeLimits {
  imageBytes: number;
  textBytes: number;
}

/**
 * 64 MiB holds a 64-megapixel 8-bit PNG uncompressed; 1 MiB is a hundred times the longest radiology
 * report we have seen. A member over its cap is refused from its tar header, before it is read.
 */
export const MEMBER_SIZE_LIMITS: MemberSizeLimits = { imageBytes: 64 * 1024 * 1024, textBytes: 1024 * 1024 };

export interface ImportDatasetResult {
  /** The pair manifest's key: put it (or its URI) in the pre-training config's `data.synthetic_pairs`. */
  manifestKey: string;
  manifestUri: string;
  prefix: string;
  samples: number;
  card: DatasetCard;
}

const SAMPLE_KEY = /^[A-Za-z0-9_-]{1,200}$/;
const CONCURRENT_WRITES = 8;

const SHA256 = /^[0-9a-f]{64}$/;

function normalizePrefix(prefix: string | undefined, field: string): string {
  const p = (prefix ?? '').replace(/^\/+/, '');
  if (p !== '' && !p.endsWith('/')) throw new DatasetBundleError(field, 'must be empty or end in "/"');
  return p;
}

/** Reads and checks `dataset.json`: its format tag and a shard list that stays inside the bundle. */
export async function readDatasetCard(bundle: ArtifactStore, bundlePrefix = ''): Promise<DatasetCard> {
  const key = `${normalizePrefix(bundlePrefix, 'bundlePrefix')}dataset.json`;
  let card: DatasetCard;
  try {
    card = JSON.parse((await getBuffer(bundle, key)).toString('utf8')) as DatasetCard;
  } catch (error) {
    if (error instanceof ArtifactNotFoundError)
      throw new DatasetBundleError(
        'dataset.json',
        `not found in ${bundle.uriOf(key)}: not a dataset bundle, or an unfinished export`,
      );
    if (error instanceof SyntaxError) throw new DatasetBundleError('dataset.json', 'is not valid JSON');
    throw error;
  }
  if (!card || typeof card !== 'object') throw new DatasetBundleError('dataset.json', 'is not a JSON object');
  if (card.format !== DATASET_FORMAT)
    throw new DatasetBundleError('dataset.json', `format ${JSON.stringify(card.format)} is not ${DATASET_FORMAT}`);
  if (!Array.isArray(card.shards)) throw new DatasetBundleError('dataset.json', 'shards must be a list');
  for (const [i, shard] of card.shards.entries()) {
    const field = `dataset.json shards[${i}]`;
    try {
      if (typeof shard?.key !== 'string') throw new Error('no key');
      validateKey(shard.key);
    } catch {
      throw new DatasetBundleError(field, 'key must be a relative path inside the bundle');
    }
    if (typeof shard.sha256 !== 'string' || !SHA256.test(shard.sha256))
      throw new DatasetBundleError(field, 'sha256 must be 64 lower-case hex digits');
    if (!Number.isInteger(shard.samples) || shard.samples < 0)
      throw new DatasetBundleError(field, 'samples must be an integer >= 0');
  }
  return card;
}

/**
 * A shard's digest as its store knows it now (a filesystem store reads the bytes; S3 keeps the one
 * recorded at upload): nothing is written unless every shard is the one the card lists.
 */
async function checkShardDigest(bundle: ArtifactStore, key: string, shard: ShardEntry): Promise<void> {
  let digest: string;
  try {
    digest = await bundle.sha256Of(key);
  } catch (error) {
    if (error instanceof ArtifactNotFoundError) throw new DatasetBundleError(shard.key, 'missing from the bundle');
    throw error;
  }
  if (digest !== shard.sha256)
    throw new DatasetBundleError(
      shard.key,
      `sha256 ${digest} does not match dataset.json (${shard.sha256}): the shard was changed or damaged`,
    );
}

interface Members {
  key: string;
  files: Map<string, Buffer>;
}

/** The cap for a member by its extension; undefined for members an import does not use (they are skipped unread). */
function memberCap(extension: string, limits: MemberSizeLimits): number | undefined {
  if (extension === 'png' || extension === 'jpg') return limits.imageBytes;
  if (extension === 'txt' || extension === 'json') return limits.textBytes;
  return undefined;
}

/** A member's sample key and extension: WebDataset splits its name at the first dot. */
function memberName(name: string): { sampleKey: string; extension: string } {
  const dot = name.indexOf('.');
  return dot < 0
    ? { sampleKey: name, extension: '' }
    : { sampleKey: name.slice(0, dot), extension: name.slice(dot + 1) };
}

/**
 * The samples of a tar shard, one at a time, grouped as WebDataset does: by the name before its
 * first dot. Only the members an import uses are kept, each after its header size passed its cap.
 */
async function* readSamples(
  bundle: ArtifactStore,
  key: string,
  shardKey: string,
  limits: MemberSizeLimits,
): AsyncIterable<Members> {
  const source = await bundle.get(key);
  const select = ({ name, size }: { name: string; size: number }) => {
    const { sampleKey, extension } = memberName(name);
    // The key names an object in the target store: only the characters an export writes.
    if (!SAMPLE_KEY.test(sampleKey))
      throw new DatasetBundleError(
        shardKey,
        `member ${JSON.stringify(name.slice(0, 120))} has no valid sample key (letters, digits, "_", "-")`,
      );
    const cap = memberCap(extension, limits);
    if (cap === undefined) return false;
    if (size > cap)
      throw new DatasetBundleError(
        `${shardKey} sample ${sampleKey}`,
        `member .${extension} is ${size} bytes, over the ${cap}-byte limit for ${extension === 'png' || extension === 'jpg' ? 'images' : '.txt and .json members'}; not read`,
      );
    return true;
  };
  let current: Members | undefined;
  try {
    for await (const { name, body } of readTar(source, select)) {
      const { sampleKey, extension } = memberName(name);
      if (current && current.key !== sampleKey) {
        yield current;
        current = undefined;
      }
      current ??= { key: sampleKey, files: new Map() };
      current.files.set(extension, body);
    }
    if (current) yield current;
  } catch (error) {
    if (error instanceof DatasetBundleError || error instanceof ArtifactStoreError) throw error;
    // The tar reader's errors say what is wrong with the archive's structure, never its content.
    throw new DatasetBundleError(shardKey, `is not a readable tar archive (${(error as Error).message})`);
  } finally {
    source.destroy();
  }
}

/** A sample as checked: its image (and the sha256 its `.json` states), report and id. */
interface CheckedSample {
  key: string;
  ext: string;
  image: Buffer;
  imageSha256: string;
  report: string;
  id: string;
}

/**
 * One sample's members checked: an image of the format its name says and a sha256 for it in its
 * `.json` (the store checks the bytes against it as it writes them: one pass over each image), a
 * UTF-8 report.
 */
function checkSample(shardKey: string, sample: Members, seen: Set<string>, utf8: TextDecoder): CheckedSample {
  const where = `${shardKey} sample ${sample.key}`;
  if (seen.has(sample.key)) throw new DatasetBundleError(where, 'appears twice in the bundle');
  seen.add(sample.key);
  const ext = ['png', 'jpg'].find((e) => sample.files.has(e));
  const image = ext ? sample.files.get(ext) : undefined;
  const text = sample.files.get('txt');
  const metadataBytes = sample.files.get('json');
  if (!image || !ext) throw new DatasetBundleError(where, 'has no .png or .jpg image');
  if (!text) throw new DatasetBundleError(where, 'has no .txt report');
  if (!metadataBytes) throw new DatasetBundleError(where, 'has no .json metadata');
  let metadata: { image_sha256?: unknown; id?: unknown } | null;
  try {
    metadata = JSON.parse(metadataBytes.toString('utf8')) as typeof metadata;
  } catch {
    throw new DatasetBundleError(where, '.json is not valid JSON');
  }
  const imageSha256 = metadata?.image_sha256;
  if (typeof imageSha256 !== 'string' || !SHA256.test(imageSha256))
    throw new DatasetBundleError(where, '.json has no image_sha256 (64 lower-case hex digits)');
  if (imageExtension(image) !== ext)
    throw new DatasetBundleError(where, `.${ext} member is not a ${ext.toUpperCase()} image`);
  let report: string;
  try {
    report = utf8.decode(text);
  } catch {
    throw new DatasetBundleError(where, '.txt is not UTF-8');
  }
  if (report.trim() === '') throw new DatasetBundleError(where, '.txt is empty');
  return {
    key: sample.key,
    ext,
    image,
    imageSha256,
    report,
    id: typeof metadata?.id === 'string' ? metadata.id : sample.key,
  };
}

/** Stages a checked sample's image in the batch; an image whose bytes are not the ones its `.json` names fails, naming it. */
function stageImage(batch: ArtifactBatch, key: string, shardKey: string, sample: CheckedSample): Promise<unknown> {
  return batch
    .put(key, sample.image, {
      mediaType: sample.ext === 'png' ? 'image/png' : 'image/jpeg',
      sha256: sample.imageSha256,
    })
    .catch((error: unknown) => {
      if (!(error instanceof DigestMismatchError)) throw error;
      throw new DatasetBundleError(
        `${shardKey} sample ${sample.key}`,
        'image sha256 does not match its .json: the image was changed or damaged',
      );
    });
}

/**
 * Imports a dataset bundle into the store: checks `dataset.json`'s format, every shard's sha256
 * (before anything is written) and every image's sha256 against its `<key>.json` (as it is
 * staged, before it is published), then writes `images/<key>.<ext>`, a copy of the card and the
 * pretrainer's pair manifest `pairs.jsonl` (`{"image", "report", "id"}`, images relative to it), last. Errors name the shard and sample,
 * never a report's text. Importing the same bundle again rewrites the same objects.
 */
export async function importDataset(options: ImportDatasetOptions): Promise<ImportDatasetResult> {
  const { bundle, store } = options;
  const bundlePrefix = normalizePrefix(options.bundlePrefix, 'bundlePrefix');
  const card = await readDatasetCard(bundle, bundlePrefix);
  const digest = sha256Hex(Buffer.from(card.shards.map((s) => s.sha256).join('\n'))).slice(0, 12);
  const name =
    typeof card.name === 'string' && /^[A-Za-z0-9][A-Za-z0-9._-]{0,99}$/.test(card.name) ? card.name : 'dataset';
  const prefix = normalizePrefix(options.prefix ?? `datasets/${name}-${digest}/`, 'prefix');
  const limits = { ...MEMBER_SIZE_LIMITS, ...options.memberLimits };
  try {
    if (prefix) validateKey(`${prefix}pairs.jsonl`);
  } catch (error) {
    if (error instanceof InvalidKeyError) throw new DatasetBundleError('prefix', error.message);
    throw error;
  }

  for (const shard of card.shards) await checkShardDigest(bundle, `${bundlePrefix}${shard.key}`, shard);

  const total = card.shards.reduce((n, s) => n + s.samples, 0);
  let imported = 0;
  const seen = new Set<string>();
  const utf8 = new TextDecoder('utf-8', { fatal: true });
  const written = async ({ put, pair }: { put: Promise<unknown>; pair: PairLine }) => {
    await put;
    imported++;
    options.onProgress?.({ samples: imported, total });
    return pair;
  };
  async function* pairs(): AsyncIterable<PairLine> {
    // Images are written a few at a time, and each shard's are made durable together when it ends
    // (one sync, not one per image): the manifest that names them is published after the last.
    // Their digests, checked against their `.json` as they are written, are not recorded per image
    // (one file per image, not two): a store that keeps them hashes an image the first time it is stat'ed.
    const writing: { put: Promise<unknown>; pair: PairLine }[] = [];
    // A shard's commit (the sync, then the renames) runs while the next shard is read and staged;
    // the manifest is published after the last commit.
    let committing: Promise<void> | undefined;
    try {
      for (const shard of card.shards) {
        const batch = store.batch({ recordDigests: false });
        let handedOver = false;
        try {
          let count = 0;
          for await (const members of readSamples(bundle, `${bundlePrefix}${shard.key}`, shard.key, limits)) {
            const sample = checkSample(shard.key, members, seen, utf8);
            const imageKey = `images/${sample.key}.${sample.ext}`;
            const put = stageImage(batch, `${prefix}${imageKey}`, shard.key, sample);
            put.catch(() => undefined); // awaited below, in order; this keeps a failure from going unhandled meanwhile
            writing.push({ put, pair: { image: imageKey, report: sample.report, id: sample.id } });
            if (writing.length >= CONCURRENT_WRITES) yield await written(writing.shift()!);
            count++;
          }
          if (count !== shard.samples)
            throw new DatasetBundleError(shard.key, `holds ${count} samples, dataset.json says ${shard.samples}`);
          while (writing.length) yield await written(writing.shift()!);
          await committing; // the previous shard's: its failure stops the import here
          committing = batch.commit();
          committing.catch(() => undefined); // awaited at the next shard or below
          handedOver = true;
        } finally {
          // After a failure (or the manifest's upload giving up): what this shard staged is dropped.
          if (!handedOver) {
            await Promise.allSettled(writing.splice(0).map((w) => w.put));
            await batch.abort();
          }
        }
      }
      await committing;
    } finally {
      await committing?.catch(() => undefined); // no commit is left running behind a failure
    }
  }

  await store.put(`${prefix}dataset.json`, `${JSON.stringify(card, null, 2)}\n`, { mediaType: 'application/json' });
  // The manifest is written as the samples are checked, and published only when all are: the
  // store's writes are atomic, so a failed import leaves no new manifest to train on.
  const manifest = await putJsonl(store, `${prefix}pairs.jsonl`, pairs());
  return { manifestKey: `${prefix}pairs.jsonl`, manifestUri: manifest.uri, prefix, samples: imported, card };
}

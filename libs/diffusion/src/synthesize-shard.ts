import {
  getBuffer,
  putJsonl,
  readJsonl,
  sha256Hex,
  type ArtifactRef,
  type ArtifactStore,
} from '@medsyn/artifact-store';
import { parsePairLine, type PairLine } from '@medsyn/dataset';
import type { TextToImageModel, GenerationRequest } from './text-to-image';
import type { QualityGate } from './quality';
import { synthesize, type SynthesisItem } from './synthesize';

/** One line of the anonymizer's prompt manifest. */
export interface PromptRecord {
  id: string;
  prompt: string;
  /** Labels from the report for the quality gate's classifier checks. */
  labels?: Record<string, string>;
}

export interface SynthesizeDatasetSpec {
  /** Store key of the prompt manifest (JSONL). */
  promptsKey: string;
  /** Store prefix of images, records and pair manifests, ending in "/". */
  outputPrefix: string;
  shard: { index: number; count: number };
  imagesPerPrompt: number;
  params: Omit<GenerationRequest, 'prompt' | 'seed'> & { seed?: string; maxAttempts?: number; bitDepth?: 8 | 16 };
}

export interface SynthesizeDatasetProgress {
  completed: number;
  total: number;
  accepted: number;
  rejected: number;
  /** Manifest lines that were skipped (bad JSON, missing id or prompt, duplicate id). */
  invalid: number;
  rejections: Record<string, number>;
}

export interface SynthesizeDatasetResult extends SynthesizeDatasetProgress {
  pairs: ArtifactRef;
}

export class SynthesizeDatasetInputError extends Error {
  constructor(
    readonly field: string,
    message: string,
  ) {
    super(`${field}: ${message}`);
    this.name = 'SynthesizeDatasetInputError';
  }
}

const SAFE_ID = /^[A-Za-z0-9][A-Za-z0-9._-]{0,127}$/;

/** The seed of image k of a report: from the report id (and the request's seed), so every replica and every retry agrees. */
export function itemSeed(reportId: string, k: number, base?: string): bigint {
  // The digest's first 8 bytes, big-endian.
  return BigInt(`0x${sha256Hex(`${base ?? ''}:${reportId}:${k}`).slice(0, 16)}`);
}

/**
 * Generates one shard of a prompt manifest into the store. Record i (in manifest order, invalid
 * lines skipped) belongs to shard i mod count. Each finished image is written, then its record;
 * on a rerun (after a kill or a restart) images whose record exists are skipped, and a lost
 * image is regenerated from its deterministic seed, so the shard ends with every image exactly
 * once. The pair manifest of the shard lists the accepted images in manifest order.
 */
export async function synthesizeDatasetShard(
  store: ArtifactStore,
  model: TextToImageModel,
  spec: SynthesizeDatasetSpec,
  options: {
    gate?: QualityGate;
    maxBatch?: number;
    signal?: AbortSignal;
    onProgress?: (p: SynthesizeDatasetProgress) => void;
    onImage?: (accepted: boolean, rejections: Record<string, number>) => void;
  } = {},
): Promise<SynthesizeDatasetResult> {
  const { index, count } = spec.shard;
  if (!Number.isInteger(count) || count < 1)
    throw new SynthesizeDatasetInputError('shard.count', `must be >= 1, got ${count}`);
  if (!Number.isInteger(index) || index < 0 || index >= count)
    throw new SynthesizeDatasetInputError('shard.index', `must be in [0, ${count}), got ${index}`);
  if (!Number.isInteger(spec.imagesPerPrompt) || spec.imagesPerPrompt < 1 || spec.imagesPerPrompt > 100)
    throw new SynthesizeDatasetInputError('images_per_prompt', `must be 1 to 100, got ${spec.imagesPerPrompt}`);

  const progress: SynthesizeDatasetProgress = {
    completed: 0,
    total: 0,
    accepted: 0,
    rejected: 0,
    invalid: 0,
    rejections: {},
  };
  const units: { key: string; record: PromptRecord; k: number }[] = [];
  const seen = new Set<string>();
  let ordinal = 0;
  for await (const line of readJsonl<PromptRecord>(store, spec.promptsKey)) {
    const value = line.ok ? line.value : undefined;
    if (
      !value ||
      typeof value.id !== 'string' ||
      !SAFE_ID.test(value.id) ||
      typeof value.prompt !== 'string' ||
      value.prompt.trim() === '' ||
      seen.has(value.id)
    ) {
      progress.invalid++;
      continue;
    }
    seen.add(value.id);
    if (ordinal++ % count !== index) continue;
    for (let k = 0; k < spec.imagesPerPrompt; k++)
      units.push({ key: spec.imagesPerPrompt === 1 ? value.id : `${value.id}_${k}`, record: value, k });
  }
  progress.total = units.length;

  const recordKey = (unit: string) => `${spec.outputPrefix}records/${unit}.json`;
  const done = new Set<string>();
  for await (const object of store.list(`${spec.outputPrefix}records/`)) done.add(object.key);
  // The per-image records are pair manifest lines: the shard's manifest is the accepted ones.
  const finished: PairLine[] = new Array(units.length);
  const count_ = (record: PairLine) => {
    progress.completed++;
    if (record.accepted) progress.accepted++;
    else progress.rejected++;
    for (const [reason, n] of Object.entries(record.rejections ?? {}))
      progress.rejections[reason] = (progress.rejections[reason] ?? 0) + n;
  };
  for (let u = 0; u < units.length; u++) {
    if (!done.has(recordKey(units[u]!.key))) continue;
    // Parsed, not taken as written: a record of a job begun before #19 has the older field names.
    const parsed = parsePairLine(JSON.parse((await getBuffer(store, recordKey(units[u]!.key))).toString('utf8')));
    if (!parsed.ok) continue;
    finished[u] = parsed.line;
    count_(parsed.line);
  }
  options.onProgress?.({ ...progress });

  const todo = units.map((_, u) => u).filter((u) => !finished[u]);
  const chunk = Math.max(1, (options.maxBatch ?? 4) * 2);
  for (let start = 0; start < todo.length; start += chunk) {
    if (options.signal?.aborted) throw options.signal.reason ?? new Error('aborted');
    const slice = todo.slice(start, start + chunk);
    const items: SynthesisItem[] = slice.map((u) => {
      const { record, k } = units[u]!;
      return {
        ...spec.params,
        prompt: record.prompt,
        labels: record.labels,
        seed: itemSeed(record.id, k, spec.params.seed),
      };
    });
    await synthesize(model, items, {
      gate: options.gate,
      maxBatch: options.maxBatch,
      signal: options.signal,
      onResult: async (i, result) => {
        const unit = units[slice[i]!]!;
        const image = await store.put(`${spec.outputPrefix}images/${unit.key}.png`, result.png, {
          mediaType: 'image/png',
        });
        const pair: PairLine = {
          id: unit.record.id,
          image: image.uri,
          report: unit.record.prompt,
          image_sha256: image.sha256,
          seed: result.seed.toString(),
          accepted: result.accepted,
          attempts: result.attempts,
          rejections: result.rejections,
          prompt_truncated: result.generated.promptTruncated,
        };
        // The record is written last: its presence means the image is complete.
        await store.put(recordKey(unit.key), JSON.stringify(pair), { mediaType: 'application/json' });
        finished[slice[i]!] = pair;
        count_(pair);
        options.onImage?.(result.accepted, result.rejections);
        options.onProgress?.({ ...progress });
      },
    });
  }
  const pairs = await putJsonl(
    store,
    `${spec.outputPrefix}pairs-shard-${String(index).padStart(5, '0')}-of-${String(count).padStart(5, '0')}.jsonl`,
    finished.filter((p) => p.accepted),
  );
  return { ...progress, pairs };
}

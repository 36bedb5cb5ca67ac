import { sha256Hex } from '@medsyn/artifact-store';
import { encodeGrayPng } from '@medsyn/imaging';
import type { TextToImageModel, GeneratedImage, GenerationRequest } from './text-to-image';
import type { QualityGate, QualityItem } from './quality';

export interface SynthesisItem extends GenerationRequest, QualityItem {
  /** Quality-gate attempts before giving up (default 3); attempt k uses seed + k. */
  maxAttempts?: number;
  /** PNG bit depth (default the options' or 8). */
  bitDepth?: 8 | 16;
}

export interface SynthesisResult {
  /** The PNG (8 or 16-bit grayscale) with its provenance as tEXt chunks. */
  png: Uint8Array;
  generated: GeneratedImage;
  /** The seed of the returned image (the request's seed + attempts - 1). */
  seed: bigint;
  accepted: boolean;
  attempts: number;
  /** Rejections by reason over all attempts. */
  rejections: Record<string, number>;
}

export interface SynthesisOptions {
  gate?: QualityGate;
  bitDepth?: 8 | 16;
  /** Most images denoised together (default 4); requests with equal steps, size and scheduler share a batch. */
  maxBatch?: number;
  /** Told after every UNet evaluation of every batch. */
  onStep?: (images: number) => void;
  /** Told when an item is finished (accepted or out of attempts), as soon as it is. */
  onResult?: (index: number, result: SynthesisResult) => void | Promise<void>;
  signal?: AbortSignal;
}

const U64 = (1n << 64n) - 1n;

/** The PNG tEXt provenance: digests, never the prompt itself (it comes from a patient's report). */
export function provenanceText(
  model: TextToImageModel,
  item: SynthesisItem,
  generated: GeneratedImage,
  seed: bigint,
): Record<string, string> {
  return {
    Software: 'medsyn synthesizer',
    'medsyn:prompt_sha256': sha256Hex(item.prompt),
    ...(item.negativePrompt ? { 'medsyn:negative_prompt_sha256': sha256Hex(item.negativePrompt) } : {}),
    'medsyn:seed': seed.toString(),
    'medsyn:model_sha256': model.info.digest,
    'medsyn:scheduler': generated.params.scheduler,
    'medsyn:steps': String(generated.params.numInferenceSteps),
    'medsyn:guidance_scale': String(generated.params.guidanceScale),
  };
}

/**
 * Generates one accepted image per item where the gate allows: images are denoised in batches,
 * each is checked, and rejected ones are generated again with the next seed until accepted or out
 * of attempts (then returned with accepted = false). Deterministic: the same items give the same
 * images, so a resumed job regenerates exactly what it lost.
 */
export async function synthesize(
  model: TextToImageModel,
  items: SynthesisItem[],
  options: SynthesisOptions = {},
): Promise<SynthesisResult[]> {
  const maxBatch = options.maxBatch ?? 4;
  const results: SynthesisResult[] = new Array(items.length);
  const state = items.map(() => ({ attempts: 0, rejections: {} as Record<string, number> }));
  // Validate everything before any work, so one bad item fails fast with its field.
  const resolved = items.map((item) => model.resolve(item));
  let pending = items.map((_, i) => i);
  while (pending.length > 0) {
    if (options.signal?.aborted) throw options.signal.reason ?? new Error('aborted');
    // Group by what a batch must share, then cut into batches.
    const groups = new Map<string, number[]>();
    for (const i of pending) {
      const p = resolved[i]!;
      const key = `${p.numInferenceSteps}/${p.height}/${p.width}/${p.scheduler}`;
      groups.set(key, [...(groups.get(key) ?? []), i]);
    }
    const next: number[] = [];
    for (const group of groups.values()) {
      for (let start = 0; start < group.length; start += maxBatch) {
        const batch = group.slice(start, start + maxBatch);
        const requests = batch.map((i) => ({
          ...items[i]!,
          seed: (items[i]!.seed + BigInt(state[i]!.attempts)) & U64,
        }));
        const generated = await model.generate(requests, () => options.onStep?.(batch.length));
        for (let k = 0; k < batch.length; k++) {
          const i = batch[k]!;
          const s = state[i]!;
          s.attempts++;
          const reasons = options.gate ? await options.gate.evaluate(generated[k]!.image, items[i]!) : [];
          for (const reason of reasons) s.rejections[reason] = (s.rejections[reason] ?? 0) + 1;
          const maxAttempts = Math.max(1, items[i]!.maxAttempts ?? 3);
          if (reasons.length > 0 && s.attempts < maxAttempts) {
            next.push(i);
            continue;
          }
          const seed = requests[k]!.seed;
          const png = encodeGrayPng(generated[k]!.image, {
            bitDepth: items[i]!.bitDepth ?? options.bitDepth ?? 8,
            text: provenanceText(model, items[i]!, generated[k]!, seed),
          });
          results[i] = {
            png,
            generated: generated[k]!,
            seed,
            accepted: reasons.length === 0,
            attempts: s.attempts,
            rejections: s.rejections,
          };
          await options.onResult?.(i, results[i]!);
        }
      }
    }
    pending = next;
  }
  return results;
}

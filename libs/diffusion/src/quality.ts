import * as ort from 'onnxruntime-node';
import { resize, type GrayImage } from '@medsyn/imaging';

/**
 * The quality gate (RoentGen-v2's attribute check, generalised): every generated image goes
 * through a list of checks; a check returns the reasons it rejects the image for (none = pass).
 * Reasons are short bounded names ("blank", "sex_mismatch") that end up as metric labels and
 * job counts, never image or prompt content.
 */
export interface QualityItem {
  /** Labels taken from the report (e.g. {"sex": "F", "Pleural Effusion": "1"}), for classifier checks. */
  labels?: Record<string, string>;
}

export interface QualityCheck {
  readonly name: string;
  check(image: GrayImage, item: QualityItem): Promise<string[]>;
  close?(): Promise<void>;
}

export interface ImageStatisticsOptions {
  /** Below this pixel standard deviation the image is "blank" (uniform). */
  minStd?: number;
  /** Above this fraction of pixels at 0 or 1 the image is "saturated". */
  maxClippedFraction?: number;
  /**
   * Below this correlation between horizontally adjacent pixels the image is "noise": radiographs
   * are smooth at the pixel scale (neighbour correlation > 0.9), white noise has ~0.
   */
  minNeighbourCorrelation?: number;
}

/** Image statistics that every radiograph passes and failed generations do not: rejects blank, saturated and noise-like images. */
export function imageStatisticsCheck(options: ImageStatisticsOptions = {}): QualityCheck {
  const minStd = options.minStd ?? 0.02;
  const maxClipped = options.maxClippedFraction ?? 0.5;
  const minCorrelation = options.minNeighbourCorrelation ?? 0.3;
  return {
    name: 'image_statistics',
    async check(image) {
      const { data, width, height } = image;
      let sum = 0;
      let clipped = 0;
      for (const v of data) {
        sum += v;
        if (v <= 1 / 255 || v >= 254 / 255) clipped++;
      }
      const mean = sum / data.length;
      let variance = 0;
      for (const v of data) variance += (v - mean) ** 2;
      variance /= data.length;
      const reasons: string[] = [];
      if (clipped / data.length > maxClipped) reasons.push('saturated');
      if (Math.sqrt(variance) < minStd) {
        reasons.push('blank');
        return reasons;
      }
      let covariance = 0;
      let pairs = 0;
      for (let y = 0; y < height; y++) {
        for (let x = 0; x + 1 < width; x++) {
          covariance += (data[y * width + x]! - mean) * (data[y * width + x + 1]! - mean);
          pairs++;
        }
      }
      if (pairs > 0 && covariance / pairs / variance < minCorrelation) reasons.push('noise');
      return reasons;
    },
  };
}

export interface ClassifierCheckOptions {
  /** An ONNX image classifier: input [n, 1 or 3, h, w] float, first output [n, labels] logits. */
  modelPath: string;
  /** The name of each output column, matched against the item's label keys. */
  labels: string[];
  /** Sigmoid probability above which a label is predicted present (default 0.5). */
  threshold?: number;
  /** Normalisation of the [0, 1] image before the model (default mean 0.5, std 0.5). */
  mean?: number;
  std?: number;
  /** Input size when the model's is symbolic (default 224). */
  inputSize?: number;
  executionProvider?: 'cpu' | 'cuda' | 'webgpu';
}

const POSITIVE = new Set(['1', '1.0', 'true', 'yes', 'positive', 'present']);
const NEGATIVE = new Set(['0', '0.0', 'false', 'no', 'negative', 'absent']);

/**
 * Runs an ONNX classifier on the image and rejects it when a predicted finding or attribute
 * disagrees with the item's label of the same name ("<label>_mismatch"). Labels the item does not
 * carry, or carries as uncertain (e.g. "-1"), are not judged.
 */
export async function classifierCheck(options: ClassifierCheckOptions): Promise<QualityCheck> {
  const session = await ort.InferenceSession.create(options.modelPath, {
    executionProviders: [options.executionProvider ?? 'cpu'],
  });
  const input = session.inputMetadata[0]!;
  const shape = input.isTensor ? input.shape : [];
  const channels = typeof shape[1] === 'number' ? shape[1] : 1;
  const height = typeof shape[2] === 'number' ? shape[2] : (options.inputSize ?? 224);
  const width = typeof shape[3] === 'number' ? shape[3] : (options.inputSize ?? 224);
  const mean = options.mean ?? 0.5;
  const std = options.std ?? 0.5;
  const threshold = options.threshold ?? 0.5;
  const reasonName = (label: string) => `${label.toLowerCase().replace(/[^a-z0-9]+/g, '_')}_mismatch`;
  return {
    name: 'classifier',
    async check(image, item) {
      const judged = options.labels
        .map((label, column) => ({ label, column, value: item.labels?.[label]?.trim().toLowerCase() }))
        .filter((l) => l.value !== undefined && (POSITIVE.has(l.value) || NEGATIVE.has(l.value)));
      if (judged.length === 0) return [];
      const resized = resize(image, width, height);
      const plane = width * height;
      const data = new Float32Array(channels * plane);
      for (let c = 0; c < channels; c++)
        for (let j = 0; j < plane; j++) data[c * plane + j] = (resized.data[j]! - mean) / std;
      const out = await session.run({ [input.name]: new ort.Tensor('float32', data, [1, channels, height, width]) });
      const logits = out[session.outputNames[0]!]!.data as Float32Array;
      return judged
        .filter(({ column, value }) => 1 / (1 + Math.exp(-logits[column]!)) > threshold !== POSITIVE.has(value!))
        .map(({ label }) => reasonName(label));
    },
    close: () => session.release(),
  };
}

/** All checks in order; an image passes when no check gives a reason. */
export class QualityGate {
  constructor(readonly checks: QualityCheck[]) {}

  async evaluate(image: GrayImage, item: QualityItem): Promise<string[]> {
    const reasons: string[] = [];
    for (const check of this.checks) reasons.push(...(await check.check(image, item)));
    return reasons;
  }

  async close(): Promise<void> {
    await Promise.all(this.checks.map((c) => c.close?.()));
  }
}

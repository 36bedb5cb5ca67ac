import type { TaskName, parseEvaluationConfig } from '@medsyn/config';

/** An axis-aligned box in pixels, COCO's [x, y, width, height] convention. */
export interface Box {
  x: number;
  y: number;
  width: number;
  height: number;
  /** Class index (0-based). */
  label: number;
}

export interface ScoredBox extends Box {
  score: number;
}

/** One metric of one encoder on one task at one label fraction, over seeds. */
export interface MetricSummary {
  encoder: string;
  task: TaskName;
  label_fraction: number;
  metric: string;
  mean: number;
  std: number;
  per_seed: number[];
}

/** Synthetic-pretrained over real-pretrained, per task, fraction and metric (the paper's comparison). */
export interface RatioSummary {
  task: TaskName;
  label_fraction: number;
  metric: string;
  synthetic: string;
  real: string;
  ratio: number;
}

export interface ReportSample {
  id: string;
  /** Side of the square image, masks and box coordinates (the encoder's input size). */
  size: number;
  /** The image, and the masks (white = inside), as PNG data URIs. */
  image: string;
  truthMask?: string;
  predictedMask?: string;
  truthBoxes?: Box[];
  predictedBoxes?: ScoredBox[];
}

export interface EvaluationResults {
  format: 'medsyn.evaluation-results/v1';
  created: string;
  config: ReturnType<typeof parseEvaluationConfig>;
  dataset: {
    name: string;
    format: string;
    kind: string;
    classes: string[];
    box_classes?: string[];
    images: number;
    sha256: string;
  };
  encoders: {
    name: string;
    pretraining_data: string;
    method: string;
    architecture: string;
    input_size: number;
    digests: Record<string, string>;
    encode_seconds: number;
  }[];
  metrics: MetricSummary[];
  ratios: RatioSummary[];
  runs: {
    encoder: string;
    task: TaskName;
    label_fraction: number;
    seed: number;
    train_images: number;
    best_epoch?: number;
    steps?: number;
    seconds: number;
    metrics: Record<string, number>;
  }[];
  /** Tasks an encoder cannot do (zero-shot without a text encoder), with the reason. */
  skipped: { encoder: string; task: TaskName; reason: string }[];
  /** Per task: sizes of the shared split; the ids are in splits.json next to this file. */
  splits: Record<string, { train: number; validation: number; test: number }>;
  /** ROC curves of the largest fraction, first seed: per encoder, per class. */
  roc: Record<string, { className: string; fpr: number[]; tpr: number[]; auroc: number }[]>;
  /** Example images per named folder (config.sample_grids), as 96 px PNG data URIs. */
  grids: Record<string, { file: string; png: string }[]>;
  /** Segmentation and detection outputs on a few test images (largest fraction, first seed). */
  samples: Record<string, { segmentation?: ReportSample[]; detection?: ReportSample[] }>;
  seconds: number;
}

/** Mean and sample standard deviation (n - 1; 0 for a single value). */
export function meanStd(values: number[]): { mean: number; std: number } {
  if (values.length === 0) return { mean: NaN, std: NaN };
  const mean = values.reduce((a, b) => a + b, 0) / values.length;
  if (values.length === 1) return { mean, std: 0 };
  const variance = values.reduce((a, v) => a + (v - mean) ** 2, 0) / (values.length - 1);
  return { mean, std: Math.sqrt(variance) };
}

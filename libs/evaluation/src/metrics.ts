import type { Box, ScoredBox } from '@medsyn/evaluation-report';

/** A metric was asked of inputs it is undefined for (one class only, mismatched lengths...). */
export class MetricError extends Error {
  override name = 'MetricError';
}

function checkLengths(a: ArrayLike<number>, b: ArrayLike<number>, what: string): void {
  if (a.length !== b.length) throw new MetricError(`${what}: ${a.length} labels but ${b.length} scores`);
}

/**
 * Area under the ROC curve for binary labels (1 positive, 0 negative). Computed as the
 * Mann-Whitney U statistic with average ranks for tied scores, which is exactly the trapezoidal
 * area scikit-learn's roc_auc_score computes (ties count one half).
 */
export function rocAuc(labels: ArrayLike<number>, scores: ArrayLike<number>): number {
  checkLengths(labels, scores, 'rocAuc');
  const order = Array.from({ length: scores.length }, (_, i) => i).sort((a, b) => scores[a]! - scores[b]!);
  let positives = 0;
  let rankSum = 0;
  for (let i = 0; i < order.length;) {
    let j = i;
    while (j + 1 < order.length && scores[order[j + 1]!] === scores[order[i]!]) j++;
    const averageRank = (i + j) / 2 + 1;
    for (let k = i; k <= j; k++) {
      if (labels[order[k]!] === 1) {
        positives++;
        rankSum += averageRank;
      } else if (labels[order[k]!] !== 0)
        throw new MetricError(`rocAuc: labels must be 0 or 1, got ${labels[order[k]!]}`);
    }
    i = j + 1;
  }
  const negatives = order.length - positives;
  if (positives === 0 || negatives === 0)
    throw new MetricError(
      `rocAuc is undefined with only one class present (${positives} positive, ${negatives} negative)`,
    );
  return (rankSum - (positives * (positives + 1)) / 2) / (positives * negatives);
}

/** ROC curve points (false positive rate, true positive rate), one per distinct score, from (0,0) to (1,1). */
export function rocCurve(labels: ArrayLike<number>, scores: ArrayLike<number>): { fpr: number[]; tpr: number[] } {
  checkLengths(labels, scores, 'rocCurve');
  const order = Array.from({ length: scores.length }, (_, i) => i).sort((a, b) => scores[b]! - scores[a]!);
  let positives = 0;
  for (let i = 0; i < labels.length; i++) positives += labels[i] === 1 ? 1 : 0;
  const negatives = labels.length - positives;
  const fpr = [0];
  const tpr = [0];
  let tp = 0;
  let fp = 0;
  for (let i = 0; i < order.length; i++) {
    if (labels[order[i]!] === 1) tp++;
    else fp++;
    if (i + 1 === order.length || scores[order[i + 1]!] !== scores[order[i]!]) {
      fpr.push(negatives ? fp / negatives : 0);
      tpr.push(positives ? tp / positives : 0);
    }
  }
  return { fpr, tpr };
}

/**
 * Per-class AUROC for multi-label (or one-vs-rest multi-class) scores, row-major [n, classes].
 * A class with only one label value in the set gets NaN and is left out of the macro mean
 * (scikit-learn would raise instead).
 */
export function aurocPerClass(
  labels: ArrayLike<number>,
  scores: ArrayLike<number>,
  classes: number,
): { perClass: number[]; macro: number } {
  checkLengths(labels, scores, 'aurocPerClass');
  const n = labels.length / classes;
  if (!Number.isInteger(n))
    throw new MetricError(`aurocPerClass: ${labels.length} values are not a multiple of ${classes} classes`);
  const perClass: number[] = [];
  for (let c = 0; c < classes; c++) {
    const y = new Float64Array(n);
    const s = new Float64Array(n);
    for (let i = 0; i < n; i++) {
      y[i] = labels[i * classes + c]!;
      s[i] = scores[i * classes + c]!;
    }
    let positives = 0;
    for (const v of y) positives += v;
    perClass.push(positives === 0 || positives === n ? NaN : rocAuc(y, s));
  }
  const defined = perClass.filter((v) => !Number.isNaN(v));
  return { perClass, macro: defined.length ? defined.reduce((a, b) => a + b, 0) / defined.length : NaN };
}

/** Fraction of rows whose highest score is the true class (multi-class, one-hot or index labels). */
export function accuracy(trueClass: ArrayLike<number>, scores: ArrayLike<number>, classes: number): number {
  const n = trueClass.length;
  if (scores.length !== n * classes)
    throw new MetricError(`accuracy: ${n} labels need ${n * classes} scores, got ${scores.length}`);
  if (n === 0) throw new MetricError('accuracy of an empty set');
  let correct = 0;
  for (let i = 0; i < n; i++) {
    let best = 0;
    for (let c = 1; c < classes; c++) if (scores[i * classes + c]! > scores[i * classes + best]!) best = c;
    correct += best === trueClass[i] ? 1 : 0;
  }
  return correct / n;
}

/** Fraction of binary decisions (score >= threshold) that match 0/1 labels, over every entry. */
export function binaryAccuracy(labels: ArrayLike<number>, scores: ArrayLike<number>, threshold = 0.5): number {
  checkLengths(labels, scores, 'binaryAccuracy');
  if (labels.length === 0) throw new MetricError('accuracy of an empty set');
  let correct = 0;
  for (let i = 0; i < labels.length; i++) correct += (scores[i]! >= threshold ? 1 : 0) === labels[i] ? 1 : 0;
  return correct / labels.length;
}

/** Dice = 2|A ∩ B| / (|A| + |B|) of two binary masks (nonzero = inside); 1 when both are empty. */
export function dice(predicted: ArrayLike<number>, truth: ArrayLike<number>): number {
  if (predicted.length !== truth.length)
    throw new MetricError(`dice: masks of ${predicted.length} and ${truth.length} pixels`);
  let both = 0;
  let sum = 0;
  for (let i = 0; i < truth.length; i++) {
    const p = predicted[i] ? 1 : 0;
    const t = truth[i] ? 1 : 0;
    both += p & t;
    sum += p + t;
  }
  return sum === 0 ? 1 : (2 * both) / sum;
}

/** Mean per-image Dice over a set of masks. */
export function meanDice(predicted: ArrayLike<number>[], truth: ArrayLike<number>[]): number {
  if (predicted.length !== truth.length || truth.length === 0)
    throw new MetricError(`meanDice: ${predicted.length} predicted and ${truth.length} true masks`);
  return predicted.reduce((sum, p, i) => sum + dice(p, truth[i]!), 0) / truth.length;
}

/** Intersection over union of two boxes (continuous coordinates, as pycocotools). */
export function iou(a: Box, b: Box): number {
  const w = Math.min(a.x + a.width, b.x + b.width) - Math.max(a.x, b.x);
  const h = Math.min(a.y + a.height, b.y + b.height) - Math.max(a.y, b.y);
  if (w <= 0 || h <= 0) return 0;
  const inter = w * h;
  return inter / (a.width * a.height + b.width * b.height - inter);
}

/** The IoU thresholds of the VLP detection protocol: 0.40, 0.45, ..., 0.75. */
export const MAP_IOU_THRESHOLDS = Array.from({ length: 8 }, (_, i) => Math.round((0.4 + 0.05 * i) * 100) / 100);

/**
 * Average precision of one class at one IoU threshold, COCO style: detections over all images
 * sorted by score, each matched greedily to the unmatched ground truth of its image with the
 * highest IoU >= threshold; precision made monotone, then sampled at the 101 recall points
 * 0, 0.01, ..., 1. NaN when the class has no ground truth.
 */
export function averagePrecision(detections: ScoredBox[][], truths: Box[][], label: number, threshold: number): number {
  if (detections.length !== truths.length)
    throw new MetricError(
      `averagePrecision: detections for ${detections.length} images, ground truth for ${truths.length}`,
    );
  const gts = truths.map((boxes) => boxes.filter((b) => b.label === label));
  const totalGt = gts.reduce((a, b) => a + b.length, 0);
  if (totalGt === 0) return NaN;
  const all = detections.flatMap((boxes, image) =>
    boxes.filter((b) => b.label === label).map((box) => ({ box, image })),
  );
  // Stable sort by descending score (pycocotools uses a stable mergesort too).
  all.sort((a, b) => b.box.score - a.box.score);
  const matched = gts.map((boxes) => new Array<boolean>(boxes.length).fill(false));
  const tp: number[] = [];
  for (const { box, image } of all) {
    let best = -1;
    let bestIou = threshold;
    gts[image]!.forEach((gt, k) => {
      if (matched[image]![k]) return;
      const overlap = iou(box, gt);
      if (overlap >= bestIou) {
        bestIou = overlap;
        best = k;
      }
    });
    if (best >= 0) matched[image]![best] = true;
    tp.push(best >= 0 ? 1 : 0);
  }
  const recall: number[] = [];
  const precision: number[] = [];
  let cumTp = 0;
  tp.forEach((t, i) => {
    cumTp += t;
    recall.push(cumTp / totalGt);
    precision.push(cumTp / (i + 1));
  });
  for (let i = precision.length - 2; i >= 0; i--) precision[i] = Math.max(precision[i]!, precision[i + 1]!);
  let sum = 0;
  for (let r = 0; r <= 100; r++) {
    // pycocotools' recall points are np.linspace(0, 1, 101) = r * 0.01; the first detection
    // whose recall reaches the point (np.searchsorted, side='left') gives its precision.
    const at = r * 0.01;
    const k = recall.findIndex((v) => v >= at);
    sum += k >= 0 ? precision[k]! : 0;
  }
  return sum / 101;
}

/** mAP over classes that have ground truth, at one IoU threshold. */
export function meanAveragePrecision(
  detections: ScoredBox[][],
  truths: Box[][],
  classes: number,
  threshold: number,
): number {
  const aps = Array.from({ length: classes }, (_, c) => averagePrecision(detections, truths, c, threshold)).filter(
    (v) => !Number.isNaN(v),
  );
  if (aps.length === 0) throw new MetricError('mAP is undefined without ground-truth boxes');
  return aps.reduce((a, b) => a + b, 0) / aps.length;
}

/** The detection protocol's two numbers: mAP averaged over IoU 0.40:0.05:0.75, and mAP at IoU 0.5. */
export function detectionMap(
  detections: ScoredBox[][],
  truths: Box[][],
  classes: number,
): { map_40_75: number; map_50: number } {
  const perThreshold = MAP_IOU_THRESHOLDS.map((t) => meanAveragePrecision(detections, truths, classes, t));
  return {
    map_40_75: perThreshold.reduce((a, b) => a + b, 0) / perThreshold.length,
    map_50: meanAveragePrecision(detections, truths, classes, 0.5),
  };
}

import { execFileSync } from 'node:child_process';
import * as path from 'node:path';
import type { Box, ScoredBox } from '@medsyn/evaluation-report';
import { seededRandom } from '@medsyn/random';
import {
  accuracy,
  aurocPerClass,
  averagePrecision,
  detectionMap,
  dice,
  iou,
  MAP_IOU_THRESHOLDS,
  MetricError,
  rocAuc,
} from '../src/metrics';

function referenceValues(cases: unknown): { auroc: number[]; macro: number[]; dice: number[] } {
  const out = execFileSync('/usr/bin/python3', [path.join(__dirname, 'python/metrics_reference.py')], {
    input: JSON.stringify(cases),
  });
  return JSON.parse(out.toString());
}

describe('metrics against independent references', () => {
  // Fixed fixtures, so the references see exactly what the metrics see.
  const rand = seededRandom(7);
  // Scores with many ties (quantised) and without, balanced and rare positives.
  const auroc = [
    { labels: [0, 0, 1, 1], scores: [0.1, 0.4, 0.35, 0.8] },
    { labels: [1, 0, 1, 0, 1], scores: [0.5, 0.5, 0.5, 0.5, 0.9] },
    ...[0.5, 0.1, 0.02].flatMap((rate) =>
      [true, false].map((quantised) => {
        const labels = Array.from({ length: 300 }, () => (rand() < rate ? 1 : 0));
        labels[0] = 1;
        labels[1] = 0;
        const scores = labels.map((y) => {
          const s = rand() + 0.3 * y;
          return quantised ? Math.round(s * 10) / 10 : s;
        });
        return { labels, scores };
      }),
    ),
  ];
  const classes = 4;
  const multilabel = [0, 1].map(() => {
    const labels = Array.from({ length: 80 * classes }, () => (rand() < 0.3 ? 1 : 0));
    return { labels, scores: labels.map((y) => rand() + 0.5 * y * rand()), classes };
  });
  const diceCases = [
    { pred: [0, 0, 0, 0], truth: [0, 0, 0, 0] },
    { pred: [1, 0, 0, 0], truth: [0, 0, 0, 0] },
    ...[0, 1, 2].map(() => {
      const truth = Array.from({ length: 32 * 32 }, () => (rand() < 0.4 ? 1 : 0));
      return { pred: truth.map((t) => (rand() < 0.2 ? 1 - t : t)), truth };
    }),
  ];
  const reference = referenceValues({ auroc, multilabel, dice: diceCases });

  it('AUROC equals scikit-learn roc_auc_score to 1e-6, with and without ties', () => {
    auroc.forEach((c, i) => expect(Math.abs(rocAuc(c.labels, c.scores) - reference.auroc[i]!)).toBeLessThan(1e-6));
  });

  it('macro AUROC over classes equals roc_auc_score(average="macro") to 1e-6', () => {
    multilabel.forEach((c, i) =>
      expect(Math.abs(aurocPerClass(c.labels, c.scores, c.classes).macro - reference.macro[i]!)).toBeLessThan(1e-6),
    );
  });

  it('Dice equals a direct numpy computation to 1e-6', () => {
    diceCases.forEach((c, i) => expect(Math.abs(dice(c.pred, c.truth) - reference.dice[i]!)).toBeLessThan(1e-6));
  });

  it('AUROC of one class only is an error naming the reason', () => {
    expect(() => rocAuc([1, 1], [0.2, 0.3])).toThrow(/only one class/);
    expect(() => rocAuc([1, 0], [0.2])).toThrow(MetricError);
  });

  it('accuracy counts arg-max hits', () => {
    expect(accuracy([0, 1, 2, 1], [0.9, 0.1, 0, 0.2, 0.7, 0.1, 0.3, 0.3, 0.4, 0.6, 0.3, 0.1], 3)).toBeCloseTo(0.75, 12);
  });
});

describe('COCO-style mAP on hand-computed cases', () => {
  const box = (x: number, y: number, width: number, height: number, label = 0): Box => ({ x, y, width, height, label });
  const det = (b: Box, score: number): ScoredBox => ({ ...b, score });

  it('IoU of overlapping, touching and nested boxes', () => {
    expect(iou(box(0, 0, 10, 10), box(5, 0, 10, 10))).toBeCloseTo(50 / 150, 12);
    expect(iou(box(0, 0, 10, 10), box(10, 0, 10, 10))).toBe(0);
    expect(iou(box(0, 0, 10, 10), box(2, 2, 5, 5))).toBeCloseTo(25 / 100, 12);
  });

  it('thresholds are 0.40:0.05:0.75', () => {
    expect(MAP_IOU_THRESHOLDS).toEqual([0.4, 0.45, 0.5, 0.55, 0.6, 0.65, 0.7, 0.75]);
  });

  it('a perfect detector has AP 1 at every threshold', () => {
    const truths = [[box(0, 0, 10, 10)], [box(5, 5, 20, 10), box(40, 40, 5, 5)]];
    const detections = truths.map((boxes) => boxes.map((b, i) => det(b, 0.9 - i * 0.1)));
    expect(detectionMap(detections, truths, 1)).toEqual({ map_40_75: 1, map_50: 1 });
  });

  it('a false positive ranked first: precision 1/2 at recall 1 -> AP = 0.5', () => {
    // Ranked: FP (0.9), TP (0.8). Precision after monotone envelope is 1/2 for every recall point
    // up to 1 (the TP reaches recall 1 at rank 2). All 101 points: 0.5.
    const truths = [[box(0, 0, 10, 10)]];
    const detections = [[det(box(50, 50, 10, 10), 0.9), det(box(0, 0, 10, 10), 0.8)]];
    expect(averagePrecision(detections, truths, 0, 0.5)).toBeCloseTo(0.5, 12);
  });

  it('half the objects found with a true positive first: AP = 51/101', () => {
    // Two objects, one matched at rank 1: recall 0.5 with precision 1 covers recall points
    // 0.00..0.50 (51 points), the rest score 0.
    const truths = [[box(0, 0, 10, 10), box(30, 30, 10, 10)]];
    const detections = [[det(box(0, 0, 10, 10), 0.9)]];
    expect(averagePrecision(detections, truths, 0, 0.5)).toBeCloseTo(51 / 101, 12);
  });

  it('an IoU of 0.6 counts at thresholds up to 0.6 only: mAP@[.40:.75] = 5/8', () => {
    // 10x10 truth, 10x12 detection sharing 10x10: IoU = 100/120 = 0.833; shift to get 0.6:
    // detection (0,0,10,10) vs truth (2.5,0,10,10): inter 7.5x10=75, union 125, IoU 0.6.
    const truths = [[box(2.5, 0, 10, 10)]];
    const detections = [[det(box(0, 0, 10, 10), 0.9)]];
    const result = detectionMap(detections, truths, 1);
    expect(result.map_50).toBe(1);
    expect(result.map_40_75).toBeCloseTo(5 / 8, 12); // 0.40..0.60 hit (5), 0.65..0.75 miss (3)
  });

  it('one detection cannot match two objects, and duplicates are false positives', () => {
    // Two detections on the same object (0.9, 0.8), one object elsewhere missed.
    // Ranks: TP (P=1, R=0.5), FP (P=0.5, R=0.5). Envelope: points 0..0.5 -> 1; above -> 0. AP = 51/101.
    const truths = [[box(0, 0, 10, 10), box(100, 100, 10, 10)]];
    const detections = [[det(box(0, 0, 10, 10), 0.9), det(box(0.5, 0, 10, 10), 0.8)]];
    expect(averagePrecision(detections, truths, 0, 0.5)).toBeCloseTo(51 / 101, 12);
  });

  it('classes average over those with ground truth; the wrong class does not match', () => {
    // Class 0: TP then FP -> envelope 1 up to recall 1, AP 1. Class 1: its object's only
    // detection is labelled 0 -> AP 0. Class 2 has no ground truth and is left out. mAP = 0.5.
    const truths = [[box(0, 0, 10, 10, 0), box(50, 50, 10, 10, 1)]];
    const detections = [[det(box(0, 0, 10, 10, 0), 0.9), det(box(50, 50, 10, 10, 0), 0.8)]];
    expect(detectionMap(detections, truths, 3).map_50).toBeCloseTo(0.5, 12);
  });

  it('precision interpolation: TP, FP, TP over two objects -> (51 + 50 * 2/3) / 101', () => {
    const truths = [[box(0, 0, 10, 10)], [box(0, 0, 10, 10)]];
    const detections = [[det(box(0, 0, 10, 10), 0.9), det(box(60, 60, 5, 5), 0.8)], [det(box(0, 0, 10, 10), 0.7)]];
    expect(averagePrecision(detections, truths, 0, 0.5)).toBeCloseTo((51 + 50 * (2 / 3)) / 101, 12);
  });
});

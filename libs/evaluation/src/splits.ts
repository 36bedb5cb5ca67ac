import { seededRandom, shuffled } from '@medsyn/random';
import type { DownstreamDataset, LabelledImage } from './downstream-datasets';

export interface Split {
  train: LabelledImage[];
  validation: LabelledImage[];
  test: LabelledImage[];
}

/** Ids per split: what results.json records so a result can be reproduced exactly. */
export function splitIds(split: Split): { train: string[]; validation: string[]; test: string[] } {
  return {
    train: split.train.map((i) => i.id),
    validation: split.validation.map((i) => i.id),
    test: split.test.map((i) => i.id),
  };
}

/**
 * Train / validation / test by patient (all images of a patient land in one split, so no patient
 * is both trained and tested on), seeded. A dataset with its own test list keeps it.
 */
export function splitByPatient(
  dataset: DownstreamDataset,
  images: LabelledImage[],
  options: { seed: number; validation?: number; test?: number },
): Split {
  const validationShare = options.validation ?? 0.15;
  const testShare = options.test ?? 0.25;
  const rand = seededRandom(options.seed);
  const fixedTest = dataset.testIds;
  const pool = fixedTest ? images.filter((i) => !fixedTest.has(i.id)) : images;
  const groups = new Map<string, LabelledImage[]>();
  for (const image of pool) {
    const key = image.patient ?? image.id;
    groups.set(key, [...(groups.get(key) ?? []), image]);
  }
  const patients = shuffled([...groups.keys()].sort(), rand);
  const total = pool.length;
  const split: Split = { train: [], validation: [], test: fixedTest ? images.filter((i) => fixedTest.has(i.id)) : [] };
  for (const patient of patients) {
    const group = groups.get(patient)!;
    if (!fixedTest && split.test.length < testShare * total) split.test.push(...group);
    else if (split.validation.length < validationShare * total) split.validation.push(...group);
    else split.train.push(...group);
  }
  return split;
}

/** The stratum of an image for label fractions: its class, or its first positive label ("none" if none). */
export function stratum(image: LabelledImage): string {
  if (image.classIndex !== undefined) return `class ${image.classIndex}`;
  if (image.labels) {
    const first = image.labels.indexOf(1);
    return first < 0 ? 'none' : `label ${first}`;
  }
  return 'all';
}

/**
 * A seeded, stratified share of the training images: within each stratum, round(fraction * n)
 * images (at least one), so 1 % of a dataset still sees every class.
 */
export function labelFraction(train: LabelledImage[], fraction: number, seed: number): LabelledImage[] {
  if (!(fraction > 0 && fraction <= 1)) throw new RangeError(`label fraction must be in (0, 1], got ${fraction}`);
  if (fraction === 1) return [...train];
  const rand = seededRandom(seed * 7919 + Math.round(fraction * 1e6));
  const strata = new Map<string, LabelledImage[]>();
  for (const image of train) strata.set(stratum(image), [...(strata.get(stratum(image)) ?? []), image]);
  const chosen = new Set<LabelledImage>();
  for (const key of [...strata.keys()].sort()) {
    const members = strata.get(key)!;
    for (const image of shuffled(members, rand).slice(0, Math.max(1, Math.round(fraction * members.length))))
      chosen.add(image);
  }
  // Keep the training order stable (the order of the split), whatever the strata.
  return train.filter((image) => chosen.has(image));
}

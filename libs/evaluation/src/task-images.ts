// Which images each task uses, their patient-grouped split, and the digest of what was evaluated:
// one place, so the evaluation and anything that must leave its test patients out agree.
import { createHash } from 'node:crypto';
import { sha256Hex } from '@medsyn/artifact-store';
import { EvaluationConfigError, type TaskName } from '@medsyn/config';
import { readDatasetFile, type DownstreamDataset, type LabelledImage } from './downstream-datasets';
import { splitByPatient, type Split } from './splits';

function subsample(images: LabelledImage[], max: number | undefined, seed: number): LabelledImage[] {
  if (!max || images.length <= max) return images;
  // Deterministic by id hash, independent of order: the same ids for the same seed.
  return [...images]
    .sort((a, b) => sha256Hex(`${seed}:${a.id}`).localeCompare(sha256Hex(`${seed}:${b.id}`)))
    .slice(0, max)
    .sort((a, b) => images.indexOf(a) - images.indexOf(b));
}

/** The images a task uses and their patient-grouped split: one place, so held-out sets agree. */
export function taskSplit(
  dataset: DownstreamDataset,
  task: TaskName,
  config: { max_images?: number; split_seed: number },
): { images: LabelledImage[]; split: Split } {
  const images = subsample(eligible(dataset, task), config.max_images, config.split_seed);
  if (images.length === 0)
    throw new EvaluationConfigError(
      'tasks',
      `the ${dataset.name} dataset has no images for ${task} (no ${task === 'segmentation' ? 'masks' : task === 'detection' ? 'boxes' : 'labels'})`,
    );
  const split = splitByPatient(dataset, images, { seed: config.split_seed });
  if (split.test.length === 0 || split.train.length === 0)
    throw new EvaluationConfigError('dataset', `too few images for a ${task} split (${images.length})`);
  return { images, split };
}

/**
 * Ids of every image of a patient that some task tests on (for this split seed and image cap):
 * what a generator or a pre-training run must leave out so that the evaluation never tests on
 * an image, or a patient, it was trained on.
 */
export function heldOutImageIds(
  dataset: DownstreamDataset,
  options: { tasks: TaskName[]; split_seed: number; max_images?: number },
): Set<string> {
  const patients = new Set<string>();
  for (const task of options.tasks)
    for (const image of taskSplit(dataset, task, options).split.test) patients.add(image.patient ?? image.id);
  return new Set(dataset.images.filter((i) => patients.has(i.patient ?? i.id)).map((i) => i.id));
}

/** Images each task can use: labels for classification and zero-shot, masks, boxes. */
function eligible(dataset: DownstreamDataset, task: TaskName): LabelledImage[] {
  switch (task) {
    case 'classification':
    case 'zero_shot':
      return dataset.images.filter((i) => i.labels !== undefined || (i.classIndex !== undefined && i.classIndex >= 0));
    case 'segmentation':
      return dataset.images.filter((i) => i.mask);
    case 'detection':
      return dataset.images.filter((i) => i.boxes && i.boxes.length > 0);
  }
}

/** Digest of the dataset as evaluated: each image's id, file sha256 and annotations. */
export function datasetDigest(images: LabelledImage[], root: string | undefined): string {
  const h = createHash('sha256');
  for (const image of [...images].sort((a, b) => a.id.localeCompare(b.id))) {
    const bytes = readDatasetFile(image.path, `image ${image.id}`, root);
    const mask =
      image.mask?.kind === 'png'
        ? sha256Hex(readDatasetFile(image.mask.path, `mask of ${image.id}`, root))
        : (image.mask?.runs ?? null);
    h.update(
      JSON.stringify([image.id, sha256Hex(bytes), image.labels ?? image.classIndex ?? null, image.boxes ?? null, mask]),
    );
  }
  return h.digest('hex');
}

/** Classification targets, [images, classes]: one-hot for multi-class, the 0/1 labels for multi-label. */
export function targetsOf(dataset: DownstreamDataset, images: LabelledImage[]): Float32Array {
  const C = dataset.classNames.length;
  const out = new Float32Array(images.length * C);
  images.forEach((image, i) => {
    if (dataset.kind === 'multi-class') out[i * C + image.classIndex!] = 1;
    else out.set(image.labels!, i * C);
  });
  return out;
}

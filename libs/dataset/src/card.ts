import { DatasetExportError } from './errors';

/** The format tag of `dataset.json`; an importer refuses any other. */
export const DATASET_FORMAT = 'medsyn.synthetic-dataset/v1';

/** Said of a fact the exporter did not state: never a guess dressed as a fact. */
export const UNSPECIFIED = 'unspecified';

/** What the caller states about the dataset; the card prints it as given. */
export interface CardFacts {
  /** Short name, also the default import folder (default `medsyn-synthetic-cxr`). */
  name?: string;
  description?: string;
  /** The image generator: its name, and where its weights are and their digest when known. */
  generator: { name: string; uri?: string; sha256?: string };
  /** Where the prompts come from, e.g. "IU X-ray impressions, de-identified by medsyn anonymize". */
  promptsSource?: string;
  /** How the reports were de-identified, and the recall of PHI measured for that mode (0..1) with where it was measured. */
  deid?: { mode?: string; recall?: number; recallSource?: string };
  /** The licence the publisher grants on the images and texts (default: unspecified). */
  licence?: string;
}

/** One tar shard as `dataset.json` lists it; `key` is relative to the bundle's folder. */
export interface ShardEntry {
  key: string;
  sha256: string;
  samples: number;
  size_bytes: number;
}

/** `dataset.json`: the dataset card, machine-readable (snake_case, like the rest of medsyn's files). */
export interface DatasetCard {
  format: typeof DATASET_FORMAT;
  name: string;
  description?: string;
  samples: number;
  /** Members of each sample in a shard: `<key>.<ext>`; WebDataset groups them by key. */
  members: { image: string[]; text: 'txt'; metadata: 'json' };
  shards: ShardEntry[];
  generator: { name: string; uri?: string; sha256?: string };
  prompts: { source: string };
  /** Where each `.txt` came from: the full anonymized report, or the generation prompt when no report was joined. */
  text: { anonymized_report: number; prompt: number };
  deidentification: { mode: string; recall?: number; recall_source?: string };
  licence: string;
  /** Pair-manifest lines left out, by reason (never their content). */
  skipped: Record<string, number>;
  /** Digests of the manifests the dataset was built from (lineage without the store's paths). */
  sources: { kind: 'pairs' | 'reports'; sha256: string }[];
}

const SHA256 = /^[0-9a-f]{64}$/;
const NAME = /^[A-Za-z0-9][A-Za-z0-9._-]{0,99}$/;

/** Checks the caller's facts and fills the honest defaults; errors name the field. */
export function checkCardFacts(
  facts: CardFacts,
): Required<Pick<CardFacts, 'name' | 'promptsSource' | 'licence'>> & CardFacts {
  if (!facts || typeof facts !== 'object') throw new DatasetExportError('card', 'is required');
  const name = facts.name ?? 'medsyn-synthetic-cxr';
  if (!NAME.test(name))
    throw new DatasetExportError(
      'card.name',
      'must be 1-100 letters, digits, ".", "_" or "-", starting with a letter or digit',
    );
  const generator = facts.generator;
  if (!generator || typeof generator.name !== 'string' || generator.name.trim() === '')
    throw new DatasetExportError('card.generator.name', 'is required (the model that made the images)');
  if (generator.sha256 !== undefined && !SHA256.test(generator.sha256))
    throw new DatasetExportError('card.generator.sha256', 'must be 64 lower-case hex digits');
  const recall = facts.deid?.recall;
  if (recall !== undefined) {
    if (typeof recall !== 'number' || !Number.isFinite(recall) || recall < 0 || recall > 1)
      throw new DatasetExportError('card.deid.recall', `must be a fraction in [0, 1], got ${recall}`);
    if (!facts.deid?.recallSource?.trim())
      throw new DatasetExportError('card.deid.recallSource', 'is required with a recall: say where it was measured');
  }
  const licence = facts.licence?.trim() || UNSPECIFIED;
  return { ...facts, name, licence, promptsSource: facts.promptsSource?.trim() || UNSPECIFIED };
}

/** What a reader should assume about the texts, from the de-identification mode stated. */
function textsCaveat(mode: string): string {
  if (mode === UNSPECIFIED)
    return 'The exporter did not say how the texts were de-identified: treat them as sensitive until you know.';
  if (mode === 'none') return 'The texts were not de-identified by medsyn: treat them as sensitive.';
  return 'Automatic de-identification misses some PHI (see its recall above): treat the texts as de-identified, not as public.';
}

const percent = (x: number) => `${(x * 100).toFixed(2)} %`;

/** The WebDataset URL pattern of the shards, brace-expanded as webdataset expects. */
export function shardPattern(shards: ShardEntry[]): string {
  if (shards.length === 1) return shards[0]!.key;
  const first = /^shard-(\d+)\.tar$/.exec(shards[0]!.key)?.[1];
  const last = /^shard-(\d+)\.tar$/.exec(shards[shards.length - 1]!.key)?.[1];
  return first && last ? `shard-{${first}..${last}}.tar` : shards.map((s) => s.key).join(' ');
}

/** `README.md`: the card for people, the same facts as `dataset.json`. */
export function renderReadme(card: DatasetCard): string {
  const g = card.generator;
  const d = card.deidentification;
  const skipped = Object.entries(card.skipped);
  return [
    `# ${card.name}`,
    '',
    card.description ??
      'Synthetic chest X-rays generated from de-identified radiology reports, paired with the reports they were generated from.',
    '',
    `Format: \`${card.format}\` (machine-readable card: \`dataset.json\`). Made with medsyn (\`medsyn dataset export\`).`,
    '',
    '## Facts',
    '',
    '| | |',
    '|---|---|',
    `| samples | ${card.samples} in ${card.shards.length} shard${card.shards.length === 1 ? '' : 's'} |`,
    `| generator | ${g.name}${g.uri ? ` (\`${g.uri}\`)` : ''} |`,
    `| generator model sha256 | ${g.sha256 ? `\`${g.sha256}\`` : UNSPECIFIED} |`,
    `| prompts from | ${card.prompts.source} |`,
    `| texts | ${card.text.anonymized_report} full anonymized reports, ${card.text.prompt} generation prompts only |`,
    `| de-identification | mode ${d.mode} |`,
    `| de-identification recall | ${d.recall !== undefined ? `${percent(d.recall)}, measured on ${d.recall_source}` : 'not stated'} |`,
    `| licence | ${card.licence === UNSPECIFIED ? 'unspecified: the publisher stated no licence; ask before reuse' : card.licence} |`,
    `| left out | ${skipped.length ? skipped.map(([reason, n]) => `${n} (${reason})`).join(', ') : 'none'} |`,
    '',
    `The images are synthetic: no pixel comes from a patient. ${textsCaveat(d.mode)}`,
    '',
    '## Shards',
    '',
    'WebDataset layout: each sample is `<key>.png` (or `.jpg`), `<key>.txt` (the report, UTF-8) and `<key>.json` (id, prompt, seed, image sha256, generator, labels when known), consecutive in a plain tar.',
    '',
    '| shard | samples | bytes | sha256 |',
    '|---|---|---|---|',
    ...card.shards.map((s) => `| \`${s.key}\` | ${s.samples} | ${s.size_bytes} | \`${s.sha256}\` |`),
    '',
    '## Loading',
    '',
    'With medsyn (checks every shard and image digest, writes the images and a pair manifest for pre-training):',
    '',
    '```sh',
    'npx medsyn dataset import --bundle path/to/this/folder --store file://./.medsyn',
    '# prints the manifest key: put it in the pre-training config under data.synthetic_pairs',
    '```',
    '',
    'With the `webdataset` Python package:',
    '',
    '```python',
    'import webdataset as wds',
    '',
    `dataset = wds.WebDataset("${shardPattern(card.shards)}", shardshuffle=False).decode("pil").to_tuple("png;jpg", "txt", "json")`,
    'for image, report, meta in dataset:',
    '    print(image.size, meta["id"], len(report))',
    '```',
    '',
  ].join('\n');
}

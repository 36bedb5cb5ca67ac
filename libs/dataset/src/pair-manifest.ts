// The pair manifest: JSON lines, one image and the report it goes with on each. The pipeline, the
// synthesizer and a dataset import write it; the pretrainer and a dataset export read it, all
// through the definitions here.
import { posix } from 'node:path';
import { InvalidKeyError, keyOf, readJsonl, type ArtifactStore, type DigestClaim } from '@medsyn/artifact-store';

/** One line of a pair manifest, with the field names every writer writes. */
export interface PairLine {
  /** The report's id: the images of one report share it. */
  id?: string;
  /** The image: a store URI, or a key relative to the manifest's folder. */
  image: string;
  /** The text that goes with the image: the report, or the prompt a synthesized image was made from. */
  report: string;
  /** The sha256 of the image's bytes, where the writer knows it (the synthesizer does). */
  image_sha256?: string;
  /** Report labels (what a classifier check would expect of the image). */
  labels?: Record<string, unknown>;
  // How the synthesizer made the image: its lines (and its per-image records) carry these.
  /** Decimal, an unsigned 64-bit integer. */
  seed?: string;
  /** False when the quality gate rejected the image: readers skip the line. */
  accepted?: boolean;
  attempts?: number;
  rejections?: Record<string, number>;
  prompt_truncated?: boolean;
}

/**
 * Spellings of older writers, still read so that manifests already in users' stores keep working;
 * nothing writes them any more. Before #19 the synthesizer wrote `image_uri`, `report_id` and
 * `prompt`, and the pretrainer documented `text` for the report.
 */
const OLDER_SPELLINGS = { image: ['image_uri'], id: ['report_id'], report: ['text', 'prompt'] } as const;
/** The fields each value is read from, today's spelling first. */
const SPELLINGS = {
  image: ['image', ...OLDER_SPELLINGS.image],
  id: ['id', ...OLDER_SPELLINGS.id],
  report: ['report', ...OLDER_SPELLINGS.report],
} as const;

function firstString(value: Record<string, unknown>, fields: readonly string[], blank: (s: string) => boolean) {
  for (const field of fields) {
    const v = value[field];
    if (typeof v === 'string' && !blank(v)) return v;
  }
  return undefined;
}

const isObject = (v: unknown): v is Record<string, unknown> => typeof v === 'object' && v !== null && !Array.isArray(v);

/** A manifest line's JSON value as a PairLine, or why it is none (never the line's content). */
export function parsePairLine(
  value: Record<string, unknown>,
): { ok: true; line: PairLine } | { ok: false; reason: string } {
  const image = firstString(value, SPELLINGS.image, (s) => s === '');
  if (!image) return { ok: false, reason: 'no image reference' };
  const report = firstString(value, SPELLINGS.report, (s) => s.trim() === '');
  if (!report) return { ok: false, reason: 'no report text' };
  const id = firstString(value, SPELLINGS.id, (s) => s === '');
  const { image_sha256, labels, seed, accepted, attempts, rejections, prompt_truncated } = value;
  // Fields set one by one (not spread): a manifest of 1,000 lines is read in every export and training run.
  const line: PairLine = id ? { id, image, report } : { image, report };
  if (typeof image_sha256 === 'string') line.image_sha256 = image_sha256;
  if (isObject(labels)) line.labels = labels;
  if (typeof seed === 'string' || typeof seed === 'number') line.seed = String(seed);
  if (typeof accepted === 'boolean') line.accepted = accepted;
  if (typeof attempts === 'number') line.attempts = attempts;
  if (isObject(rejections)) line.rejections = rejections as Record<string, number>;
  if (typeof prompt_truncated === 'boolean') line.prompt_truncated = prompt_truncated;
  return { ok: true, line };
}

/** One line of a pair manifest as read: a PairLine, or why it is none. */
export type ReadPairLine = { lineNumber: number } & ({ ok: true; line: PairLine } | { ok: false; reason: string });

/** Streams the lines of one pair manifest (a store key), parsed. */
export async function* readPairLines(store: ArtifactStore, key: string): AsyncIterable<ReadPairLine> {
  for await (const json of readJsonl<Record<string, unknown>>(store, key))
    yield { lineNumber: json.lineNumber, ...(json.ok ? parsePairLine(json.value) : { ok: false, reason: json.error }) };
}

/** Whether a pair's images are real or synthesized. */
export type PairSource = 'real' | 'synthetic';

/** One image-report pair as read from a manifest, its image resolved to a store key. */
export interface PairRecord {
  /** Position in the list of pairs read (stable: manifests in the order given, lines in file order). */
  index: number;
  source: PairSource;
  imageKey: string;
  report: string;
  /** Where it came from, for counting skipped records without naming their content. */
  manifest: string;
  lineNumber: number;
  /** The line's report id, where it has one (pairs of the same report share it). */
  id?: string;
  /** The line itself, when readPairManifests is asked to keep it (a dataset export copies its other fields). */
  line?: PairLine;
}

/** A record left out, and why; never the record's content (reports are PHI-adjacent). */
export interface SkippedRecord {
  manifest: string;
  lineNumber: number;
  reason: string;
}

export interface LoadedPairs {
  records: PairRecord[];
  skipped: SkippedRecord[];
  /** The manifests' URIs and sha256 (lineage). */
  inputs: DigestClaim[];
}

/** A pair manifest that is missing or outside the store; `field` names the option that gave it. */
export class PairManifestError extends Error {
  override readonly name = 'PairManifestError';
  constructor(
    readonly field: string,
    /** What is wrong, without the field. */
    readonly problem: string,
  ) {
    super(`${field}: ${problem}`);
  }
}

/** Manifests (store URIs or keys) of one source; `field(i)` names the option that gave manifest i. */
export interface PairManifestList {
  source: PairSource;
  manifests: string[];
  field: (i: number) => string;
}

/**
 * Reads pair manifests. Images are store URIs or keys relative to the manifest's folder.
 * Malformed lines, lines without an image or a report, images the synthesizer's quality gate
 * rejected (`accepted: false`) and images outside the store are skipped and counted; a manifest
 * that is missing or outside the store is a PairManifestError naming its field.
 */
export async function readPairManifests(
  store: ArtifactStore,
  lists: PairManifestList[],
  options: { keepLines?: boolean } = {},
): Promise<LoadedPairs> {
  const records: PairRecord[] = [];
  const skipped: SkippedRecord[] = [];
  const inputs: DigestClaim[] = [];
  for (const { source, manifests, field } of lists) {
    for (const [i, uri] of manifests.entries()) {
      let key: string;
      try {
        key = keyOf(store, uri);
      } catch (error) {
        if (error instanceof InvalidKeyError)
          throw new PairManifestError(field(i), `${uri} is not in the artifact store (${store.rootUri})`);
        throw error;
      }
      const ref = await store.stat(key);
      if (!ref) throw new PairManifestError(field(i), `manifest ${uri} not found`);
      inputs.push({ uri: ref.uri, sha256: ref.sha256 });
      const folder = posix.dirname(key);
      for await (const read of readPairLines(store, key)) {
        const skip = (reason: string) => skipped.push({ manifest: uri, lineNumber: read.lineNumber, reason });
        if (!read.ok) {
          skip(read.reason);
          continue;
        }
        const { line } = read;
        if (line.accepted === false) {
          skip('image rejected by the quality gate');
          continue;
        }
        let imageKey: string;
        try {
          imageKey = line.image.includes('://')
            ? store.keyOf(line.image)
            : posix.normalize(folder === '.' ? line.image : posix.join(folder, line.image));
        } catch {
          skip('image outside the artifact store');
          continue;
        }
        records.push({
          index: records.length,
          source,
          imageKey,
          report: line.report,
          manifest: uri,
          lineNumber: read.lineNumber,
          ...(line.id ? { id: line.id } : {}),
          ...(options.keepLines ? { line } : {}),
        });
      }
    }
  }
  return { records, skipped, inputs };
}

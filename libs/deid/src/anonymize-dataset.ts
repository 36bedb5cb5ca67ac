import { getBuffer, type ArtifactRef, type ArtifactStore } from '@medsyn/artifact-store';
import { InvalidReportError, type AnonymizedReport, type Anonymizer } from './anonymizer';
import { utf16ToCodePoint } from './offsets';
import { RECORD_ID_PATTERN, RECORD_ID_RULE, readRecords, type RecordFormat, type RecordLine } from './records';
import type { OutputMode } from './types';

/** An AnonymizeDataset job's request (a manifest of reports in, anonymized parts out), as persisted with the job so that a restart resumes it. */
export interface AnonymizeDatasetSpec {
  /** Store key of the input manifest. */
  inputKey: string;
  format: RecordFormat;
  idField: string;
  textField: string;
  /** Empty: every record shares one patient key. */
  patientKeyField: string;
  mode: OutputMode;
  omitSpans: boolean;
  /** Ends in "/". */
  outputPrefix: string;
  /** Input lines per part: a part is written whole or not at all, and skipped on resume. */
  partSize?: number;
}

export interface AnonymizeDatasetProgress {
  completed: number;
  failed: number;
  parts: number;
}

export interface AnonymizeDatasetResult extends AnonymizeDatasetProgress {
  anonymized: ArtifactRef;
  prompts: ArtifactRef;
  errors: ArtifactRef;
}

/** A record that could not be anonymized: its line, its id and why, never its text. */
export interface RecordError {
  line: number;
  id: string;
  code: string;
  field: string;
  message: string;
}

const DEFAULT_PART_SIZE = 1000;
const partKey = (prefix: string, kind: string, index: number) =>
  `${prefix}parts/${kind}-${String(index).padStart(6, '0')}.jsonl`;
const doneKey = (prefix: string, index: number) => `${prefix}parts/done-${String(index).padStart(6, '0')}.json`;
const jsonl = (records: unknown[]) => records.map((r) => `${JSON.stringify(r)}\n`).join('');

/** The anonymized manifest's line: the de-identified report, its sections, prompt and (unless omitted) spans in code points. */
export function manifestLine(result: AnonymizedReport, inputText: string, omitSpans: boolean): Record<string, unknown> {
  const toCodePoint = utf16ToCodePoint(inputText);
  return {
    id: result.id,
    text: result.text,
    sections: result.sections,
    prompt: {
      text: result.prompt.text,
      source_section: result.prompt.sourceSection,
      token_count: result.prompt.tokenCount,
      truncated: result.prompt.truncated,
    },
    ...(omitSpans
      ? {}
      : {
          spans: result.spans.map((s) => ({
            start: toCodePoint(s.start),
            end: toCodePoint(s.end),
            label: s.label,
            rule: s.rule,
          })),
        }),
  };
}

/**
 * De-identifies a manifest from the store into `<prefix>anonymized.jsonl`, `<prefix>prompts.jsonl`
 * (the synthesizer's input: id, prompt) and `<prefix>errors.jsonl`. Work is written in parts,
 * each part atomically and then marked done, so a run stopped anywhere (crash, shutdown, cancel)
 * and started again skips the finished parts and redoes only the unfinished one: no record is
 * lost or written twice. A bad record becomes a line of errors.jsonl and the rest goes on.
 */
export async function anonymizeDataset(
  store: ArtifactStore,
  spec: AnonymizeDatasetSpec,
  anonymizer: Anonymizer,
  options: { signal?: AbortSignal; onProgress?: (p: AnonymizeDatasetProgress) => void } = {},
): Promise<AnonymizeDatasetResult> {
  const partSize = spec.partSize ?? DEFAULT_PART_SIZE;
  const done = new Map<number, AnonymizeDatasetProgress>();
  for await (const object of store.list(`${spec.outputPrefix}parts/done-`)) {
    const index = Number(/done-(\d+)\.json$/.exec(object.key)?.[1]);
    if (Number.isInteger(index))
      done.set(index, JSON.parse((await getBuffer(store, object.key)).toString('utf8')) as AnonymizeDatasetProgress);
  }
  const progress: AnonymizeDatasetProgress = { completed: 0, failed: 0, parts: 0 };
  let part: RecordLine[] = [];
  let index = 0;

  const flush = async () => {
    const finished = done.get(index);
    const counts = finished ?? (await writePart(store, spec, anonymizer, index, part));
    progress.completed += counts.completed;
    progress.failed += counts.failed;
    progress.parts++;
    options.onProgress?.({ ...progress });
    part = [];
    index++;
  };

  for await (const line of readRecords(await store.get(spec.inputKey), spec.format)) {
    options.signal?.throwIfAborted();
    part.push(line);
    if (part.length === partSize) await flush();
  }
  if (part.length) await flush();
  options.signal?.throwIfAborted();

  const concat = (kind: string) =>
    store.put(
      `${spec.outputPrefix}${kind}.jsonl`,
      (async function* () {
        for (let i = 0; i < index; i++) yield* await store.get(partKey(spec.outputPrefix, kind, i));
      })(),
      { mediaType: 'application/x-ndjson' },
    );
  const [anonymized, prompts, errors] = [await concat('anonymized'), await concat('prompts'), await concat('errors')];
  return { ...progress, anonymized, prompts, errors };
}

async function anonymizeLine(
  spec: AnonymizeDatasetSpec,
  anonymizer: Anonymizer,
  line: RecordLine,
): Promise<{ result: AnonymizedReport; text: string } | { error: RecordError }> {
  if (!line.ok)
    return {
      error: {
        line: line.lineNumber,
        id: '',
        code: 'INVALID_ARGUMENT',
        field: 'line',
        message: `line ${line.lineNumber}: ${line.error}`,
      },
    };
  const id = String(line.record[spec.idField] ?? '');
  // A bad id is reported by line only: it may be the very PHI it should not carry.
  if (id && !RECORD_ID_PATTERN.test(id))
    return {
      error: {
        line: line.lineNumber,
        id: '',
        code: 'INVALID_ARGUMENT',
        field: spec.idField,
        message: `${spec.idField}: ${RECORD_ID_RULE}`,
      },
    };
  try {
    if (!id) throw new InvalidReportError(spec.idField, 'missing');
    const text = line.record[spec.textField];
    if (typeof text !== 'string')
      throw new InvalidReportError(spec.textField, text === undefined ? 'missing' : 'must be a string', id);
    const patientKey = spec.patientKeyField ? String(line.record[spec.patientKeyField] ?? '') : '';
    return { result: await anonymizer.anonymize({ id, text, patientKey }, spec.mode), text };
  } catch (error) {
    // Only our own errors carry a message; anything else may quote the record, so it is named, not shown.
    const known = error instanceof InvalidReportError;
    return {
      error: {
        line: line.lineNumber,
        id,
        code: known ? 'INVALID_ARGUMENT' : 'INTERNAL',
        field: known ? error.field : '',
        message: known ? error.message : `record could not be anonymized (${(error as Error)?.name ?? 'error'})`,
      },
    };
  }
}

async function writePart(
  store: ArtifactStore,
  spec: AnonymizeDatasetSpec,
  anonymizer: Anonymizer,
  index: number,
  lines: RecordLine[],
): Promise<AnonymizeDatasetProgress> {
  const anonymized: unknown[] = [];
  const prompts: unknown[] = [];
  const errors: RecordError[] = [];
  // All records of the part start at once, so a model batches them; results keep input order.
  const outcomes = await Promise.all(lines.map((line) => anonymizeLine(spec, anonymizer, line)));
  for (const outcome of outcomes) {
    if ('error' in outcome) {
      errors.push(outcome.error);
      continue;
    }
    anonymized.push(manifestLine(outcome.result, outcome.text, spec.omitSpans));
    const { id, prompt } = outcome.result;
    prompts.push({
      id,
      prompt: prompt.text,
      source_section: prompt.sourceSection,
      token_count: prompt.tokenCount,
      truncated: prompt.truncated,
    });
  }
  await store.put(partKey(spec.outputPrefix, 'anonymized', index), jsonl(anonymized), {
    mediaType: 'application/x-ndjson',
  });
  await store.put(partKey(spec.outputPrefix, 'prompts', index), jsonl(prompts), { mediaType: 'application/x-ndjson' });
  await store.put(partKey(spec.outputPrefix, 'errors', index), jsonl(errors), { mediaType: 'application/x-ndjson' });
  const counts = { completed: anonymized.length, failed: errors.length, parts: 1 };
  // Written last: a part counts as done only when all its files are there.
  await store.put(doneKey(spec.outputPrefix, index), JSON.stringify(counts), { mediaType: 'application/json' });
  return counts;
}

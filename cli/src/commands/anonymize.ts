import * as fs from 'node:fs';
import { once } from 'node:events';
import { Presets, SingleBar } from 'cli-progress';
import type { Command } from 'commander';
import {
  Anonymizer,
  createDetector,
  csvRow,
  DETECTOR_KINDS,
  guessRecordFormat,
  InvalidReportError,
  manifestLine,
  OUTPUT_MODES,
  readRecords,
  type DetectorKind,
  type OutputMode,
  type RecordFormat,
  type RecordLine,
} from '@medsyn/deid';
import type { RegisterCommand } from './index';

interface AnonymizeOptions {
  in: string;
  out: string;
  mode: string;
  format?: string;
  idField: string;
  textField: string;
  patientKeyField?: string;
  secretFile?: string;
  detector: string;
  taggerDir?: string;
  prompts?: string;
  errors?: string;
  spans: boolean;
  progress: boolean;
}

/** Where a record's report comes from: one field, or several composed as sections ("findings,impression"). */
function reportText(record: Record<string, unknown>, fields: string[]): string | undefined {
  if (fields.length === 1) {
    const value = record[fields[0]!];
    return typeof value === 'string' ? value : undefined;
  }
  const parts = fields
    .filter((f) => typeof record[f] === 'string' && (record[f] as string).trim())
    .map((f) => `${f.toUpperCase()}: ${(record[f] as string).trim()}`);
  return fields.some((f) => f in record) ? parts.join('\n') : undefined;
}

function surrogateSecret(options: AnonymizeOptions): string | undefined {
  if (options.secretFile) {
    if (!fs.existsSync(options.secretFile)) throw new Error(`--secret-file: ${options.secretFile} not found`);
    return fs.readFileSync(options.secretFile, 'utf8').trim();
  }
  return process.env.MEDSYN_SURROGATE_SECRET || undefined;
}

/** Writes to a file, waiting when the disk is slower than the anonymizer. */
async function write(stream: fs.WriteStream | undefined, text: string): Promise<void> {
  if (stream && !stream.write(text)) await once(stream, 'drain');
}

/** Records anonymized together: the tagger batches them into one model run. */
const CLI_BATCH = 64;
const close = (stream: fs.WriteStream | undefined) =>
  stream
    ? new Promise<void>((resolve, reject) => stream.end((error?: Error | null) => (error ? reject(error) : resolve())))
    : Promise.resolve();

export const registerAnonymize: RegisterCommand = (program: Command) => {
  program
    .command('anonymize')
    .description(
      'De-identify reports (HIPAA Safe Harbor) from a JSONL or CSV file, with sections and generator prompts, without the services',
    )
    .requiredOption('--in <file>', 'reports: JSONL (one object per line) or CSV with a header row')
    .requiredOption('--out <file>', 'anonymized reports: JSONL, or CSV when the name ends in .csv')
    .option('--mode <mode>', `how identifiers are replaced: ${OUTPUT_MODES.join(', ')}`, 'mask')
    .option('--format <jsonl|csv>', 'input format (default: from the file name)')
    .option('--id-field <name>', 'field or column holding the record id', 'id')
    .option(
      '--text-field <names>',
      'field or column holding the report; several (comma-separated) are joined as sections, e.g. indication,findings,impression',
      'text',
    )
    .option(
      '--patient-key-field <name>',
      'field or column with the patient key (surrogates and date shifts are consistent per key)',
    )
    .option('--secret-file <file>', 'surrogate mode: file holding the HMAC secret (or set MEDSYN_SURROGATE_SECRET)')
    .option('--detector <kind>', `what finds identifiers: ${DETECTOR_KINDS.join(', ')}`, 'rules+tagger')
    .option('--tagger-dir <dir>', 'a retrained PHI tagger (model.onnx, tagger.json); default: the shipped one')
    .option('--prompts <file>', 'also write the prompt manifest (JSONL: id, prompt) for medsyn synthesize')
    .option('--errors <file>', 'write the records that failed (line, id, reason; never their text) as JSONL')
    .option('--no-spans', 'leave the identifier spans out of the output')
    .option('--no-progress', 'no progress bar')
    .action(async (options: AnonymizeOptions) => {
      if (!OUTPUT_MODES.includes(options.mode as OutputMode))
        throw new Error(`--mode must be one of ${OUTPUT_MODES.join(', ')}`);
      if (!DETECTOR_KINDS.includes(options.detector as DetectorKind))
        throw new Error(`--detector must be one of ${DETECTOR_KINDS.join(', ')}`);
      if (options.format && options.format !== 'jsonl' && options.format !== 'csv')
        throw new Error('--format must be jsonl or csv');
      if (!fs.existsSync(options.in)) throw new Error(`--in: ${options.in} not found`);
      const mode = options.mode as OutputMode;
      const secret = surrogateSecret(options);
      if (mode === 'surrogate' && !secret)
        throw new Error('--mode surrogate needs a secret: --secret-file FILE or MEDSYN_SURROGATE_SECRET');
      if (secret !== undefined && Buffer.byteLength(secret) < 16)
        throw new Error('the surrogate secret must be at least 16 bytes');
      const format: RecordFormat = (options.format as RecordFormat | undefined) ?? guessRecordFormat(options.in);
      const csvOut = options.out.toLowerCase().endsWith('.csv');
      const textFields = options.textField
        .split(',')
        .map((f) => f.trim())
        .filter(Boolean);
      const anonymizer = new Anonymizer({
        surrogateSecret: secret,
        detector: createDetector(options.detector as DetectorKind, { taggerDir: options.taggerDir }),
      });

      const input = fs.createReadStream(options.in);
      const out = fs.createWriteStream(options.out);
      const prompts = options.prompts ? fs.createWriteStream(options.prompts) : undefined;
      const errors = options.errors ? fs.createWriteStream(options.errors) : undefined;
      const size = fs.statSync(options.in).size;
      const bar =
        options.progress && process.stderr.isTTY
          ? new SingleBar(
              {
                format: 'anonymize [{bar}] {percentage}% | {done} reports | {failed} failed | {rate} reports/s',
                hideCursor: true,
              },
              Presets.shades_classic,
            )
          : undefined;
      bar?.start(size, 0, { done: 0, failed: 0, rate: 0 });
      const startedAt = Date.now();
      let [done, failed] = [0, 0];
      if (csvOut)
        await write(
          out,
          csvRow([
            'id',
            'text',
            'prompt',
            'prompt_section',
            'prompt_tokens',
            'prompt_truncated',
            ...(options.spans ? ['spans'] : []),
          ]),
        );
      /** One record: the lines to write, or the error to list (never its text). */
      const anonymizeLine = async (line: RecordLine) => {
        const id = line.ok ? String(line.record[options.idField] ?? '') : '';
        try {
          if (!line.ok) throw new InvalidReportError('line', line.error);
          if (!id) throw new InvalidReportError(options.idField, 'missing');
          const text = reportText(line.record, textFields);
          if (text === undefined) throw new InvalidReportError(options.textField, 'missing');
          const patientKey = options.patientKeyField ? String(line.record[options.patientKeyField] ?? '') : '';
          const result = await anonymizer.anonymize({ id, text, patientKey }, mode);
          const record = manifestLine(result, text, !options.spans);
          const prompt = record.prompt as {
            text: string;
            source_section: string;
            token_count: number;
            truncated: boolean;
          };
          return {
            out: csvOut
              ? csvRow([
                  id,
                  result.text,
                  prompt.text,
                  prompt.source_section,
                  prompt.token_count,
                  prompt.truncated,
                  ...(options.spans ? [record.spans] : []),
                ])
              : `${JSON.stringify(record)}\n`,
            prompt: `${JSON.stringify({ id, prompt: prompt.text, source_section: prompt.source_section, token_count: prompt.token_count, truncated: prompt.truncated })}\n`,
          };
        } catch (error) {
          // Our errors name the field; any other may quote the record, so only its type is kept.
          const message =
            error instanceof InvalidReportError
              ? error.message
              : `could not be anonymized (${(error as Error)?.name ?? 'error'})`;
          return { error: `${JSON.stringify({ line: line.lineNumber, id, message })}\n` };
        }
      };
      // Records are anonymized a batch at a time (the tagger runs them together) and written in input order.
      const flush = async (batch: RecordLine[]) => {
        for (const outcome of await Promise.all(batch.map(anonymizeLine))) {
          if (outcome.error !== undefined) {
            failed++;
            await write(errors, outcome.error);
            continue;
          }
          await write(out, outcome.out);
          await write(prompts, outcome.prompt);
          done++;
        }
        bar?.update(input.bytesRead, {
          done,
          failed,
          rate: Math.round(done / Math.max(1e-3, (Date.now() - startedAt) / 1000)),
        });
      };
      try {
        let batch: RecordLine[] = [];
        for await (const line of readRecords(input, format)) {
          batch.push(line);
          if (batch.length < CLI_BATCH) continue;
          await flush(batch);
          batch = [];
        }
        await flush(batch);
      } finally {
        bar?.update(size, { done, failed });
        bar?.stop();
        await Promise.all([close(out), close(prompts), close(errors)]);
      }
      process.stdout.write(
        `anonymized ${done} reports (${mode}) into ${options.out}; ${failed} failed${failed && !options.errors ? ' (--errors FILE lists them)' : ''}\n`,
      );
    });
};

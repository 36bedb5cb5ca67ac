import * as fs from 'node:fs';
import * as grpc from '@grpc/grpc-js';
import { Counter } from 'prom-client';
import { z } from 'zod';
import {
  Anonymizer,
  anonymizeDataset,
  createDetector,
  DETECTOR_KINDS,
  guessRecordFormat,
  InvalidReportError,
  utf16ToCodePoint,
  type AnonymizedReport,
  type DatasetSpec,
  type OutputMode,
  type PhiLabel,
} from '@medsyn/deid';
import { JobFailure, type JobContext } from '@medsyn/jobs';
import { anonymizer as proto, common } from '@medsyn/proto';
import { ConfigError, invalidArgument, RpcError, toProtoJob, type ServiceContext, type ServiceSpec } from '@medsyn/service-kit';

/** Ports a local setup uses when GRPC_PORT / METRICS_PORT are not set. */
export const ANONYMIZER_DEFAULTS = { grpcPort: 50051, metricsPort: 9461 };

const DATASET_JOB = 'anonymize_dataset';
/** Stream reports being anonymized at once: enough for the tagger's batches, bounded memory. */
const STREAM_IN_FLIGHT = 256;

/** The anonymizer's own environment (docs/anonymizer.md). */
export const ANONYMIZER_CONFIG = {
  /** Key of the surrogate HMAC (>= 16 characters); surrogate mode is refused without it. */
  ANONYMIZER_SURROGATE_SECRET: z.string().optional(),
  /** ...or a file holding it (a mounted Kubernetes secret). */
  ANONYMIZER_SURROGATE_SECRET_FILE: z.string().min(1).optional(),
  /** rules+tagger (default): the rules and the learned PHI tagger; rules: the rules alone. */
  ANONYMIZER_DETECTOR: z.enum(DETECTOR_KINDS).default('rules+tagger'),
  /** A retrained tagger's folder (model.onnx, tagger.json); default: the one shipped with the service. */
  ANONYMIZER_TAGGER_DIR: z.string().min(1).optional(),
};

type Config = z.infer<z.ZodObject<typeof ANONYMIZER_CONFIG>>;

const MODES: Record<number, OutputMode | undefined> = {
  [proto.OutputMode.OUTPUT_MODE_UNSPECIFIED]: 'mask',
  [proto.OutputMode.OUTPUT_MODE_MASK]: 'mask',
  [proto.OutputMode.OUTPUT_MODE_TAG]: 'tag',
  [proto.OutputMode.OUTPUT_MODE_SURROGATE]: 'surrogate',
};
const LABELS: Record<PhiLabel, proto.PhiLabel> = {
  NAME: proto.PhiLabel.PHI_LABEL_NAME,
  DATE: proto.PhiLabel.PHI_LABEL_DATE,
  AGE: proto.PhiLabel.PHI_LABEL_AGE,
  CONTACT: proto.PhiLabel.PHI_LABEL_CONTACT,
  ID: proto.PhiLabel.PHI_LABEL_ID,
  LOCATION: proto.PhiLabel.PHI_LABEL_LOCATION,
};
const FORMATS: Record<number, DatasetSpec['format'] | undefined> = {
  [proto.ManifestFormat.MANIFEST_FORMAT_JSONL]: 'jsonl',
  [proto.ManifestFormat.MANIFEST_FORMAT_CSV]: 'csv',
};

/** The surrogate secret from the environment or its file; a bad one stops the service, never showing it. */
function surrogateSecret(config: Config): string | undefined {
  if (config.ANONYMIZER_SURROGATE_SECRET && config.ANONYMIZER_SURROGATE_SECRET_FILE) throw new ConfigError(['set ANONYMIZER_SURROGATE_SECRET or ANONYMIZER_SURROGATE_SECRET_FILE, not both']);
  let secret = config.ANONYMIZER_SURROGATE_SECRET;
  let name = 'ANONYMIZER_SURROGATE_SECRET';
  if (config.ANONYMIZER_SURROGATE_SECRET_FILE) {
    name = 'ANONYMIZER_SURROGATE_SECRET_FILE';
    try {
      secret = fs.readFileSync(config.ANONYMIZER_SURROGATE_SECRET_FILE, 'utf8').trim();
    } catch (error) {
      throw new ConfigError([`${name}: cannot read ${config.ANONYMIZER_SURROGATE_SECRET_FILE} (${(error as NodeJS.ErrnoException).code ?? 'error'})`]);
    }
  }
  if (secret !== undefined && Buffer.byteLength(secret) < 16) throw new ConfigError([`${name}: the secret must be at least 16 bytes (value hidden)`]);
  return secret;
}

function modeOf(options: proto.AnonymizeOptions | undefined, field: string, anonymizer: Anonymizer): OutputMode {
  const mode = MODES[options?.mode ?? 0];
  if (!mode) throw invalidArgument(`${field}.mode`, `unknown output mode ${options?.mode}`);
  if (mode === 'surrogate' && !anonymizer.hasSurrogates) throw new RpcError(grpc.status.FAILED_PRECONDITION, `${field}.mode: surrogate mode needs ANONYMIZER_SURROGATE_SECRET in the service configuration`, `${field}.mode`);
  return mode;
}

/** The domain result in its contract form: offsets become code points of the input text. */
function toProtoReport(result: AnonymizedReport, inputText: string, omitSpans: boolean): proto.AnonymizedReport {
  const toCodePoint = utf16ToCodePoint(inputText);
  return {
    id: result.id,
    text: result.text,
    spans: omitSpans ? [] : result.spans.map((s) => ({ start: toCodePoint(s.start), end: toCodePoint(s.end), label: LABELS[s.label], rule: s.rule })),
    sections: result.sections,
    prompt: { text: result.prompt.text, sourceSection: result.prompt.sourceSection, tokenCount: result.prompt.tokenCount, truncated: result.prompt.truncated },
  };
}

/** The anonymizer: HIPAA Safe Harbor de-identification of reports, sections and prompts. */
export function anonymizerService(env: NodeJS.ProcessEnv = process.env): ServiceSpec<typeof ANONYMIZER_CONFIG> {
  let anonymizer: Anonymizer | undefined;
  let ctxRef: ServiceContext<Config> | undefined;
  let metrics: { reports: Counter; spans: Counter; bytes: Counter } | undefined;

  /** Counts only: reports by outcome, identifiers by label, bytes; never text. */
  const count = (outcome: 'ok' | 'invalid' | 'failed', result?: AnonymizedReport, bytes = 0) => {
    metrics?.reports.inc({ outcome });
    metrics?.bytes.inc(bytes);
    if (result) for (const span of result.spans) metrics?.spans.inc({ label: span.label });
  };

  /** One report: the result, or an RpcError naming the field (never quoting the text). */
  const anonymizeOne = async (report: proto.Report | undefined, options: proto.AnonymizeOptions | undefined): Promise<proto.AnonymizedReport> => {
    if (!report) throw invalidArgument('report', 'is required');
    const mode = modeOf(options, 'options', anonymizer!);
    try {
      const result = await anonymizer!.anonymize({ id: report.id, text: report.text, patientKey: report.patientKey }, mode);
      count('ok', result, Buffer.byteLength(report.text));
      return toProtoReport(result, report.text, options?.omitSpans ?? false);
    } catch (error) {
      if (error instanceof InvalidReportError) {
        count('invalid');
        throw invalidArgument(`report.${error.field}`, error.message.slice(error.field.length + 2));
      }
      count('failed');
      throw error;
    }
  };

  const runDataset = async (job: JobContext) => {
    const ctx = ctxRef!;
    const stored = job.spec as DatasetSpec;
    const spec = { ...stored, outputPrefix: stored.outputPrefix || `anonymizer/${job.jobId}/` };
    if (!(await ctx.store.stat(spec.inputKey))) throw new JobFailure('input: the manifest is not in the store', 'NOT_FOUND', 'input.uri');
    job.report({ unit: 'reports', phase: 'anonymizing' });
    const result = await anonymizeDataset(ctx.store, spec, anonymizer!, {
      signal: job.signal,
      onProgress: (p) => job.report({ completed: p.completed + p.failed, failed: p.failed, metrics: { anonymized: p.completed, parts: p.parts } }),
    });
    job.addOutput(result.anonymized);
    job.addOutput(result.prompts);
    job.addOutput(result.errors);
    job.report({ phase: 'done', completed: result.completed + result.failed, total: result.completed + result.failed, failed: result.failed });
  };

  return {
    name: 'anonymizer',
    defaults: ANONYMIZER_DEFAULTS,
    env,
    extraConfig: ANONYMIZER_CONFIG,
    jobRunners: { [DATASET_JOB]: runDataset },
    async register(ctx) {
      ctxRef = ctx;
      const secret = surrogateSecret(ctx.config.service);
      const detector = createDetector(ctx.config.service.ANONYMIZER_DETECTOR, { taggerDir: ctx.config.service.ANONYMIZER_TAGGER_DIR });
      // The first call loads the tagger: a missing or broken model stops the service at start.
      await detector.detect('');
      anonymizer = new Anonymizer({ surrogateSecret: secret, detector });
      const { prefix, registry } = ctx.metrics;
      metrics = {
        reports: new Counter({ name: `${prefix}reports_total`, help: 'Reports processed, by outcome (ok, invalid, failed).', labelNames: ['outcome'], registers: [registry] }),
        spans: new Counter({ name: `${prefix}phi_spans_total`, help: 'Identifiers found, by label.', labelNames: ['label'], registers: [registry] }),
        bytes: new Counter({ name: `${prefix}report_text_bytes_total`, help: 'UTF-8 bytes of report text processed.', registers: [registry] }),
      };

      const implementation: proto.AnonymizerServiceServer = {
        anonymize: async (call, callback) => {
          callback(null, { result: await anonymizeOne(call.request.report, call.request.options) });
        },

        anonymizeStream: (call) => {
          let defaults: proto.AnonymizeOptions | undefined;
          // Reports in flight are anonymized concurrently (a model batches them) and answered in
          // the order they came; reading pauses while too many wait or the client is not reading.
          let answered: Promise<void> = Promise.resolve();
          let inFlight = 0;
          let clientFull = false;
          const throttle = () => (inFlight >= STREAM_IN_FLIGHT || clientFull ? call.pause() : call.resume());
          call.on('data', (request: proto.AnonymizeStreamRequest) => {
            defaults ??= request.options;
            const id = request.report?.id ?? '';
            const response = anonymizeOne(request.report, request.options ?? defaults).then(
              (result): proto.AnonymizeStreamResponse => ({ id, result, error: undefined }),
              (error): proto.AnonymizeStreamResponse => {
                const known = error instanceof RpcError;
                if (!known) ctx.logger.error({ recordId: id, err: { name: (error as Error)?.name } }, 'report failed');
                const detail: common.ErrorDetail = known
                  ? { code: grpc.status[error.code], message: error.message, field: error.field ?? '', recordId: id }
                  : { code: 'INTERNAL', message: 'internal error', field: '', recordId: id };
                return { id, result: undefined, error: detail };
              },
            );
            inFlight++;
            throttle();
            answered = answered.then(async () => {
              const message = await response;
              inFlight--;
              if (call.cancelled) return;
              if (!call.write(message)) {
                clientFull = true;
                call.once('drain', () => {
                  clientFull = false;
                  throttle();
                });
              }
              throttle();
            });
          });
          call.on('end', () => void answered.then(() => call.end()));
          call.on('error', () => undefined);
        },

        startAnonymizeDataset: async (call, callback) => {
          const request = call.request;
          if (!request.input?.uri) throw invalidArgument('input.uri', 'is required (the manifest in the artifact store)');
          const inputKey = ctx.store.keyOf(request.input.uri);
          const format = request.format === proto.ManifestFormat.MANIFEST_FORMAT_UNSPECIFIED ? guessRecordFormat(`${request.input.mediaType} ${request.input.uri}`) : FORMATS[request.format];
          if (!format) throw invalidArgument('format', `unknown manifest format ${request.format}`);
          const mode = modeOf(request.options, 'options', anonymizer!);
          if (request.outputPrefix && !request.outputPrefix.endsWith('/')) throw invalidArgument('output_prefix', 'must end with "/"');
          if (!(await ctx.store.stat(inputKey))) throw new RpcError(grpc.status.NOT_FOUND, 'input.uri: the manifest is not in the store', 'input.uri');
          const spec: DatasetSpec = {
            inputKey,
            format,
            idField: request.idField || 'id',
            textField: request.textField || 'text',
            patientKeyField: request.patientKeyField,
            mode,
            omitSpans: request.options?.omitSpans ?? false,
            outputPrefix: request.outputPrefix,
          };
          const record = await ctx.jobs.start({ requestId: request.requestId, kind: DATASET_JOB, spec });
          callback(null, { job: toProtoJob(record) });
        },
      };
      ctx.addService(proto.AnonymizerServiceService, implementation);
    },
  };
}

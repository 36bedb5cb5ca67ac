import * as fs from 'node:fs';
import { Worker, isMainThread, parentPort, workerData } from 'node:worker_threads';
import * as grpc from '@grpc/grpc-js';
import { Counter } from 'prom-client';
import { z } from 'zod';
import { verifyArtifactRef } from '@medsyn/artifact-store';
import {
  Anonymizer,
  anonymizeDataset,
  createDetector,
  RECORD_ID_PATTERN,
  DETECTOR_KINDS,
  guessRecordFormat,
  InvalidReportError,
  utf16ToCodePoint,
  type AnonymizedReport,
  type AnonymizeDatasetSpec,
  type DetectorKind,
  type ReportInput,
  type OutputMode,
  type PhiLabel,
} from '@medsyn/deid';
import { JobFailure, verifyJobInputs, type JobContext, type JobInput } from '@medsyn/jobs';
import { anonymizer as proto, common } from '@medsyn/proto';
import {
  ConfigError,
  invalidArgument,
  RpcError,
  toProtoJob,
  type ServiceContext,
  type ServiceSpec,
} from '@medsyn/service-kit';

/** Ports a local setup uses when GRPC_PORT / METRICS_PORT are not set. */
export const ANONYMIZER_DEFAULTS = { grpcPort: 50051, metricsPort: 9461 };

const DATASET_JOB = 'anonymize_dataset';

/** What a dataset job persists: the lib's spec and the input's digest as accepted (checked again when the job runs). */
type AnonymizeDatasetJobSpec = AnonymizeDatasetSpec & { inputs?: JobInput[] };

/** Stream reports being anonymized at once: enough for the tagger's batches, bounded memory. */
const STREAM_IN_FLIGHT = 256;
/** Record ids are echoed in results, stream answers, errors and logs: opaque keys only (RECORD_ID_PATTERN of @medsyn/deid). */
const RECORD_ID_RULE =
  'must be 1 to 128 characters of A-Z a-z 0-9 . _ : - (an opaque key, never PHI; the value is not shown)';
/**
 * Reports of at least this many UTF-8 bytes are anonymized on a worker thread: detecting PHI in a
 * long text takes seconds of CPU, which on the main thread would hold up health checks (an 8 MB
 * report blocked them for 2.4 s) and every other call.
 */
const WORKER_MIN_BYTES = 256 * 1024;

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
  /**
   * Largest report text accepted, in UTF-8 bytes (default 4 MiB). Anonymizing takes tens of times
   * the text in memory (a 31 MB report peaked at 1.12 GB; an 8 MB one, with its client in the same
   * process, at 0.85-1.1 GB), so the default stays well below the 1 GiB pod limit of deploy/k8s.
   */
  ANONYMIZER_MAX_REPORT_BYTES: z.coerce
    .number()
    .int('must be an integer')
    .positive('must be positive')
    .max(256 * 1024 * 1024, 'must be <= 268435456')
    .default(4 * 1024 * 1024),
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
const FORMATS: Record<number, AnonymizeDatasetSpec['format'] | undefined> = {
  [proto.ManifestFormat.MANIFEST_FORMAT_JSONL]: 'jsonl',
  [proto.ManifestFormat.MANIFEST_FORMAT_CSV]: 'csv',
};

/** The surrogate secret from the environment or its file; a bad one stops the service, never showing it. */
function surrogateSecret(config: Config): string | undefined {
  if (config.ANONYMIZER_SURROGATE_SECRET && config.ANONYMIZER_SURROGATE_SECRET_FILE)
    throw new ConfigError(['set ANONYMIZER_SURROGATE_SECRET or ANONYMIZER_SURROGATE_SECRET_FILE, not both']);
  let secret = config.ANONYMIZER_SURROGATE_SECRET;
  let name = 'ANONYMIZER_SURROGATE_SECRET';
  if (config.ANONYMIZER_SURROGATE_SECRET_FILE) {
    name = 'ANONYMIZER_SURROGATE_SECRET_FILE';
    try {
      secret = fs.readFileSync(config.ANONYMIZER_SURROGATE_SECRET_FILE, 'utf8').trim();
    } catch (error) {
      throw new ConfigError([
        `${name}: cannot read ${config.ANONYMIZER_SURROGATE_SECRET_FILE} (${(error as NodeJS.ErrnoException).code ?? 'error'})`,
      ]);
    }
  }
  if (secret !== undefined && Buffer.byteLength(secret) < 16)
    throw new ConfigError([`${name}: the secret must be at least 16 bytes (value hidden)`]);
  return secret;
}

function modeOf(options: proto.AnonymizeOptions | undefined, field: string, anonymizer: Anonymizer): OutputMode {
  const mode = MODES[options?.mode ?? 0];
  if (!mode) throw invalidArgument(`${field}.mode`, `unknown output mode ${options?.mode}`);
  if (mode === 'surrogate' && !anonymizer.hasSurrogates)
    throw new RpcError(
      grpc.status.FAILED_PRECONDITION,
      `${field}.mode: surrogate mode needs ANONYMIZER_SURROGATE_SECRET in the service configuration`,
      `${field}.mode`,
    );
  return mode;
}

/** The domain result in its contract form: offsets become code points of the input text. */
function toProtoReport(result: AnonymizedReport, inputText: string, omitSpans: boolean): proto.AnonymizedReport {
  const toCodePoint = utf16ToCodePoint(inputText);
  return {
    id: result.id,
    text: result.text,
    spans: omitSpans
      ? []
      : result.spans.map((s) => ({
          start: toCodePoint(s.start),
          end: toCodePoint(s.end),
          label: LABELS[s.label],
          rule: s.rule,
        })),
    sections: result.sections,
    prompt: {
      text: result.prompt.text,
      sourceSection: result.prompt.sourceSection,
      tokenCount: result.prompt.tokenCount,
      truncated: result.prompt.truncated,
    },
  };
}

/** What the long-report worker needs to build the same Anonymizer as the service. */
interface WorkerSetup {
  surrogateSecret?: string;
  detector: DetectorKind;
  taggerDir?: string;
  maxTextLength: number;
}
type WorkerReply = {
  seq: number;
  result?: AnonymizedReport;
  invalid?: { field: string; problem: string };
  failed?: string;
};

/**
 * One worker thread for long reports, started on first use and stopped after a minute idle. Long
 * reports queue there one at a time, which also bounds the memory they take together.
 */
class LongReportWorker {
  private worker?: Worker;
  private idle?: NodeJS.Timeout;
  private seq = 0;
  private readonly pending = new Map<number, { resolve: (r: AnonymizedReport) => void; reject: (e: Error) => void }>();

  constructor(private readonly setup: WorkerSetup) {}

  anonymize(report: ReportInput, mode: OutputMode): Promise<AnonymizedReport> {
    clearTimeout(this.idle);
    const worker = (this.worker ??= this.start());
    const seq = ++this.seq;
    return new Promise((resolve, reject) => {
      this.pending.set(seq, { resolve, reject });
      worker.postMessage({ seq, report, mode });
    });
  }

  private start(): Worker {
    const data = { medsynAnonymizerWorker: this.setup };
    // From the TypeScript sources (tests, tsx) the worker needs tsx's loader; built, it runs dist/service.js.
    // Its heap is capped: a report that needs more ends the worker (that request fails INTERNAL,
    // the next one starts a new worker) instead of the pod being killed for memory.
    const resourceLimits = { maxOldGenerationSizeMb: 768 };
    const worker = __filename.endsWith('.ts')
      ? new Worker(`require(${JSON.stringify(require.resolve('tsx/cjs'))}); require(${JSON.stringify(__filename)});`, {
          eval: true,
          workerData: data,
          resourceLimits,
          execArgv: ['--conditions=medsyn-source'],
        })
      : new Worker(__filename, { workerData: data, resourceLimits });
    worker.unref();
    worker.on('message', (reply: WorkerReply) => {
      const waiting = this.pending.get(reply.seq);
      this.pending.delete(reply.seq);
      if (!this.pending.size) this.idle = setTimeout(() => void this.stop(), 60_000).unref();
      if (!waiting) return;
      if (reply.result) waiting.resolve(reply.result);
      else if (reply.invalid) waiting.reject(new InvalidReportError(reply.invalid.field, reply.invalid.problem));
      else waiting.reject(new Error(`anonymizer worker failed (${reply.failed ?? 'error'})`));
    });
    const lost = (why: string) => {
      if (this.worker === worker) this.worker = undefined;
      for (const { reject } of this.pending.values()) reject(new Error(`anonymizer worker stopped (${why})`));
      this.pending.clear();
    };
    worker.on('error', (error) => lost(error.name));
    worker.on('exit', (code) => lost(`exit ${code}`));
    return worker;
  }

  async stop(): Promise<void> {
    clearTimeout(this.idle);
    const worker = this.worker;
    this.worker = undefined;
    await worker?.terminate();
  }
}

/** The worker thread's side: anonymizes what it is sent, answering errors by field only (never text). */
function serveLongReports(setup: WorkerSetup): void {
  const anonymizer = new Anonymizer({
    surrogateSecret: setup.surrogateSecret,
    detector: createDetector(setup.detector, { taggerDir: setup.taggerDir }),
    maxTextLength: setup.maxTextLength,
  });
  parentPort!.on('message', async ({ seq, report, mode }: { seq: number; report: ReportInput; mode: OutputMode }) => {
    try {
      parentPort!.postMessage({ seq, result: await anonymizer.anonymize(report, mode) } satisfies WorkerReply);
    } catch (error) {
      const invalid =
        error instanceof InvalidReportError
          ? { field: error.field, problem: error.message.slice(error.field.length + 2) }
          : undefined;
      parentPort!.postMessage({
        seq,
        invalid,
        failed: invalid ? undefined : ((error as Error)?.name ?? 'error'),
      } satisfies WorkerReply);
    }
  });
}

if (!isMainThread && (workerData as { medsynAnonymizerWorker?: WorkerSetup } | null)?.medsynAnonymizerWorker) {
  serveLongReports((workerData as { medsynAnonymizerWorker: WorkerSetup }).medsynAnonymizerWorker);
}

/** The anonymizer: HIPAA Safe Harbor de-identification of reports, sections and prompts. */
export function anonymizerService(env: NodeJS.ProcessEnv = process.env): ServiceSpec<typeof ANONYMIZER_CONFIG> {
  let anonymizer: Anonymizer | undefined;
  let longReports: LongReportWorker | undefined;
  let maxReportBytes = 0;
  let ctxRef: ServiceContext<Config> | undefined;
  let metrics: { reports: Counter; spans: Counter; bytes: Counter } | undefined;

  /** Counts only: reports by outcome, identifiers by label, bytes; never text. */
  const count = (outcome: 'ok' | 'invalid' | 'failed', result?: AnonymizedReport, bytes = 0) => {
    metrics?.reports.inc({ outcome });
    metrics?.bytes.inc(bytes);
    if (result) for (const span of result.spans) metrics?.spans.inc({ label: span.label });
  };

  /** One report: the result, or an RpcError naming the field (never quoting the text). */
  const anonymizeOne = async (
    report: proto.Report | undefined,
    options: proto.AnonymizeOptions | undefined,
  ): Promise<proto.AnonymizedReport> => {
    if (!report) throw invalidArgument('report', 'is required');
    if (report.id && !RECORD_ID_PATTERN.test(report.id)) throw invalidArgument('report.id', RECORD_ID_RULE);
    const bytes = Buffer.byteLength(report.text);
    if (bytes > maxReportBytes) {
      count('invalid');
      throw new RpcError(
        grpc.status.RESOURCE_EXHAUSTED,
        `report.text: ${bytes} bytes is more than this service accepts (ANONYMIZER_MAX_REPORT_BYTES=${maxReportBytes}); split the report`,
        'report.text',
      );
    }
    const mode = modeOf(options, 'options', anonymizer!);
    try {
      const input = { id: report.id, text: report.text, patientKey: report.patientKey };
      const result =
        bytes >= WORKER_MIN_BYTES
          ? await longReports!.anonymize(input, mode)
          : await anonymizer!.anonymize(input, mode);
      count('ok', result, bytes);
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
    const stored = job.spec as AnonymizeDatasetJobSpec;
    const spec = { ...stored, outputPrefix: stored.outputPrefix || `anonymizer/${job.jobId}/` };
    if (!(await ctx.store.stat(spec.inputKey)))
      throw new JobFailure('input: the manifest is not in the store', 'NOT_FOUND', 'input.uri');
    await verifyJobInputs(ctx.store, stored.inputs ?? []);
    job.report({ unit: 'reports', phase: 'anonymizing' });
    const result = await anonymizeDataset(ctx.store, spec, anonymizer!, {
      signal: job.signal,
      onProgress: (p) =>
        job.report({
          completed: p.completed + p.failed,
          failed: p.failed,
          metrics: { anonymized: p.completed, parts: p.parts },
        }),
    });
    job.addOutput(result.anonymized);
    job.addOutput(result.prompts);
    job.addOutput(result.errors);
    job.report({
      phase: 'done',
      completed: result.completed + result.failed,
      total: result.completed + result.failed,
      failed: result.failed,
    });
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
      const detector = createDetector(ctx.config.service.ANONYMIZER_DETECTOR, {
        taggerDir: ctx.config.service.ANONYMIZER_TAGGER_DIR,
      });
      // The first call loads the tagger: a missing or broken model stops the service at start.
      await detector.detect('');
      maxReportBytes = ctx.config.service.ANONYMIZER_MAX_REPORT_BYTES;
      anonymizer = new Anonymizer({ surrogateSecret: secret, detector, maxTextLength: maxReportBytes });
      longReports = new LongReportWorker({
        surrogateSecret: secret,
        detector: ctx.config.service.ANONYMIZER_DETECTOR,
        taggerDir: ctx.config.service.ANONYMIZER_TAGGER_DIR,
        maxTextLength: maxReportBytes,
      });
      ctx.onShutdown(() => longReports?.stop());
      const { prefix, registry } = ctx.metrics;
      metrics = {
        reports: new Counter({
          name: `${prefix}reports_total`,
          help: 'Reports processed, by outcome (ok, invalid, failed).',
          labelNames: ['outcome'],
          registers: [registry],
        }),
        spans: new Counter({
          name: `${prefix}phi_spans_total`,
          help: 'Identifiers found, by label.',
          labelNames: ['label'],
          registers: [registry],
        }),
        bytes: new Counter({
          name: `${prefix}report_text_bytes_total`,
          help: 'UTF-8 bytes of report text processed.',
          registers: [registry],
        }),
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
            // An id that breaks the rule is not echoed (the report's answer says why).
            const id = RECORD_ID_PATTERN.test(request.report?.id ?? '') ? request.report!.id : '';
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
              // One 'drain' listener at a time: answers finished while the client is full only queue.
              if (!call.write(message) && !clientFull) {
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
          if (!request.input?.uri)
            throw invalidArgument('input.uri', 'is required (the manifest in the artifact store)');
          const inputKey = ctx.store.keyOf(request.input.uri);
          const format =
            request.format === proto.ManifestFormat.MANIFEST_FORMAT_UNSPECIFIED
              ? guessRecordFormat(`${request.input.mediaType} ${request.input.uri}`)
              : FORMATS[request.format];
          if (!format) throw invalidArgument('format', `unknown manifest format ${request.format}`);
          const mode = modeOf(request.options, 'options', anonymizer!);
          if (request.outputPrefix && !request.outputPrefix.endsWith('/'))
            throw invalidArgument('output_prefix', 'must end with "/"');
          if ((request.idField || 'id') === (request.textField || 'text'))
            throw invalidArgument('id_field', 'must not be the text field (ids are copied into every output)');
          if (!(await ctx.store.stat(inputKey)))
            throw new RpcError(grpc.status.NOT_FOUND, 'input.uri: the manifest is not in the store', 'input.uri');
          await verifyArtifactRef(ctx.store, request.input, 'input', inputKey);
          const spec: AnonymizeDatasetJobSpec = {
            inputKey,
            format,
            idField: request.idField || 'id',
            textField: request.textField || 'text',
            patientKeyField: request.patientKeyField,
            mode,
            omitSpans: request.options?.omitSpans ?? false,
            outputPrefix: request.outputPrefix,
            ...(request.input.sha256
              ? { inputs: [{ field: 'input', uri: request.input.uri, sha256: request.input.sha256, key: inputKey }] }
              : {}),
          };
          const record = await ctx.jobs.start({
            requestId: request.requestId,
            kind: DATASET_JOB,
            spec,
            outputPrefix: request.outputPrefix || undefined,
          });
          callback(null, { job: toProtoJob(record) });
        },
      };
      ctx.addService(proto.AnonymizerServiceService, implementation);
    },
  };
}

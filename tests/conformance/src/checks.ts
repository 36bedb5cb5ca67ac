import * as assert from 'node:assert/strict';
import * as grpc from '@grpc/grpc-js';
import { anonymizer, evaluator, jobs, pretrainer, synthesizer } from '@medsyn/proto';
import { healthCheck, reflectionFileContainingSymbol, reflectionListServices } from '@medsyn/testing';

/** The four medsyn service contracts, by the name the CLI takes. */
export const CONTRACTS = {
  anonymizer: { service: 'medsyn.anonymizer.v1.AnonymizerService', Client: anonymizer.AnonymizerServiceClient },
  synthesizer: { service: 'medsyn.synthesizer.v1.SynthesizerService', Client: synthesizer.SynthesizerServiceClient },
  pretrainer: { service: 'medsyn.pretrainer.v1.PretrainerService', Client: pretrainer.PretrainerServiceClient },
  evaluator: { service: 'medsyn.evaluator.v1.EvaluatorService', Client: evaluator.EvaluatorServiceClient },
} as const;

export type ContractName = keyof typeof CONTRACTS;

/** What a check gets: where the implementation listens and how to reach it (TLS, a bearer token: see clientSecurity of @medsyn/pipeline). */
export interface Target {
  address: string;
  credentials: grpc.ChannelCredentials;
  options?: grpc.ClientOptions;
}

/** One behaviour the contract requires; run() throws (an AssertionError or a gRPC error) when it is not met. */
export interface ConformanceCheck {
  name: string;
  run(target: Target): Promise<void>;
}

const DEADLINE_MS = 10000;

type Callback = (error: grpc.ServiceError | null, response: unknown) => void;

/** A unary call through a generated client, with a deadline. */
export function unary<T>(client: grpc.Client, method: string, request: unknown): Promise<T> {
  const call = (
    client as unknown as Record<string, (r: unknown, m: grpc.Metadata, o: grpc.CallOptions, cb: Callback) => void>
  )[method]!;
  return new Promise((resolve, reject) =>
    call.call(client, request, new grpc.Metadata(), { deadline: Date.now() + DEADLINE_MS }, (error, response) =>
      error ? reject(error) : resolve(response as T),
    ),
  );
}

/** The status a call must end with: its code, and text its message must contain. */
export async function rejectsWith(
  call: Promise<unknown>,
  code: grpc.status,
  detailsContain: string[] = [],
): Promise<grpc.ServiceError> {
  let error: grpc.ServiceError | undefined;
  try {
    await call;
  } catch (e) {
    error = e as grpc.ServiceError;
  }
  assert.ok(error, `expected ${grpc.status[code]}, the call succeeded`);
  assert.equal(
    grpc.status[error.code],
    grpc.status[code],
    `expected ${grpc.status[code]}, got ${grpc.status[error.code]}: ${error.details}`,
  );
  for (const text of detailsContain)
    assert.ok(
      error.details.includes(text),
      `${grpc.status[code]} message ${JSON.stringify(error.details)} does not name ${JSON.stringify(text)}`,
    );
  return error;
}

/** Reads a server stream to its end. */
export function readStream<T>(stream: grpc.ClientReadableStream<T>): Promise<T[]> {
  return new Promise((resolve, reject) => {
    const items: T[] = [];
    stream.on('data', (item: T) => items.push(item));
    stream.on('error', reject);
    stream.on('end', () => resolve(items));
  });
}

/** With a client of the given constructor for the duration of fn. */
export async function withClient<C extends grpc.Client, T>(
  Client: new (address: string, credentials: grpc.ChannelCredentials, options?: grpc.ClientOptions) => C,
  target: Target,
  fn: (client: C) => Promise<T>,
): Promise<T> {
  const client = new Client(target.address, target.credentials, target.options);
  try {
    return await fn(client);
  } finally {
    client.close();
  }
}

const MISSING_JOB = 'conformance-no-such-job';

/** The behaviour every medsyn service shares: health, reflection, JobService. */
function sharedChecks(contract: ContractName): ConformanceCheck[] {
  const { service } = CONTRACTS[contract];
  return [
    {
      name: 'answers the standard health check, for the server, its contract and JobService',
      async run(target) {
        for (const name of ['', service, 'medsyn.jobs.v1.JobService'])
          assert.equal(
            await healthCheck(target.address, name, target.credentials),
            'SERVING',
            `health of ${JSON.stringify(name)}`,
          );
      },
    },
    {
      name: 'lists its contract, JobService and Health through server reflection, and describes them',
      async run(target) {
        const listed = await reflectionListServices(target.address, target.credentials);
        for (const name of ['grpc.health.v1.Health', service, 'medsyn.jobs.v1.JobService'])
          assert.ok(listed.includes(name), `reflection lists ${listed.join(', ')}, not ${name}`);
        assert.ok(
          (await reflectionFileContainingSymbol(target.address, service, target.credentials)) > 0,
          `no file descriptor for ${service}`,
        );
      },
    },
    {
      name: 'JobService: GetJob, WatchJob and CancelJob answer NOT_FOUND naming an unknown job id',
      async run(target) {
        await withClient(jobs.JobServiceClient, target, async (client) => {
          await rejectsWith(unary(client, 'getJob', { jobId: MISSING_JOB }), grpc.status.NOT_FOUND, [MISSING_JOB]);
          await rejectsWith(unary(client, 'cancelJob', { jobId: MISSING_JOB }), grpc.status.NOT_FOUND, [MISSING_JOB]);
          await rejectsWith(
            readStream(client.watchJob({ jobId: MISSING_JOB }, { deadline: Date.now() + DEADLINE_MS })),
            grpc.status.NOT_FOUND,
            [MISSING_JOB],
          );
        });
      },
    },
    {
      name: 'JobService: ListJobs pages through jobs newest first, every job readable with GetJob',
      async run(target) {
        await withClient(jobs.JobServiceClient, target, async (client) => {
          const all: jobs.ListJobsResponse['jobs'] = [];
          let pageToken = '';
          for (let page = 0; page < 100; page++) {
            const response = await unary<jobs.ListJobsResponse>(client, 'listJobs', { pageSize: 2, pageToken });
            assert.ok(response.jobs.length <= 2, `page_size 2 returned ${response.jobs.length} jobs`);
            all.push(...response.jobs);
            pageToken = response.nextPageToken;
            if (!pageToken) break;
            assert.equal(response.jobs.length, 2, 'a page before the last one is full');
          }
          assert.equal(pageToken, '', 'ListJobs kept returning pages');
          assert.equal(new Set(all.map((j) => j.jobId)).size, all.length, 'a job appears on two pages');
          for (let i = 1; i < all.length; i++)
            assert.ok(all[i - 1]!.createTime! >= all[i]!.createTime!, 'jobs are not newest first');
          for (const job of all.slice(0, 5))
            assert.equal(
              (await unary<jobs.GetJobResponse>(client, 'getJob', { jobId: job.jobId })).job!.jobId,
              job.jobId,
            );
        });
      },
    },
    {
      name: 'JobService: ListJobs answers INVALID_ARGUMENT naming page_token for a token it did not issue',
      async run(target) {
        await withClient(jobs.JobServiceClient, target, async (client) => {
          await rejectsWith(
            unary(client, 'listJobs', { pageSize: 10, pageToken: 'not-a-token-of-yours' }),
            grpc.status.INVALID_ARGUMENT,
            ['page_token'],
          );
        });
      },
    },
  ];
}

/** A made-up report (no real person): identifiers of four kinds around clinical text. */
const SYNTHETIC_REPORT = [
  'EXAMINATION: Chest PA and lateral, 03/14/2021.',
  'INDICATION: Cough. Patient John Smith, MRN 12345678, phone 555-867-5309.',
  'FINDINGS: No focal consolidation, pleural effusion or pneumothorax.',
  'IMPRESSION: No acute cardiopulmonary process.',
].join('\n');
const SYNTHETIC_IDENTIFIERS: Array<[string, anonymizer.PhiLabel]> = [
  ['03/14/2021', anonymizer.PhiLabel.PHI_LABEL_DATE],
  ['John Smith', anonymizer.PhiLabel.PHI_LABEL_NAME],
  ['12345678', anonymizer.PhiLabel.PHI_LABEL_ID],
  ['555-867-5309', anonymizer.PhiLabel.PHI_LABEL_CONTACT],
];

/**
 * Behaviour of each contract's own RPCs, added as each service's implementation lands (the
 * shared checks hold for every implementation already).
 */
const CONTRACT_CHECKS: Record<ContractName, ConformanceCheck[]> = {
  anonymizer: [
    {
      name: 'Anonymize masks the identifiers of a (synthetic) report, keeps its clinical text, marks the spans and builds the prompt from IMPRESSION',
      async run(target) {
        await withClient(anonymizer.AnonymizerServiceClient, target, async (client) => {
          const { result } = await unary<anonymizer.AnonymizeResponse>(
            client,
            'anonymize',
            anonymizer.AnonymizeRequest.fromPartial({
              report: { id: 'conformance-1', text: SYNTHETIC_REPORT },
              options: { mode: anonymizer.OutputMode.OUTPUT_MODE_MASK },
            }),
          );
          assert.equal(result?.id, 'conformance-1');
          for (const [identifier, label] of SYNTHETIC_IDENTIFIERS) {
            assert.ok(!result!.text.includes(identifier), `${anonymizer.PhiLabel[label]} left in the text`);
            // Spans count Unicode code points.
            const at = [...SYNTHETIC_REPORT.slice(0, SYNTHETIC_REPORT.indexOf(identifier))].length;
            assert.ok(
              result!.spans.some((s) => s.label === label && s.start <= at && s.end >= at + identifier.length),
              `no ${anonymizer.PhiLabel[label]} span covers it`,
            );
          }
          assert.ok(result!.text.includes('___'), 'MASK mode writes identifiers as ___');
          for (const clinical of [
            'No focal consolidation, pleural effusion or pneumothorax.',
            'No acute cardiopulmonary process.',
          ])
            assert.ok(result!.text.includes(clinical), `clinical text lost: ${clinical}`);
          const sections = result!.sections.map((section) => section.name);
          assert.ok(
            sections.includes('FINDINGS') && sections.includes('IMPRESSION'),
            `sections ${sections.join(', ')}`,
          );
          assert.equal(result!.prompt?.sourceSection, 'IMPRESSION');
          assert.ok(
            result!.prompt!.text.includes('No acute cardiopulmonary process'),
            'the prompt is not the impression',
          );
          assert.ok(
            result!.prompt!.tokenCount > 0 && result!.prompt!.tokenCount <= 77,
            `token_count ${result!.prompt!.tokenCount}`,
          );
        });
      },
    },
    {
      name: 'Anonymize answers INVALID_ARGUMENT naming report when it is missing, and options.mode for an unknown mode',
      async run(target) {
        await withClient(anonymizer.AnonymizerServiceClient, target, async (client) => {
          await rejectsWith(
            unary(client, 'anonymize', anonymizer.AnonymizeRequest.fromPartial({})),
            grpc.status.INVALID_ARGUMENT,
            ['report'],
          );
          const badMode = anonymizer.AnonymizeRequest.fromPartial({
            report: { id: 'conformance-2', text: 'FINDINGS: Normal.' },
            options: { mode: 99 as anonymizer.OutputMode },
          });
          await rejectsWith(unary(client, 'anonymize', badMode), grpc.status.INVALID_ARGUMENT, ['options.mode']);
        });
      },
    },
    {
      name: 'AnonymizeStream answers in request order, one response per report, a failed report naming its field without ending the stream',
      async run(target) {
        await withClient(anonymizer.AnonymizerServiceClient, target, async (client) => {
          const call = client.anonymizeStream({ deadline: Date.now() + DEADLINE_MS });
          const responses = readStream(
            call as unknown as grpc.ClientReadableStream<anonymizer.AnonymizeStreamResponse>,
          );
          const mask = { mode: anonymizer.OutputMode.OUTPUT_MODE_MASK };
          call.write(
            anonymizer.AnonymizeStreamRequest.fromPartial({
              report: { id: 's1', text: SYNTHETIC_REPORT },
              options: mask,
            }),
          );
          call.write(
            anonymizer.AnonymizeStreamRequest.fromPartial({
              report: { id: 's2', text: 'FINDINGS: Normal.' },
              options: { mode: 99 as anonymizer.OutputMode },
            }),
          );
          call.write(
            anonymizer.AnonymizeStreamRequest.fromPartial({
              report: { id: 's3', text: 'IMPRESSION: Normal chest.' },
              options: mask,
            }),
          );
          call.end();
          const all = await responses;
          assert.deepEqual(
            all.map((r) => r.id),
            ['s1', 's2', 's3'],
          );
          assert.ok(
            all[0]!.result && !all[0]!.error && all[2]!.result && !all[2]!.error,
            'good reports were not anonymized',
          );
          assert.equal(all[1]!.result, undefined);
          assert.equal(all[1]!.error?.code, 'INVALID_ARGUMENT');
          assert.equal(all[1]!.error?.field, 'options.mode');
        });
      },
    },
    {
      name: 'StartAnonymizeDataset answers INVALID_ARGUMENT naming input.uri without a manifest',
      async run(target) {
        await withClient(anonymizer.AnonymizerServiceClient, target, async (client) => {
          await rejectsWith(
            unary(
              client,
              'startAnonymizeDataset',
              anonymizer.StartAnonymizeDatasetRequest.fromPartial({ requestId: 'conformance-no-input' }),
            ),
            grpc.status.INVALID_ARGUMENT,
            ['input.uri'],
          );
        });
      },
    },
  ],
  synthesizer: [
    {
      name: 'GetModelInfo describes the loaded model: architecture, UNet dtype, prompt token limit, execution provider, defaults',
      async run(target) {
        await withClient(synthesizer.SynthesizerServiceClient, target, async (client) => {
          const info = await unary<synthesizer.GetModelInfoResponse>(client, 'getModelInfo', {});
          assert.ok(info.architecture, 'architecture is empty');
          assert.ok(['float32', 'float16'].includes(info.unetDtype), `unet_dtype ${JSON.stringify(info.unetDtype)}`);
          assert.ok(info.maxPromptTokens > 0, 'max_prompt_tokens is 0');
          assert.ok(
            ['cpu', 'cuda', 'webgpu'].includes(info.executionProvider),
            `execution_provider ${JSON.stringify(info.executionProvider)}`,
          );
          const { numInferenceSteps = 0, height = 0, width = 0 } = info.defaults ?? {};
          assert.ok(
            numInferenceSteps >= 1 && height > 0 && height % 8 === 0 && width > 0 && width % 8 === 0,
            `defaults ${JSON.stringify(info.defaults)}`,
          );
        });
      },
    },
    {
      name: 'Synthesize answers every request by its id on one stream: a PNG for a good prompt, an error naming the field for a bad one',
      async run(target) {
        await withClient(synthesizer.SynthesizerServiceClient, target, async (client) => {
          const call = client.synthesize({ deadline: Date.now() + 120000 });
          const responses = readStream(call as unknown as grpc.ClientReadableStream<synthesizer.SynthesizeResponse>);
          // Small and few steps: cheap on any model; the gate may still reject such an image.
          const good = { numInferenceSteps: 2, height: 64, width: 64, seed: 7, maxAttempts: 1 };
          call.write(
            synthesizer.SynthesizeRequest.fromPartial({
              id: 'conformance-bad',
              prompt: 'Frontal chest radiograph.',
              params: { ...good, maxAttempts: 0 },
            }),
          );
          call.write(
            synthesizer.SynthesizeRequest.fromPartial({
              id: 'conformance-good',
              prompt: 'Frontal chest radiograph, no acute findings.',
              params: good,
            }),
          );
          call.end();
          const byId = new Map((await responses).map((r) => [r.id, r]));
          assert.deepEqual([...byId.keys()].sort(), ['conformance-bad', 'conformance-good']);
          const bad = byId.get('conformance-bad')!;
          assert.equal(bad.error?.code, 'INVALID_ARGUMENT', `bad request answered ${JSON.stringify(bad.error)}`);
          assert.equal(bad.error?.field, 'params.max_attempts');
          const ok = byId.get('conformance-good')!;
          if (ok.error) {
            assert.equal(ok.quality?.accepted, false, `good request failed: ${JSON.stringify(ok.error)}`);
          } else {
            assert.deepEqual(
              [...ok.image.subarray(0, 8)],
              [0x89, 0x50, 0x4e, 0x47, 0x0d, 0x0a, 0x1a, 0x0a],
              'image is not a PNG',
            );
            assert.equal(ok.quality?.accepted, true);
            assert.equal(ok.seed, 7, 'the seed asked for is not the seed returned');
          }
        });
      },
    },
    {
      name: 'StartSynthesizeDataset answers INVALID_ARGUMENT naming prompts.uri without a prompt manifest',
      async run(target) {
        await withClient(synthesizer.SynthesizerServiceClient, target, async (client) => {
          await rejectsWith(
            unary(
              client,
              'startSynthesizeDataset',
              synthesizer.StartSynthesizeDatasetRequest.fromPartial({ requestId: 'conformance-no-prompts' }),
            ),
            grpc.status.INVALID_ARGUMENT,
            ['prompts.uri'],
          );
        });
      },
    },
  ],
  pretrainer: [
    {
      name: 'StartPretraining answers INVALID_ARGUMENT naming config when it is missing',
      async run(target) {
        await withClient(pretrainer.PretrainerServiceClient, target, async (client) => {
          await rejectsWith(
            unary(
              client,
              'startPretraining',
              pretrainer.StartPretrainingRequest.fromPartial({ requestId: 'conformance-no-config' }),
            ),
            grpc.status.INVALID_ARGUMENT,
            ['config'],
          );
        });
      },
    },
    {
      name: 'StartPretraining answers INVALID_ARGUMENT naming the config field at fault, and starts no job',
      async run(target) {
        await withClient(pretrainer.PretrainerServiceClient, target, async (client) => {
          const config = {
            method: pretrainer.Method.METHOD_CONVIRT,
            batchSize: 4,
            data: { realPairs: [{ uri: 'conformance/absent/pairs.jsonl', sha256: '', sizeBytes: 0, mediaType: '' }] },
          };
          const start = (requestId: string, overrides: object) =>
            unary(
              client,
              'startPretraining',
              pretrainer.StartPretrainingRequest.fromPartial({ requestId, config: { ...config, ...overrides } }),
            );
          await rejectsWith(start('conformance-batch', { batchSize: 1 }), grpc.status.INVALID_ARGUMENT, [
            'config.batch_size',
          ]);
          await rejectsWith(
            start('conformance-architecture', { imageEncoder: { architecture: 'vgg16' } }),
            grpc.status.INVALID_ARGUMENT,
            ['config.image_encoder.architecture'],
          );
          await rejectsWith(start('conformance-manifest', {}), grpc.status.INVALID_ARGUMENT, [
            'config.data.real_pairs[0]',
          ]);
        });
        await withClient(jobs.JobServiceClient, target, async (client) => {
          const { jobs: listed } = await unary<jobs.ListJobsResponse>(client, 'listJobs', {
            pageSize: 1000,
            pageToken: '',
          });
          assert.ok(!listed.some((j) => j.requestId.startsWith('conformance-')), 'a refused request left a job');
        });
      },
    },
    {
      name: 'GetPretrainingResult answers NOT_FOUND naming an unknown job id, INVALID_ARGUMENT naming job_id when it is empty',
      async run(target) {
        await withClient(pretrainer.PretrainerServiceClient, target, async (client) => {
          await rejectsWith(unary(client, 'getPretrainingResult', { jobId: MISSING_JOB }), grpc.status.NOT_FOUND, [
            MISSING_JOB,
          ]);
          await rejectsWith(unary(client, 'getPretrainingResult', { jobId: '' }), grpc.status.INVALID_ARGUMENT, [
            'job_id',
          ]);
        });
      },
    },
  ],
  evaluator: [
    {
      name: 'StartEvaluation answers INVALID_ARGUMENT naming the config field at fault',
      async run(target) {
        await withClient(evaluator.EvaluatorServiceClient, target, async (client) => {
          await rejectsWith(
            unary(
              client,
              'startEvaluation',
              evaluator.StartEvaluationRequest.fromPartial({ requestId: 'conformance-no-config' }),
            ),
            grpc.status.INVALID_ARGUMENT,
            ['config'],
          );
          const noDataset = evaluator.StartEvaluationRequest.fromPartial({
            requestId: 'conformance-no-dataset',
            config: { tasks: [evaluator.Task.TASK_CLASSIFICATION] },
          });
          await rejectsWith(unary(client, 'startEvaluation', noDataset), grpc.status.INVALID_ARGUMENT, ['config.']);
        });
      },
    },
    {
      name: 'GetEvaluationResult answers NOT_FOUND naming an unknown job id, INVALID_ARGUMENT naming job_id when it is empty',
      async run(target) {
        await withClient(evaluator.EvaluatorServiceClient, target, async (client) => {
          await rejectsWith(unary(client, 'getEvaluationResult', { jobId: MISSING_JOB }), grpc.status.NOT_FOUND, [
            MISSING_JOB,
          ]);
          await rejectsWith(unary(client, 'getEvaluationResult', { jobId: '' }), grpc.status.INVALID_ARGUMENT, [
            'job_id',
          ]);
        });
      },
    },
  ],
};

/** Every check an implementation of the contract must pass. */
export function conformanceChecks(contract: ContractName): ConformanceCheck[] {
  return [...sharedChecks(contract), ...CONTRACT_CHECKS[contract]];
}

import { execFileSync } from 'node:child_process';
import * as fs from 'node:fs';
import * as path from 'node:path';
import { pathToFileURL } from 'node:url';
import * as grpc from '@grpc/grpc-js';
import { encodeGrayPng, grayImage } from '@medsyn/imaging';
import { common, evaluator, jobs } from '@medsyn/proto';
import { seededRandom } from '@medsyn/random';
import { loadConfig, startService, type RunningService } from '@medsyn/service-kit';
import {
  callUnary,
  describeServiceBasics,
  holdingJobs,
  makeTempDir,
  testServiceEnv,
  watchJobToEnd,
} from '@medsyn/testing';
import { FileArtifactStore, localTreeDigest, storedDigest } from '@medsyn/artifact-store';
import { EVALUATOR_CONFIG, datasetRoots, evaluatorService } from '../src/service';

describeServiceBasics({
  start: (env) => startService(evaluatorService(env)),
  serviceName: 'medsyn.evaluator.v1.EvaluatorService',
  Client: evaluator.EvaluatorServiceClient,
  unimplemented: [],
});

/** 24 images, a bright square on noise; label 1 squares are larger. Written as a generic CSV dataset. */
function writeDataset(dir: string): string {
  fs.mkdirSync(path.join(dir, 'images'), { recursive: true });
  const rows = ['image,positive'];
  const rand = seededRandom(7);
  for (let i = 0; i < 24; i++) {
    const label = i % 2;
    const image = grayImage(32, 32);
    for (let p = 0; p < image.data.length; p++) image.data[p] = 0.3 * rand();
    const side = label ? 14 : 6;
    for (let y = 8; y < 8 + side; y++) for (let x = 8; x < 8 + side; x++) image.data[y * 32 + x] = 0.9;
    fs.writeFileSync(path.join(dir, 'images', `im${i}.png`), encodeGrayPng(image));
    rows.push(`im${i}.png,${label}`);
  }
  fs.writeFileSync(path.join(dir, 'labels.csv'), `${rows.join('\n')}\n`);
  return dir;
}

describe('evaluation jobs over gRPC', () => {
  const tmp = makeTempDir('evaluator');
  let service: RunningService;
  let client: grpc.Client;
  let jobsClient: grpc.Client;
  const dataset = writeDataset(path.join(tmp.dir, 'data'));
  const request = (requestId: string, seeds = [0]) =>
    evaluator.StartEvaluationRequest.fromPartial({
      requestId,
      config: {
        encoders: [
          {
            name: 'random',
            baseline: { architecture: 'resnet18', size: 32, width: 4, seed: 1 },
            pretrainingData: 'random',
          },
        ],
        dataset: {
          format: 'csv',
          uri: pathToFileURL(dataset).href,
          options: { label_columns: 'positive', images: 'images' },
        },
        tasks: [evaluator.Task.TASK_CLASSIFICATION],
        labelFractions: [1],
        seeds,
        epochs: 5,
      },
    });

  beforeAll(async () => {
    service = await startService(
      evaluatorService(testServiceEnv(path.join(tmp.dir, 'store'), { EVALUATOR_DATASET_ROOTS: tmp.dir })),
    );
    client = new evaluator.EvaluatorServiceClient(service.target, grpc.credentials.createInsecure());
    jobsClient = new jobs.JobServiceClient(service.target, grpc.credentials.createInsecure());
  });
  afterAll(async () => {
    client?.close();
    jobsClient?.close();
    await service?.shutdown();
    tmp.remove();
  });

  function watch(jobId: string): Promise<common.Job[]> {
    return new Promise((resolve, reject) => {
      const seen: common.Job[] = [];
      const call = (jobsClient as unknown as jobs.JobServiceClient).watchJob({ jobId });
      call.on('data', (response: { job: common.Job }) => seen.push(response.job));
      call.on('end', () => resolve(seen));
      call.on('error', reject);
    });
  }

  it('starts, watches and returns results; a second start with the same request id finds the same job', async () => {
    const started = await callUnary<evaluator.StartEvaluationResponse>(client, 'startEvaluation', request('eval-1'));
    const states = await watch(started.job!.jobId);
    expect(states.at(-1)).toMatchObject({
      state: common.JobState.JOB_STATE_SUCCEEDED,
      progress: { completed: 1, total: 1, unit: 'runs' },
    });
    expect(
      (await callUnary<evaluator.StartEvaluationResponse>(client, 'startEvaluation', request('eval-1'))).job!.jobId,
    ).toBe(started.job!.jobId);
    const result = await callUnary<evaluator.GetEvaluationResultResponse>(client, 'getEvaluationResult', {
      jobId: started.job!.jobId,
    });
    const auroc = result.metrics.find((m) => m.metric === 'auroc_macro')!;
    expect(auroc).toMatchObject({ encoder: 'random', task: evaluator.Task.TASK_CLASSIFICATION, labelFraction: 1 });
    expect(auroc.perSeed).toHaveLength(1);
    expect(auroc.mean).toBeGreaterThanOrEqual(0);
    expect(result.report!.uri).toMatch(/evaluator\/eval-1\/report\.html$/);
    expect(result.results!.sha256).toMatch(/^[0-9a-f]{64}$/);
    expect(result.lineage!.configSha256).toMatch(/^[0-9a-f]{64}$/);
  });

  it('a reused request id with other parameters is ALREADY_EXISTS', async () => {
    await callUnary(client, 'startEvaluation', request('eval-2'));
    await expect(callUnary(client, 'startEvaluation', request('eval-2', [0, 1]))).rejects.toMatchObject({
      code: grpc.status.ALREADY_EXISTS,
    });
  });

  it('bad requests are INVALID_ARGUMENT naming the field; unknown jobs NOT_FOUND', async () => {
    const noTasks = request('eval-3');
    noTasks.config!.tasks = [];
    await expect(callUnary(client, 'startEvaluation', noTasks)).rejects.toMatchObject({
      code: grpc.status.INVALID_ARGUMENT,
      details: expect.stringContaining('config.tasks'),
    });
    const s3 = request('eval-4');
    s3.config!.dataset!.uri = 's3://bucket/data';
    await expect(callUnary(client, 'startEvaluation', s3)).rejects.toMatchObject({
      code: grpc.status.INVALID_ARGUMENT,
      details: expect.stringContaining('config.dataset.uri'),
    });
    const fraction = request('eval-5');
    fraction.config!.labelFractions = [1.5];
    await expect(callUnary(client, 'startEvaluation', fraction)).rejects.toMatchObject({
      details: expect.stringContaining('config.label_fractions[0]'),
    });
    const huge = request('eval-huge');
    huge.config!.maxImages = 1e9;
    await expect(callUnary(client, 'startEvaluation', huge)).rejects.toMatchObject({
      code: grpc.status.INVALID_ARGUMENT,
      details: expect.stringContaining('config.max_images'),
    });
    const epochs = request('eval-epochs');
    epochs.config!.epochs = 1e9;
    await expect(callUnary(client, 'startEvaluation', epochs)).rejects.toMatchObject({
      code: grpc.status.INVALID_ARGUMENT,
      details: expect.stringContaining('config.epochs.classification'),
    });
    await expect(callUnary(client, 'getEvaluationResult', { jobId: 'nope' })).rejects.toMatchObject({
      code: grpc.status.NOT_FOUND,
    });
  });

  it('checks the encoder files a request names against their sha256 before taking the job', async () => {
    const store = new FileArtifactStore(path.join(tmp.dir, 'store'));
    const onnx = await store.put('bundles/b1/image_encoder.onnx', 'not really onnx');
    const tokenizer = path.join(tmp.dir, 'tokenizer'); // a folder outside the store, under EVALUATOR_DATASET_ROOTS
    fs.mkdirSync(tokenizer, { recursive: true });
    fs.writeFileSync(path.join(tokenizer, 'vocab.txt'), '[PAD]\n[UNK]\n');
    const tokenizerRef = {
      uri: `${pathToFileURL(tokenizer).href}/`,
      sha256: await localTreeDigest(tokenizer),
      sizeBytes: 0,
      mediaType: '',
    };
    const other = '0'.repeat(64);
    const withEncoder = (requestId: string, encoder: Partial<evaluator.Encoder>) => {
      const r = request(requestId);
      r.config!.encoders = [
        evaluator.Encoder.fromPartial({ name: 'b1', imageEncoder: onnx, tokenizer: tokenizerRef, ...encoder }),
      ];
      return callUnary<evaluator.StartEvaluationResponse>(client, 'startEvaluation', r);
    };
    await expect(withEncoder('eval-digest-1', { imageEncoder: { ...onnx, sha256: other } })).rejects.toMatchObject({
      code: grpc.status.FAILED_PRECONDITION,
      details: `config.encoders[0].image_encoder: sha256 mismatch for ${onnx.uri} (expected ${other}, found ${onnx.sha256})`,
    });
    await expect(withEncoder('eval-digest-2', { tokenizer: { ...tokenizerRef, sha256: other } })).rejects.toMatchObject(
      {
        code: grpc.status.FAILED_PRECONDITION,
        details: `config.encoders[0].tokenizer: sha256 mismatch for ${tokenizerRef.uri} (expected ${other}, found ${tokenizerRef.sha256})`,
      },
    );
    // A file outside the roots and the store: no digest of it is computed, so none can leak.
    await expect(
      withEncoder('eval-digest-3', {
        textEncoder: { uri: 'file:///etc/hostname', sha256: other, sizeBytes: 0, mediaType: '' },
      }),
    ).rejects.toMatchObject({
      code: grpc.status.PERMISSION_DENIED,
      details: expect.stringMatching(/^config\.encoders\[0\]\.text_encoder\.uri: is not under/),
    });
    const accepted = await withEncoder('eval-digest-4', {});
    expect(accepted.job!.requestId).toBe('eval-digest-4');
    await watch(accepted.job!.jobId); // the bytes are no ONNX model: the job fails, after the check passed
  });

  it('checks a bundle against its tree digest before taking the job, and the dataset (possibly large) when the job runs', async () => {
    const store = new FileArtifactStore(path.join(tmp.dir, 'store'));
    await store.put('bundles/b2/encoder.json', '{}');
    await store.put('bundles/b2/image_encoder.onnx', 'not really onnx');
    const [datasetDigest, bundleDigest] = [await localTreeDigest(dataset), await storedDigest(store, 'bundles/b2')];
    const other = '0'.repeat(64);
    const withDigests = (requestId: string, datasetSha256: string, bundleSha256: string, bundle = 'bundles/b2') => {
      const r = request(requestId);
      r.config!.dataset!.sha256 = datasetSha256;
      r.config!.encoders = [evaluator.Encoder.fromPartial({ name: 'b2', bundle, bundleSha256 })];
      return callUnary<evaluator.StartEvaluationResponse>(client, 'startEvaluation', r);
    };
    const datasetUri = pathToFileURL(dataset).href;
    const wrongDataset = await withDigests('eval-tree-1', other, bundleDigest);
    expect((await watch(wrongDataset.job!.jobId)).at(-1)).toMatchObject({
      state: common.JobState.JOB_STATE_FAILED,
      error: {
        code: 'FAILED_PRECONDITION',
        field: 'config.dataset',
        message: `config.dataset: sha256 mismatch for ${datasetUri} (expected ${other}, found ${datasetDigest})`,
      },
    });
    await expect(withDigests('eval-tree-2', datasetDigest, other)).rejects.toMatchObject({
      code: grpc.status.FAILED_PRECONDITION,
      details: `config.encoders[0].bundle: sha256 mismatch for bundles/b2 (expected ${other}, found ${bundleDigest})`,
    });
    await expect(withDigests('eval-tree-3', 'ABC', '')).rejects.toMatchObject({
      code: grpc.status.INVALID_ARGUMENT,
      details: expect.stringMatching(/^config\.dataset\.sha256: must be 64 lower-case hex/),
    });
    await expect(withDigests('eval-tree-4', '', 'ABC')).rejects.toMatchObject({
      code: grpc.status.INVALID_ARGUMENT,
      details: expect.stringMatching(/^config\.encoders\[0\]\.bundle_sha256: must be 64 lower-case hex/),
    });
    // A bundle folder outside the store and the roots: no digest of it is computed, so none can leak.
    await expect(withDigests('eval-tree-5', '', other, 'file:///etc')).rejects.toMatchObject({
      code: grpc.status.PERMISSION_DENIED,
      details: expect.stringMatching(/^config\.encoders\[0\]\.bundle: is not under/),
    });
    const accepted = await withDigests('eval-tree-6', datasetDigest, bundleDigest);
    expect(accepted.job!.requestId).toBe('eval-tree-6');
    await watch(accepted.job!.jobId); // no real bundle: the job fails, after the checks passed
  });

  it('a job whose dataset is missing fails with a message naming it, and has no result', async () => {
    const missing = request('eval-6');
    missing.config!.dataset!.uri = pathToFileURL(path.join(tmp.dir, 'nowhere')).href;
    const started = await callUnary<evaluator.StartEvaluationResponse>(client, 'startEvaluation', missing);
    const last = (await watch(started.job!.jobId)).at(-1)!;
    expect(last.state).toBe(common.JobState.JOB_STATE_FAILED);
    expect(last.error).toMatchObject({
      code: 'INVALID_ARGUMENT',
      field: 'config.dataset',
      message: expect.stringContaining('dataset root not found'),
    });
    await expect(callUnary(client, 'getEvaluationResult', { jobId: started.job!.jobId })).rejects.toMatchObject({
      code: grpc.status.FAILED_PRECONDITION,
    });
  });

  it('refuses a dataset outside EVALUATOR_DATASET_ROOTS as PERMISSION_DENIED naming config.dataset.uri, quoting nothing', async () => {
    for (const [i, uri] of [
      'file:///etc',
      pathToFileURL(`${tmp.dir}/../`).href,
      pathToFileURL(`${tmp.dir}-sibling`).href,
    ].entries()) {
      const outside = request(`eval-outside-${i}`);
      outside.config!.dataset!.uri = uri;
      const error = await callUnary(client, 'startEvaluation', outside).then(
        () => undefined,
        (e: grpc.ServiceError) => e,
      );
      expect(error).toMatchObject({
        code: grpc.status.PERMISSION_DENIED,
        details: expect.stringContaining('config.dataset.uri'),
      });
      expect(error!.details).not.toMatch(/root:x:0/);
    }
    const remote = request('eval-remote-host');
    remote.config!.dataset!.uri = 'file://otherhost/data';
    await expect(callUnary(client, 'startEvaluation', remote)).rejects.toMatchObject({
      code: grpc.status.INVALID_ARGUMENT,
      details: expect.stringContaining('config.dataset.uri'),
    });
  });

  it('fails a job whose labels.csv is a FIFO at once, naming the file, while health checks keep answering', async () => {
    const dir = writeDataset(path.join(tmp.dir, 'fifo-data'));
    fs.rmSync(path.join(dir, 'labels.csv'));
    execFileSync('mkfifo', [path.join(dir, 'labels.csv')]);
    const fifo = request('eval-fifo');
    fifo.config!.dataset!.uri = pathToFileURL(dir).href;
    const started = await callUnary<evaluator.StartEvaluationResponse>(client, 'startEvaluation', fifo);
    const last = (await watch(started.job!.jobId)).at(-1)!;
    expect(last.error).toMatchObject({
      code: 'INVALID_ARGUMENT',
      field: 'config.dataset',
      message: expect.stringContaining('labels.csv is not a regular file'),
    });
    const health = new grpc.Client(service.target, grpc.credentials.createInsecure());
    const served = await new Promise((resolve, reject) =>
      health.makeUnaryRequest(
        '/grpc.health.v1.Health/Check',
        () => Buffer.alloc(0),
        (b: Buffer) => b,
        {},
        { deadline: Date.now() + 1000 },
        (e, r) => (e ? reject(e) : resolve(r)),
      ),
    );
    health.close();
    expect(served).toBeDefined();
  });

  it('fails a job whose labels.csv links outside the dataset folder, never quoting the file', async () => {
    const dir = writeDataset(path.join(tmp.dir, 'linked-data'));
    fs.writeFileSync(path.join(tmp.dir, 'group'), 'root:x:0:secret\n');
    fs.rmSync(path.join(dir, 'labels.csv'));
    fs.symlinkSync(path.join(tmp.dir, 'group'), path.join(dir, 'labels.csv'));
    const linked = request('eval-linked');
    linked.config!.dataset!.uri = pathToFileURL(dir).href;
    const started = await callUnary<evaluator.StartEvaluationResponse>(client, 'startEvaluation', linked);
    const last = (await watch(started.job!.jobId)).at(-1)!;
    expect(last.error).toMatchObject({
      code: 'INVALID_ARGUMENT',
      field: 'config.dataset',
      message: expect.stringContaining('is a link to outside the dataset folder'),
    });
    expect(last.error!.message).not.toContain('root:x:0');
  });
});

describe('an evaluation job resumed after a restart', () => {
  it('checks the dataset digest again: a dataset changed while the service was down fails the job FAILED_PRECONDITION naming config.dataset', async () => {
    const tmp = makeTempDir('evaluator-resume');
    const dataset = writeDataset(path.join(tmp.dir, 'data'));
    const env = testServiceEnv(path.join(tmp.dir, 'store'), { EVALUATOR_DATASET_ROOTS: tmp.dir });
    const digest = await localTreeDigest(dataset);
    const first = await startService(holdingJobs(evaluatorService(env)));
    const firstClient = new evaluator.EvaluatorServiceClient(first.target, grpc.credentials.createInsecure());
    const uri = pathToFileURL(dataset).href;
    const { job } = await callUnary<evaluator.StartEvaluationResponse>(
      firstClient,
      'startEvaluation',
      evaluator.StartEvaluationRequest.fromPartial({
        requestId: 'eval-resumed',
        config: {
          encoders: [{ name: 'random', baseline: { architecture: 'resnet18', size: 32, width: 4, seed: 1 } }],
          dataset: { format: 'csv', uri, sha256: digest, options: { label_columns: 'positive', images: 'images' } },
          tasks: [evaluator.Task.TASK_CLASSIFICATION],
        },
      }),
    );
    firstClient.close();
    await first.shutdown();

    fs.appendFileSync(path.join(dataset, 'labels.csv'), 'im0.png,1\n');
    const second = await startService(evaluatorService(env));
    try {
      const last = (await watchJobToEnd(second.target, job!.jobId)).at(-1)!;
      expect(last).toMatchObject({
        state: common.JobState.JOB_STATE_FAILED,
        error: {
          code: 'FAILED_PRECONDITION',
          field: 'config.dataset',
          message: `config.dataset: sha256 mismatch for ${uri} (expected ${digest}, found ${await localTreeDigest(dataset)})`,
        },
      });
    } finally {
      await second.shutdown();
      tmp.remove();
    }
  });
});

describe('dataset roots', () => {
  it('are EVALUATOR_DATASET_ROOTS when set (absolute paths only), else the working directory and a local store folder', () => {
    const store = new FileArtifactStore('/srv/medsyn-store');
    expect(datasetRoots({ EVALUATOR_DATASET_ROOTS: '/data/a:/data/b/' }, store)).toEqual(['/data/a', '/data/b']);
    expect(datasetRoots({}, store)).toEqual([process.cwd(), '/srv/medsyn-store']);
    expect(() => datasetRoots({ EVALUATOR_DATASET_ROOTS: '/data/a:data/b' }, store)).toThrow(
      'EVALUATOR_DATASET_ROOTS: "data/b" is not an absolute path',
    );
  });
});

describe('parallel runs', () => {
  it('EVALUATOR_PARALLEL_RUNS is a positive integer, unset by default (one worker per core)', () => {
    const defaults = { grpcPort: 0, metricsPort: 0 };
    expect(loadConfig({}, defaults, EVALUATOR_CONFIG).service.EVALUATOR_PARALLEL_RUNS).toBeUndefined();
    expect(
      loadConfig({ EVALUATOR_PARALLEL_RUNS: '3' }, defaults, EVALUATOR_CONFIG).service.EVALUATOR_PARALLEL_RUNS,
    ).toBe(3);
    expect(() => loadConfig({ EVALUATOR_PARALLEL_RUNS: '0' }, defaults, EVALUATOR_CONFIG)).toThrow(
      /EVALUATOR_PARALLEL_RUNS.*must be >= 1/,
    );
  });
});

import * as grpc from '@grpc/grpc-js';
import { FileArtifactStore, getBuffer, putJsonl } from '@medsyn/artifact-store';
import { encodeGrayPng, grayImage } from '@medsyn/imaging';
import { common, jobs, pretrainer } from '@medsyn/proto';
import { startService, type RunningService } from '@medsyn/service-kit';
import { callUnary, describeServiceBasics, makeTempDir, promtoolCheckMetrics, testServiceEnv } from '@medsyn/testing';
import { readEncoderBundle } from '@medsyn/encoder-bundle';
import { pretrainerService } from '../src/service';

describeServiceBasics({
  start: (env) => startService(pretrainerService(env)),
  serviceName: 'medsyn.pretrainer.v1.PretrainerService',
  Client: pretrainer.PretrainerServiceClient,
  unimplemented: [],
});

/** Pairs whose reports name the brightness of a 32 px image: enough for a few real steps. */
async function writePairs(store: FileArtifactStore, count: number): Promise<string> {
  const lines = [];
  for (let i = 0; i < count; i++) {
    const level = (i % 4) / 4;
    const image = grayImage(32, 32, new Float32Array(32 * 32).fill(0.2 + 0.6 * level));
    await store.put(`pairs/images/${i}.png`, encodeGrayPng(image));
    lines.push({
      image: `images/${i}.png`,
      report: ['Clear lungs.', 'Mild haze.', 'Dense opacity.', 'White out.'][i % 4],
    });
  }
  await putJsonl(store, 'pairs/pairs.jsonl', lines);
  return 'pairs/pairs.jsonl';
}

const tinyConfig = (manifest: string, overrides: Partial<pretrainer.PretrainingConfig> = {}) =>
  pretrainer.PretrainingConfig.fromPartial({
    method: pretrainer.Method.METHOD_CONVIRT,
    imageEncoder: { architecture: 'resnet18', imageSize: 32, width: 8 },
    textEncoder: { layers: 1, hiddenSize: 16, heads: 2, maxLength: 8, vocabSize: 80 },
    data: { realPairs: [{ uri: manifest }], validationFraction: 0.25 },
    batchSize: 4,
    epochs: 1,
    embeddingSize: 8,
    checkpointEverySteps: 2,
    optimizer: { learningRate: 1e-3 },
    ...overrides,
  });

describe('PretrainerService jobs', () => {
  const tmp = makeTempDir('pretrainer');
  const store = new FileArtifactStore(tmp.dir);
  let service: RunningService;
  let client: pretrainer.PretrainerServiceClient;
  let jobsClient: jobs.JobServiceClient;
  let manifest: string;

  beforeAll(async () => {
    await store.check();
    manifest = await writePairs(store, 16);
    service = await startService(pretrainerService(testServiceEnv(tmp.dir)));
    client = new pretrainer.PretrainerServiceClient(service.target, grpc.credentials.createInsecure());
    jobsClient = new jobs.JobServiceClient(service.target, grpc.credentials.createInsecure());
  });
  afterAll(async () => {
    client?.close();
    jobsClient?.close();
    await service?.shutdown();
    tmp.remove();
  });
  // fromPartial: a partial plain object would serialise its missing strings as "undefined".
  const start = (requestId: string, config: pretrainer.PretrainingConfig) =>
    callUnary<pretrainer.StartPretrainingResponse>(
      client,
      'startPretraining',
      pretrainer.StartPretrainingRequest.fromPartial({ requestId, config }),
    );

  const waitForJobEnd = async (jobId: string) => {
    for (;;) {
      const { job } = await callUnary<jobs.GetJobResponse>(
        jobsClient,
        'getJob',
        jobs.GetJobRequest.fromPartial({ jobId }),
      );
      if (job!.state === common.JobState.JOB_STATE_SUCCEEDED) return;
      if (job!.state !== common.JobState.JOB_STATE_RUNNING && job!.state !== common.JobState.JOB_STATE_QUEUED)
        throw new Error(`job ${jobId} ended ${job!.state}: ${job!.error?.message}`);
      await new Promise((resolve) => setTimeout(resolve, 200));
    }
  };

  it('runs a pre-training job: progress with loss parts while watching, then the encoder bundle as its result', async () => {
    const started = await start('run-1', tinyConfig(manifest));
    const jobId = started.job!.jobId;
    const again = await start('run-1', tinyConfig(manifest));
    expect(again.job!.jobId).toBe(jobId);
    await expect(start('run-1', tinyConfig(manifest, { epochs: 2 }))).rejects.toMatchObject({
      code: grpc.status.ALREADY_EXISTS,
    });

    const seen: common.Job[] = [];
    await new Promise<void>((resolve, reject) => {
      const stream = jobsClient.watchJob({ jobId });
      stream.on('data', (r: jobs.WatchJobResponse) => seen.push(r.job!));
      stream.on('end', resolve);
      stream.on('error', reject);
    });
    const last = seen[seen.length - 1];
    expect(last.error?.message ?? '').toBe('');
    expect(last.state).toBe(common.JobState.JOB_STATE_SUCCEEDED);
    const training = seen.filter((j) => j.progress?.unit === 'steps' && j.progress.completed > 0);
    expect(training.length).toBeGreaterThan(0);
    expect(training[0].progress!.total).toBe(3);
    expect(Object.keys(training[0].progress!.metrics)).toEqual(
      expect.arrayContaining([
        'loss',
        'loss_image_to_text',
        'loss_text_to_image',
        'learning_rate',
        'samples_per_second',
      ]),
    );

    const result = await callUnary<pretrainer.GetPretrainingResultResponse>(
      client,
      'getPretrainingResult',
      pretrainer.GetPretrainingResultRequest.fromPartial({ jobId }),
    );
    expect(result.bundlePrefix).toBe('pretrainer/run-1/encoder');
    expect(result.summary!.steps).toBe(3);
    expect(result.lineage!.inputs[0].sha256).toBe((await store.stat(manifest))!.sha256);
    expect(result.imageEncoder!.sha256).toMatch(/^[0-9a-f]{64}$/);
    const bundle = await readEncoderBundle(store, result.bundlePrefix);
    expect(bundle.manifest.method).toBe('convirt');
    expect(last.outputs.map((o) => o.uri)).toContain(result.encoderManifest!.uri);
    const metrics = await (await fetch(`http://127.0.0.1:${service.metricsPort}/metrics`)).text();
    expect(metrics).toContain('medsyn_pretrainer_training_steps_total{method="convirt"} 3');
    expect(metrics).toMatch(/medsyn_pretrainer_training_samples_per_second\{method="convirt"\} [\d.]+/);
    await promtoolCheckMetrics(metrics);
  });

  it('cancels a running job after writing a checkpoint', async () => {
    const started = await start('long', tinyConfig(manifest, { epochs: 50, checkpointEverySteps: 1000 }));
    const jobId = started.job!.jobId;
    for (let i = 0; i < 600; i++) {
      const { job } = await callUnary<jobs.GetJobResponse>(
        jobsClient,
        'getJob',
        jobs.GetJobRequest.fromPartial({ jobId }),
      );
      if ((job!.progress?.completed ?? 0) >= 1) break;
      await new Promise((resolve) => setTimeout(resolve, 200));
    }
    const { job } = await callUnary<jobs.CancelJobResponse>(
      jobsClient,
      'cancelJob',
      jobs.CancelJobRequest.fromPartial({ jobId }),
    );
    expect(job!.state).toBe(common.JobState.JOB_STATE_CANCELLED);
    const latest = JSON.parse((await getBuffer(store, 'pretrainer/long/checkpoints/latest.json')).toString('utf8')) as {
      step: number;
    };
    expect(latest.step).toBeGreaterThanOrEqual(1);
    expect(latest.step).toBeLessThan(150);
  });

  it('refuses inputs that are not the bytes their sha256 names with FAILED_PRECONDITION naming the field and URI', async () => {
    const pairs = (await store.stat(manifest))!;
    const vocab = await store.put('inputs/vocab.txt', '[PAD]\n[UNK]\n[CLS]\n[SEP]\n[MASK]\nclear\n');
    const other = '0'.repeat(64);
    const ref = (uri: string, sha256: string) => ({ uri, sha256, sizeBytes: 0, mediaType: '' });
    const textEncoder = (vocabRef: common.ArtifactRef) => ({
      layers: 1,
      hiddenSize: 16,
      heads: 2,
      maxLength: 8,
      vocabSize: 0,
      vocab: vocabRef,
      init: undefined,
    });
    await expect(
      start(
        'digest-pairs',
        tinyConfig(manifest, {
          data: {
            realPairs: [ref(manifest, other)],
            syntheticPairs: [],
            syntheticRatio: 0,
            validationFraction: 0.25,
            disableAugmentation: false,
            retrievalPairs: undefined,
          },
        }),
      ),
    ).rejects.toMatchObject({
      code: grpc.status.FAILED_PRECONDITION,
      details: `config.data.real_pairs[0]: sha256 mismatch for ${manifest} (expected ${other}, found ${pairs.sha256})`,
    });
    await expect(
      start('digest-vocab', tinyConfig(manifest, { textEncoder: textEncoder(ref(vocab.uri, other)) })),
    ).rejects.toMatchObject({
      code: grpc.status.FAILED_PRECONDITION,
      details: `config.text_encoder.vocab: sha256 mismatch for ${vocab.uri} (expected ${other}, found ${vocab.sha256})`,
    });
    await expect(
      start(
        'digest-init',
        tinyConfig(manifest, {
          imageEncoder: { architecture: 'resnet18', imageSize: 32, width: 8, init: ref(vocab.uri, other) },
        }),
      ),
    ).rejects.toMatchObject({
      code: grpc.status.FAILED_PRECONDITION,
      details: expect.stringMatching(/^config\.image_encoder\.init: sha256 mismatch for /),
    });
    await expect(
      start('digest-malformed', tinyConfig(manifest, { textEncoder: textEncoder(ref(vocab.uri, 'xyz')) })),
    ).rejects.toMatchObject({
      code: grpc.status.INVALID_ARGUMENT,
      details: expect.stringMatching(/^config\.text_encoder\.vocab\.sha256: /),
    });
    const right = tinyConfig(manifest, {
      data: {
        realPairs: [ref(manifest, pairs.sha256)],
        syntheticPairs: [],
        syntheticRatio: 0,
        validationFraction: 0.25,
        disableAugmentation: false,
        retrievalPairs: undefined,
      },
      textEncoder: textEncoder(vocab),
    });
    const { job } = await start('digest-right', right);
    await callUnary(jobsClient, 'cancelJob', jobs.CancelJobRequest.fromPartial({ jobId: job!.jobId }));
  });

  it('scores held-out retrieval on data.retrieval_pairs, leaving their images out of training', async () => {
    const lines: unknown[] = [];
    for (let i = 0; i < 4; i++)
      lines.push({
        image: `images/${i}.png`,
        report: ['Clear lungs.', 'Mild haze.', 'Dense opacity.', 'White out.'][i],
      });
    const heldOut = await putJsonl(store, 'pairs/held-out.jsonl', lines);
    const config = tinyConfig(manifest);
    config.data!.retrievalPairs = { uri: heldOut.uri, sha256: heldOut.sha256, sizeBytes: 0, mediaType: '' };
    const { job } = await start('held-out', config);
    await waitForJobEnd(job!.jobId);
    const result = await callUnary<pretrainer.GetPretrainingResultResponse>(
      client,
      'getPretrainingResult',
      pretrainer.GetPretrainingResultRequest.fromPartial({ jobId: job!.jobId }),
    );
    // 12 training pairs (the 4 held-out images left out) in batches of 4; the 4 held-out pairs scored.
    expect(result.summary!.steps).toBe(3);
    expect(result.summary!.validationPairs).toBe(4);
    expect(result.lineage!.inputs.map((i) => i.sha256)).toContain(heldOut.sha256);
    config.data!.retrievalPairs = { uri: 'nowhere/held-out.jsonl', sha256: '', sizeBytes: 0, mediaType: '' };
    await expect(start('held-out-missing', config)).rejects.toMatchObject({
      code: grpc.status.INVALID_ARGUMENT,
      details: 'config.data.retrieval_pairs: manifest nowhere/held-out.jsonl not found',
    });
  });

  it('refuses bad requests with INVALID_ARGUMENT naming the field', async () => {
    const bad = start;
    await expect(
      bad('b1', tinyConfig(manifest, { method: pretrainer.Method.METHOD_UNSPECIFIED })),
    ).rejects.toMatchObject({
      code: grpc.status.INVALID_ARGUMENT,
      details: expect.stringMatching(/^config.method: is required/),
    });
    await expect(bad('b2', tinyConfig(manifest, { batchSize: 0 }))).rejects.toMatchObject({
      code: grpc.status.INVALID_ARGUMENT,
      details: 'config.batch_size: must be >= 2, got 0',
    });
    // Upper bounds (PRETRAINING_LIMITS): sizes no GPU run reaches are refused before anything is allocated.
    await expect(bad('b2-huge', tinyConfig(manifest, { batchSize: 1e9 }))).rejects.toMatchObject({
      code: grpc.status.INVALID_ARGUMENT,
      details: 'config.batch_size: must be <= 4096, got 1000000000',
    });
    await expect(
      bad(
        'b2-wide',
        tinyConfig(manifest, {
          imageEncoder: { architecture: 'resnet18', imageSize: 1_048_576, width: 8, init: undefined },
        }),
      ),
    ).rejects.toMatchObject({
      code: grpc.status.INVALID_ARGUMENT,
      details: 'config.image_encoder.image_size: must be <= 1024, got 1048576',
    });
    await expect(bad('b3', tinyConfig('nowhere/pairs.jsonl'))).rejects.toMatchObject({
      code: grpc.status.INVALID_ARGUMENT,
      details: 'config.data.real_pairs[0]: manifest nowhere/pairs.jsonl not found',
    });
    await expect(
      bad(
        'b4',
        tinyConfig(manifest, { imageEncoder: { architecture: 'alexnet', imageSize: 32, width: 8, init: undefined } }),
      ),
    ).rejects.toMatchObject({ details: expect.stringMatching(/^config.image_encoder.architecture: must be one of/) });
    await expect(bad('', tinyConfig(manifest))).rejects.toMatchObject({
      code: grpc.status.INVALID_ARGUMENT,
      details: expect.stringMatching(/^request_id/),
    });
    await expect(
      callUnary(
        client,
        'getPretrainingResult',
        pretrainer.GetPretrainingResultRequest.fromPartial({ jobId: 'pretrain-nope' }),
      ),
    ).rejects.toMatchObject({ code: grpc.status.NOT_FOUND });
  });
});

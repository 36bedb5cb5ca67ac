import * as fs from 'node:fs';
import * as path from 'node:path';
import * as grpc from '@grpc/grpc-js';
import { FileArtifactStore, localTreeDigest, putJsonl, readJsonl } from '@medsyn/artifact-store';
import type { PairLine } from '@medsyn/dataset';
import { buildTinyModel } from '@medsyn/diffusion';
import { decodePng, readPngText } from '@medsyn/imaging';
import { serviceNodeArgs, startServiceProcess, type ServiceProcess } from '@medsyn/local-services';
import { common, jobs, synthesizer } from '@medsyn/proto';
import { startService, type RunningService } from '@medsyn/service-kit';
import { callUnary, describeServiceBasics, makeTempDir, promtoolCheckMetrics, testServiceEnv } from '@medsyn/testing';
import { synthesizerService } from '../src/service';

// The tiny model in the exact export layout (random weights, real CLIP vocabulary subset).
const fixture = makeTempDir('synthesizer-model');
const MODEL_DIR = buildTinyModel(path.join(fixture.dir, 'tiny'));
afterAll(() => fixture.remove());

describeServiceBasics({
  start: (env) => startService(synthesizerService({ ...env, MODEL_DIR })),
  serviceName: 'medsyn.synthesizer.v1.SynthesizerService',
  Client: synthesizer.SynthesizerServiceClient,
  unimplemented: [],
});

type Responses = synthesizer.SynthesizeResponse[];
const dataset = (r: Partial<synthesizer.StartSynthesizeDatasetRequest>) =>
  synthesizer.StartSynthesizeDatasetRequest.fromPartial(r);

function stream(
  client: synthesizer.SynthesizerServiceClient,
  requests: Partial<synthesizer.SynthesizeRequest>[],
): Promise<Responses> {
  return new Promise((resolve, reject) => {
    const call = client.synthesize();
    const out: Responses = [];
    call.on('data', (r: synthesizer.SynthesizeResponse) => out.push(r));
    call.on('end', () => resolve(out));
    call.on('error', reject);
    for (const r of requests) call.write(synthesizer.SynthesizeRequest.fromPartial(r));
    call.end();
  });
}

describe('synthesizer over gRPC', () => {
  const tmp = makeTempDir('synthesizer');
  let service: RunningService;
  let client: synthesizer.SynthesizerServiceClient;
  const params = (p: Partial<synthesizer.GenerationParams> = {}) =>
    synthesizer.GenerationParams.fromPartial({ numInferenceSteps: 4, seed: 7, ...p });

  beforeAll(async () => {
    service = await startService(synthesizerService(testServiceEnv(tmp.dir, { MODEL_DIR, MAX_BATCH: '4' })));
    client = new synthesizer.SynthesizerServiceClient(service.target, grpc.credentials.createInsecure());
  });
  afterAll(async () => {
    client?.close();
    await service?.shutdown();
    tmp.remove();
  });

  it('describes the loaded model', async () => {
    const info = await callUnary<synthesizer.GetModelInfoResponse>(client, 'getModelInfo', {});
    expect(info).toMatchObject({
      unetDtype: 'float32',
      maxPromptTokens: 77,
      executionProvider: 'cpu',
      defaults: {
        guidanceScale: 3,
        numInferenceSteps: 75,
        height: 64,
        width: 64,
        scheduler: synthesizer.Scheduler.SCHEDULER_PNDM,
      },
    });
    expect(info.model?.sha256).toMatch(/^[0-9a-f]{64}$/);
  });

  it('streams images for prompts, errors for bad requests, and keeps going', async () => {
    const responses = await stream(client, [
      { id: 'a', prompt: 'Small left pleural effusion.', params: params() },
      { id: 'bad-guidance', prompt: 'Cardiomegaly.', params: params({ guidanceScale: -1 }) },
      { id: 'empty', prompt: '', params: params() },
      { id: 'long', prompt: 'x'.repeat(10_000), params: params() },
      { id: 'zero-steps', prompt: 'Cardiomegaly.', params: params({ numInferenceSteps: 0 }) },
      {
        id: 'b',
        prompt: 'No acute cardiopulmonary process.',
        params: params({ imageFormat: synthesizer.ImageFormat.IMAGE_FORMAT_PNG_GRAY16 }),
      },
    ]);
    const byId = Object.fromEntries(responses.map((r) => [r.id, r]));
    expect(responses).toHaveLength(6);
    expect(byId['bad-guidance']!.error).toMatchObject({
      code: 'INVALID_ARGUMENT',
      field: 'params.guidance_scale',
      recordId: 'bad-guidance',
    });
    expect(byId['empty']!.error).toMatchObject({ code: 'INVALID_ARGUMENT', field: 'prompt' });
    expect(byId['long']!.error).toMatchObject({
      code: 'INVALID_ARGUMENT',
      field: 'prompt',
      message: expect.stringContaining('10000 characters'),
    });
    expect(byId['zero-steps']!.error).toMatchObject({ field: 'params.num_inference_steps' });
    for (const id of ['a', 'b']) {
      const r = byId[id]!;
      expect(r.error).toBeUndefined();
      expect(r.quality).toMatchObject({ accepted: true, attempts: 1 });
      expect(r.seed).toBe(7);
      expect(decodePng(r.image)).toMatchObject({ width: 64, height: 64 });
      expect(readPngText(r.image)).toMatchObject({
        'medsyn:seed': '7',
        'medsyn:steps': '4',
        'medsyn:guidance_scale': '3',
      });
    }
    expect(byId['b']!.image[24]).toBe(16); // IHDR bit depth
  });

  it('gives identical images for the same seed, other images for other guidance', async () => {
    const request = { id: 'x', prompt: 'Right upper lobe consolidation.', params: params() };
    const [first] = await stream(client, [request]);
    const [second] = await stream(client, [request]);
    const [guided] = await stream(client, [{ ...request, params: params({ guidanceScale: 6 }) }]);
    expect(Buffer.compare(first!.image, second!.image)).toBe(0);
    expect(Buffer.compare(first!.image, guided!.image)).not.toBe(0);
  });

  it('exports images, denoising steps, queue depth and rejections as Prometheus metrics', async () => {
    const exposition = await (await fetch(`http://127.0.0.1:${service.metricsPort}/metrics`)).text();
    expect(exposition).toMatch(/^medsyn_synthesizer_images_total\{outcome="accepted"\} [1-9]/m);
    expect(exposition).toMatch(/^medsyn_synthesizer_denoising_steps_total [1-9]/m);
    expect(exposition).toMatch(/^medsyn_synthesizer_queue_depth 0/m);
    expect(exposition).toContain('# TYPE medsyn_synthesizer_quality_rejections_total counter');
    expect(promtoolCheckMetrics(exposition)).toBe('');
  });

  it('validates dataset requests naming the field', async () => {
    await expect(callUnary(client, 'startSynthesizeDataset', dataset({ requestId: 'r1' }))).rejects.toMatchObject({
      code: grpc.status.INVALID_ARGUMENT,
      details: expect.stringContaining('prompts.uri'),
    });
    const store = new FileArtifactStore(tmp.dir);
    const prompts = await putJsonl(store, 'prompts/p.jsonl', [{ id: 'a', prompt: 'effusion' }]);
    await expect(
      callUnary(
        client,
        'startSynthesizeDataset',
        dataset({ requestId: 'r2', prompts, params: params({ numInferenceSteps: 0 }) }),
      ),
    ).rejects.toMatchObject({
      code: grpc.status.INVALID_ARGUMENT,
      details: expect.stringContaining('params.num_inference_steps'),
    });
    await expect(
      callUnary(client, 'startSynthesizeDataset', dataset({ requestId: 'r3', prompts, shard: { index: 2, count: 2 } })),
    ).rejects.toMatchObject({ details: expect.stringContaining('shard.index') });
    await expect(
      callUnary(
        client,
        'startSynthesizeDataset',
        dataset({ requestId: 'r4', prompts: { ...prompts, uri: `${prompts.uri}.missing` } }),
      ),
    ).rejects.toMatchObject({ code: grpc.status.NOT_FOUND });
    await expect(
      callUnary(
        client,
        'startSynthesizeDataset',
        dataset({
          requestId: 'r5',
          prompts,
          model: { uri: `${store.rootUri}/models/none/`, sha256: '', sizeBytes: 0, mediaType: '' },
        }),
      ),
    ).rejects.toMatchObject({
      code: grpc.status.FAILED_PRECONDITION,
      details: expect.stringContaining('no model files'),
    });
  });

  it('refuses to start without a usable model, naming the file', async () => {
    const broken = path.join(tmp.dir, 'broken-model');
    fs.cpSync(MODEL_DIR, broken, { recursive: true });
    fs.writeFileSync(path.join(broken, 'unet', 'model.onnx'), 'garbage');
    await expect(startService(synthesizerService(testServiceEnv(tmp.dir, { MODEL_DIR: broken })))).rejects.toThrow(
      /unet\/model.onnx could not be loaded/,
    );
    await expect(
      startService(synthesizerService(testServiceEnv(tmp.dir, { MODEL_DIR, EXECUTION_PROVIDER: 'cuda' }))),
    ).rejects.toThrow(/execution provider "cuda"/);
  });

  it('takes CPU_MEMORY_ARENA=false for big models on CPU, and refuses a value that is neither true nor false, naming it', async () => {
    const lean = await startService(
      synthesizerService(testServiceEnv(tmp.dir, { MODEL_DIR, CPU_MEMORY_ARENA: 'false' })),
    );
    await lean.shutdown();
    await expect(
      startService(synthesizerService(testServiceEnv(tmp.dir, { MODEL_DIR, CPU_MEMORY_ARENA: 'maybe' }))),
    ).rejects.toThrow(/CPU_MEMORY_ARENA/);
  });

  it('loads the model from the artifact store with MODEL_URI (as deploy/k8s configures it)', async () => {
    const store = new FileArtifactStore(tmp.dir);
    for (const f of fs.readdirSync(MODEL_DIR, { recursive: true }) as string[]) {
      if (fs.statSync(path.join(MODEL_DIR, f)).isFile())
        await store.put(`models/synthesizer/${f.split(path.sep).join('/')}`, fs.readFileSync(path.join(MODEL_DIR, f)));
    }
    const fromStore = await startService(
      synthesizerService(
        testServiceEnv(tmp.dir, {
          MODEL_URI: `${store.rootUri}/models/synthesizer/`,
          MODEL_CACHE_DIR: path.join(tmp.dir, 'cache'),
        }),
      ),
    );
    const storeClient = new synthesizer.SynthesizerServiceClient(fromStore.target, grpc.credentials.createInsecure());
    try {
      const local = await callUnary<synthesizer.GetModelInfoResponse>(client, 'getModelInfo', {});
      const remote = await callUnary<synthesizer.GetModelInfoResponse>(storeClient, 'getModelInfo', {});
      expect(remote.model).toMatchObject({ uri: `${store.rootUri}/models/synthesizer/`, sha256: local.model!.sha256 });
    } finally {
      storeClient.close();
      await fromStore.shutdown();
    }
  });

  it('starts without a model and says what is missing', async () => {
    const bare = await startService(synthesizerService(testServiceEnv(tmp.dir)));
    const bareClient = new synthesizer.SynthesizerServiceClient(bare.target, grpc.credentials.createInsecure());
    try {
      await expect(callUnary(bareClient, 'getModelInfo', {})).rejects.toMatchObject({
        code: grpc.status.FAILED_PRECONDITION,
        details: expect.stringContaining('MODEL_DIR'),
      });
      await expect(stream(bareClient, [{ id: 'a', prompt: 'effusion' }])).rejects.toMatchObject({
        code: grpc.status.FAILED_PRECONDITION,
      });
    } finally {
      bareClient.close();
      await bare.shutdown();
    }
  });
});

describe('dataset job: shard, kill, resume', () => {
  const tmp = makeTempDir('synthesizer-job');
  const store = new FileArtifactStore(tmp.dir);
  const processes: ServiceProcess[] = [];
  /** Every line the processes logged, to check that none carries a prompt. */
  const output: string[] = [];
  afterAll(async () => {
    await Promise.all(processes.map((p) => p.kill()));
    tmp.remove();
  });

  const start = async () => {
    const p = await startServiceProcess({
      name: 'synthesizer',
      args: serviceNodeArgs('synthesizer', 'source'),
      env: {
        ...process.env,
        ...testServiceEnv(tmp.dir, { MODEL_DIR, MAX_BATCH: '1', LOG_LEVEL: 'info', INTRA_OP_THREADS: '1' }),
      },
      onLine: (line) => output.push(line),
      readyTimeoutMs: 60_000,
    });
    processes.push(p);
    return p;
  };

  it('produces every image of the shard exactly once after a kill and a restart', async () => {
    const ids = Array.from({ length: 10 }, (_, i) => `report-${i}`);
    const prompts = await putJsonl(
      store,
      'anonymizer/prompts.jsonl',
      ids.map((id, i) => ({ id, prompt: `Finding ${i}: small pleural effusion.` })),
    );
    const request = dataset({
      requestId: 'dataset-1',
      prompts,
      params: synthesizer.GenerationParams.fromPartial({ numInferenceSteps: 8, seed: 3 }),
      shard: { index: 1, count: 2 },
      outputPrefix: 'synthetic/run1/',
    });

    const first = await start();
    let client = new synthesizer.SynthesizerServiceClient(first.target, grpc.credentials.createInsecure());
    const started = await callUnary<synthesizer.StartSynthesizeDatasetResponse>(
      client,
      'startSynthesizeDataset',
      request,
    );
    const jobId = started.job!.jobId;
    // Kill it (SIGKILL: no shutdown hook) once two of the five images are done.
    let jobsClient = new jobs.JobServiceClient(first.target, grpc.credentials.createInsecure());
    let killedAt = 0;
    await new Promise<void>((resolve, reject) => {
      const watch = jobsClient.watchJob(jobs.WatchJobRequest.fromPartial({ jobId }));
      watch.on('data', (r: jobs.WatchJobResponse) => {
        if ((r.job?.progress?.completed ?? 0) >= 2) {
          void first.kill();
          killedAt = Date.now();
          resolve();
        }
      });
      watch.on('error', () => undefined);
      watch.on('end', () => reject(new Error('job ended before it could be killed')));
    });
    client.close();
    jobsClient.close();
    await first.exited;

    const second = await start();
    client = new synthesizer.SynthesizerServiceClient(second.target, grpc.credentials.createInsecure());
    jobsClient = new jobs.JobServiceClient(second.target, grpc.credentials.createInsecure());
    // Starting again with the same request id finds the same (resumed) job.
    const again = await callUnary<synthesizer.StartSynthesizeDatasetResponse>(
      client,
      'startSynthesizeDataset',
      request,
    );
    expect(again.job!.jobId).toBe(jobId);
    let job: common.Job | undefined;
    for (let i = 0; i < 600; i++) {
      job = (await callUnary<jobs.GetJobResponse>(jobsClient, 'getJob', { jobId })).job;
      if (job!.state !== common.JobState.JOB_STATE_RUNNING && job!.state !== common.JobState.JOB_STATE_QUEUED) break;
      await new Promise((r) => setTimeout(r, 100));
    }
    client.close();
    jobsClient.close();
    expect(job!.state).toBe(common.JobState.JOB_STATE_SUCCEEDED);
    expect(job!.progress).toMatchObject({ completed: 5, total: 5, unit: 'images' });

    const pairs: PairLine[] = [];
    for await (const line of readJsonl<PairLine>(store, store.keyOf(job!.outputs[0]!.uri)))
      if (line.ok) pairs.push(line.value);
    // Shard 1 of 2 holds the odd records, each once, in manifest order.
    expect(pairs.map((p) => p.id)).toEqual(['report-1', 'report-3', 'report-5', 'report-7', 'report-9']);
    const images: string[] = [];
    for await (const o of store.list('synthetic/run1/images/')) images.push(o.key);
    expect(images.sort()).toEqual(pairs.map((p) => `synthetic/run1/images/${p.id}.png`));
    expect(new Set(pairs.map((p) => p.seed)).size).toBe(5);
    // Images finished before the kill were kept, not generated again.
    const recordTimes = pairs.map(
      (p) => fs.statSync(path.join(tmp.dir, 'synthetic/run1/records', `${p.id}.json`)).mtimeMs,
    );
    expect(recordTimes.filter((t) => t < killedAt).length).toBeGreaterThanOrEqual(2);
    // Logs name the job, never its prompts.
    expect(output.join('\n')).toContain(jobId);
    expect(output.join('\n')).not.toContain('pleural effusion');
  });
});

describe('synthesizer bounds', () => {
  const tmp = makeTempDir('synthesizer-bounds');
  const cacheDir = path.join(tmp.dir, 'model-cache');
  const store = new FileArtifactStore(path.join(tmp.dir, 'store'));
  let service: RunningService;
  let client: synthesizer.SynthesizerServiceClient;
  let jobsClient: jobs.JobServiceClient;
  const params = (steps: number) => synthesizer.GenerationParams.fromPartial({ numInferenceSteps: steps, seed: 7 });

  beforeAll(async () => {
    for (const prefix of ['models/a/', 'models/b/', 'jobs/planted/']) {
      for (const f of fs.readdirSync(MODEL_DIR, { recursive: true }) as string[]) {
        if (fs.statSync(path.join(MODEL_DIR, f)).isFile())
          await store.put(`${prefix}${f.split(path.sep).join('/')}`, fs.readFileSync(path.join(MODEL_DIR, f)));
      }
    }
    service = await startService(
      synthesizerService(
        testServiceEnv(path.join(tmp.dir, 'store'), {
          MODEL_DIR,
          MAX_BATCH: '1',
          MAX_QUEUE_DEPTH: '6',
          MODEL_CACHE_MAX_MODELS: '1',
          MODEL_CACHE_DIR: cacheDir,
        }),
      ),
    );
    client = new synthesizer.SynthesizerServiceClient(service.target, grpc.credentials.createInsecure());
    jobsClient = new jobs.JobServiceClient(service.target, grpc.credentials.createInsecure());
  });
  afterAll(async () => {
    client?.close();
    jobsClient?.close();
    await service?.shutdown();
    tmp.remove();
  });

  const modelRef = (prefix: string) => ({ uri: `${store.rootUri}/${prefix}`, sha256: '', sizeBytes: 0, mediaType: '' });
  const finished = (jobId: string) =>
    new Promise<common.Job>((resolve, reject) => {
      let last: common.Job | undefined;
      const call = jobsClient.watchJob({ jobId });
      call.on('data', (r: { job: common.Job }) => (last = r.job));
      call.on('end', () => resolve(last!));
      call.on('error', reject);
    });
  const imagesMade = async () => {
    const exposition = await (await fetch(`http://127.0.0.1:${service.metricsPort}/metrics`)).text();
    return [...exposition.matchAll(/^medsyn_synthesizer_images_total\{outcome="\w+"\} (\d+)/gm)].reduce(
      (n, m) => n + Number(m[1]),
      0,
    );
  };

  it('reads request-named models only under MODELS_PREFIX, refusing others as PERMISSION_DENIED naming model.uri', async () => {
    const prompts = await putJsonl(store, 'prompts/p.jsonl', [{ id: 'a', prompt: 'effusion' }]);
    for (const prefix of ['jobs/planted/', 'prompts/', 'models/']) {
      await expect(
        callUnary(
          client,
          'startSynthesizeDataset',
          dataset({ requestId: `outside-${prefix}`, prompts, params: params(2), model: modelRef(prefix) }),
        ),
      ).rejects.toMatchObject({
        code: grpc.status.PERMISSION_DENIED,
        details: expect.stringContaining('model.uri'),
      });
    }
    expect(fs.existsSync(cacheDir) ? fs.readdirSync(cacheDir) : []).toEqual([]);
  });

  it('keeps at most MODEL_CACHE_MAX_MODELS request-named models, evicting the idle one (and its files)', async () => {
    const prompts = await putJsonl(store, 'prompts/p.jsonl', [{ id: 'a', prompt: 'effusion' }]);
    for (const name of ['a', 'b']) {
      const started = await callUnary<synthesizer.StartSynthesizeDatasetResponse>(
        client,
        'startSynthesizeDataset',
        dataset({ requestId: `model-${name}`, prompts, params: params(2), model: modelRef(`models/${name}/`) }),
      );
      expect((await finished(started.job!.jobId)).state).toBe(common.JobState.JOB_STATE_SUCCEEDED);
      expect(fs.readdirSync(cacheDir)).toHaveLength(1);
    }
  });

  it('takes a dataset job only when its prompts and model are the bytes their sha256 names (a model folder by its treeDigest)', async () => {
    const prompts = await putJsonl(store, 'prompts/digest.jsonl', [{ id: 'a', prompt: 'effusion' }]);
    // models/a/ holds MODEL_DIR's files: the treeDigest of the local folder is the one to send.
    const model = { ...modelRef('models/a/'), sha256: await localTreeDigest(MODEL_DIR) };
    const start = (requestId: string, change: Partial<synthesizer.StartSynthesizeDatasetRequest>) =>
      callUnary<synthesizer.StartSynthesizeDatasetResponse>(
        client,
        'startSynthesizeDataset',
        dataset({ requestId, prompts, params: params(1), model, ...change }),
      );
    const other = '0'.repeat(64);
    await expect(start('digest-prompts', { prompts: { ...prompts, sha256: other } })).rejects.toMatchObject({
      code: grpc.status.FAILED_PRECONDITION,
      details: `prompts: sha256 mismatch for ${prompts.uri} (expected ${other}, found ${prompts.sha256})`,
    });
    await expect(start('digest-model', { model: { ...model, sha256: other } })).rejects.toMatchObject({
      code: grpc.status.FAILED_PRECONDITION,
      details: `model: sha256 mismatch for ${model.uri} (expected ${other}, found ${model.sha256})`,
    });
    // The loaded model (MODEL_DIR) is checked against the same digest, which GetModelInfo reports.
    const loaded = (await callUnary<synthesizer.GetModelInfoResponse>(client, 'getModelInfo', {})).model!;
    expect(loaded.sha256).toBe(model.sha256);
    await expect(start('digest-loaded', { model: { ...loaded, sha256: other } })).rejects.toMatchObject({
      code: grpc.status.FAILED_PRECONDITION,
      details: expect.stringContaining(`model: sha256 mismatch for ${loaded.uri}`),
    });
    await expect(
      start('digest-malformed', { model: { ...model, sha256: model.sha256.toUpperCase() } }),
    ).rejects.toMatchObject({ code: grpc.status.INVALID_ARGUMENT, details: expect.stringContaining('model.sha256') });
    const started = await start('digest-right', {});
    expect((await finished(started.job!.jobId)).state).toBe(common.JobState.JOB_STATE_SUCCEEDED);
  });

  it('answers RESOURCE_EXHAUSTED for requests past MAX_QUEUE_DEPTH, and generates the rest', async () => {
    const responses = await stream(
      client,
      Array.from({ length: 12 }, (_, i) => ({ id: `q${i}`, prompt: 'effusion', params: params(8) })),
    );
    const exhausted = responses.filter((r) => r.error?.code === 'RESOURCE_EXHAUSTED');
    expect(responses).toHaveLength(12);
    expect(exhausted.length).toBeGreaterThanOrEqual(5);
    expect(exhausted[0]!.error!.message).toContain('MAX_QUEUE_DEPTH');
    expect(responses.filter((r) => r.image.length > 0).length).toBe(12 - exhausted.length);
  });

  it("drops a cancelled stream's queued requests instead of generating them", async () => {
    const before = await imagesMade();
    const call = client.synthesize();
    call.on('error', () => undefined);
    const first = new Promise<void>((resolve) => call.once('data', () => resolve()));
    for (let i = 0; i < 6; i++)
      call.write(synthesizer.SynthesizeRequest.fromPartial({ id: `c${i}`, prompt: 'effusion', params: params(40) }));
    await first;
    call.cancel();
    // The queue is first in, first out: once a later request is answered, whatever was left of the cancelled stream has been dealt with.
    const probe = await stream(client, [{ id: 'after', prompt: 'effusion', params: params(2) }]);
    expect(probe[0]!.image.length).toBeGreaterThan(0);
    const made = (await imagesMade()) - before - 1;
    expect(made).toBeGreaterThanOrEqual(1);
    // The first, the one being denoised when the cancel arrived, and one more of margin for a slow machine: never all 6.
    expect(made).toBeLessThanOrEqual(3);
  });
});

import { createHash } from 'node:crypto';
import * as fs from 'node:fs';
import * as http2 from 'node:http2';
import * as path from 'node:path';
import * as grpc from '@grpc/grpc-js';
import { FileArtifactStore, getBuffer } from '@medsyn/artifact-store';
import { anonymizer, common, jobs } from '@medsyn/proto';
import { startService, type RunningService } from '@medsyn/service-kit';
import {
  callUnary,
  describeServiceBasics,
  holdingJobs,
  makeTempDir,
  testServiceEnv,
  watchJobToEnd,
} from '@medsyn/testing';
import { anonymizerService } from '../src/service';

describeServiceBasics({
  start: (env) => startService(anonymizerService(env)),
  serviceName: 'medsyn.anonymizer.v1.AnonymizerService',
  Client: anonymizer.AnonymizerServiceClient,
  unimplemented: [],
});

const SECRET = 'service-test-secret-0123456789';
const REPORT = 'FINDINGS: Discussed with Dr. Okafor on 3/4/2021. MRN 12345678.\nIMPRESSION: No acute process.';

describe('AnonymizerService', () => {
  const tmp = makeTempDir('anonymizer');
  let service: RunningService;
  let client: anonymizer.AnonymizerServiceClient;

  beforeAll(async () => {
    service = await startService(anonymizerService(testServiceEnv(tmp.dir, { ANONYMIZER_SURROGATE_SECRET: SECRET })));
    client = new anonymizer.AnonymizerServiceClient(service.target, grpc.credentials.createInsecure());
  });
  afterAll(async () => {
    client?.close();
    await service?.shutdown();
    tmp.remove();
  });

  it('anonymizes one report with spans in code points, sections and prompt', async () => {
    const text = REPORT.replace('FINDINGS: ', 'FINDINGS: 😀 ');
    const { result } = await callUnary<anonymizer.AnonymizeResponse>(client, 'anonymize', {
      report: { id: 'r1', text },
      options: { mode: anonymizer.OutputMode.OUTPUT_MODE_TAG },
    });
    expect(result!.text).toBe(
      'FINDINGS: 😀 Discussed with Dr. [NAME] on [DATE]. MRN [ID].\nIMPRESSION: No acute process.',
    );
    const name = result!.spans.find((s) => s.label === anonymizer.PhiLabel.PHI_LABEL_NAME)!;
    expect([...text].slice(name.start, name.end).join('')).toBe('Okafor');
    expect(name.rule).toBe('name_after_title');
    expect(result!.sections.map((s) => s.name)).toEqual(['FINDINGS', 'IMPRESSION']);
    expect(result!.prompt).toMatchObject({ text: 'No acute process.', sourceSection: 'IMPRESSION', truncated: false });
  });

  it('answers INVALID_ARGUMENT naming the field, without the text', async () => {
    await expect(callUnary(client, 'anonymize', {})).rejects.toMatchObject({
      code: grpc.status.INVALID_ARGUMENT,
      details: 'report: is required',
    });
    await expect(
      callUnary(client, 'anonymize', { report: { id: 'x', text: REPORT }, options: { mode: 42 } }),
    ).rejects.toMatchObject({ code: grpc.status.INVALID_ARGUMENT, details: 'options.mode: unknown output mode 42' });
  });

  it('streams answers in request order, a bad report answered with its error and the rest going on', async () => {
    const call = client.anonymizeStream();
    const answers: anonymizer.AnonymizeStreamResponse[] = [];
    call.on('data', (a: anonymizer.AnonymizeStreamResponse) => answers.push(a));
    const ended = new Promise((resolve) => call.on('end', resolve));
    call.write(
      anonymizer.AnonymizeStreamRequest.fromPartial({
        report: { id: 'a', text: REPORT, patientKey: 'p' },
        options: { mode: anonymizer.OutputMode.OUTPUT_MODE_SURROGATE },
      }),
    );
    call.write(anonymizer.AnonymizeStreamRequest.fromPartial({ report: { id: 'b', text: REPORT, patientKey: 'p' } }));
    call.write(
      anonymizer.AnonymizeStreamRequest.fromPartial({ options: { mode: anonymizer.OutputMode.OUTPUT_MODE_MASK } }),
    );
    call.write(
      anonymizer.AnonymizeStreamRequest.fromPartial({
        report: { id: 'd', text: REPORT },
        options: { mode: anonymizer.OutputMode.OUTPUT_MODE_MASK },
      }),
    );
    call.end();
    await ended;
    expect(answers.map((a) => a.id)).toEqual(['a', 'b', '', 'd']);
    expect(answers[0]!.result!.text).not.toContain('Okafor');
    // The first message's options apply when unset: b is a surrogate too, with the same surrogates.
    expect(answers[1]!.result!.text).toBe(answers[0]!.result!.text);
    expect(answers[2]!.error).toEqual(
      common.ErrorDetail.fromPartial({ code: 'INVALID_ARGUMENT', message: 'report: is required', field: 'report' }),
    );
    expect(answers[3]!.result!.text).toContain('Dr. ___ on ___');
  });

  it('stops reading while the client does not read its answers (back-pressure), then loses nothing', async () => {
    const processed = async () => {
      const text = await (await fetch(`http://127.0.0.1:${service.metricsPort}/metrics`)).text();
      return [...text.matchAll(/^medsyn_anonymizer_reports_total\{[^}]*\} (\d+)/gm)].reduce(
        (sum, m) => sum + Number(m[1]),
        0,
      );
    };
    const before = await processed();
    // A plain HTTP/2 client speaking gRPC framing, so that "not reading" really leaves the
    // answers unread on the wire (grpc-js clients read ahead into their own buffers).
    const session = http2.connect(`http://${service.target}`);
    const stream = session.request({
      ':method': 'POST',
      ':path': '/medsyn.anonymizer.v1.AnonymizerService/AnonymizeStream',
      'content-type': 'application/grpc',
      te: 'trailers',
    });
    stream.pause();
    const total = 300;
    const text = `${REPORT} ${'Clear lungs. '.repeat(300)}`;
    for (let i = 0; i < total; i++) {
      const message = Buffer.from(
        anonymizer.AnonymizeStreamRequest.encode(
          anonymizer.AnonymizeStreamRequest.fromPartial({ report: { id: String(i), text } }),
        ).finish(),
      );
      const frame = Buffer.alloc(5 + message.length);
      frame.writeUInt32BE(message.length, 1);
      message.copy(frame, 5);
      stream.write(frame);
    }
    stream.end();
    let stalled = -1;
    for (let last = -2; stalled !== last; await new Promise((r) => setTimeout(r, 1000)))
      [last, stalled] = [stalled, (await processed()) - before];
    expect(stalled).toBeGreaterThan(0);
    expect(stalled).toBeLessThan(total);

    const chunks: Buffer[] = [];
    stream.on('data', (chunk: Buffer) => chunks.push(chunk));
    const ended = new Promise((resolve) => stream.on('end', resolve));
    stream.resume();
    await ended;
    session.close();
    const body = Buffer.concat(chunks);
    const ids: string[] = [];
    for (let at = 0; at < body.length; at += 5 + body.readUInt32BE(at + 1))
      ids.push(anonymizer.AnonymizeStreamResponse.decode(body.subarray(at + 5, at + 5 + body.readUInt32BE(at + 1))).id);
    expect(ids).toEqual(Array.from({ length: total }, (_, i) => String(i)));
  });

  it('runs a resumable dataset job from the store', async () => {
    const store = new FileArtifactStore(tmp.dir);
    const manifest = [
      JSON.stringify({ id: 'r1', report: REPORT }),
      'not json',
      JSON.stringify({ id: 'r2', report: 'IMPRESSION: Dr. Okafor agrees.' }),
    ].join('\n');
    const input = await store.put('inputs/reports.jsonl', manifest);
    const request = anonymizer.StartAnonymizeDatasetRequest.fromPartial({
      requestId: 'job-1',
      input,
      textField: 'report',
      options: { mode: anonymizer.OutputMode.OUTPUT_MODE_MASK },
    });
    const { job } = await callUnary<anonymizer.StartAnonymizeDatasetResponse>(client, 'startAnonymizeDataset', request);
    const again = await callUnary<anonymizer.StartAnonymizeDatasetResponse>(client, 'startAnonymizeDataset', request);
    expect(again.job!.jobId).toBe(job!.jobId);

    const jobsClient = new jobs.JobServiceClient(service.target, grpc.credentials.createInsecure());
    const states: common.Job[] = [];
    await new Promise<void>((resolve, reject) => {
      const watch = jobsClient.watchJob({ jobId: job!.jobId });
      watch.on('data', (r: jobs.WatchJobResponse) => states.push(r.job!));
      watch.on('end', resolve);
      watch.on('error', reject);
    });
    jobsClient.close();
    const last = states[states.length - 1]!;
    expect(last).toMatchObject({ state: common.JobState.JOB_STATE_SUCCEEDED, progress: { completed: 3, failed: 1 } });
    const outputs = Object.fromEntries(
      last.outputs.map((o) => [o.uri.slice(o.uri.lastIndexOf('/') + 1), store.keyOf(o.uri)]),
    );
    expect(Object.keys(outputs).sort()).toEqual(['anonymized.jsonl', 'errors.jsonl', 'prompts.jsonl']);
    expect((await getBuffer(store, outputs['prompts.jsonl']!)).toString()).toBe(
      `${JSON.stringify({ id: 'r1', prompt: 'No acute process.', source_section: 'IMPRESSION', token_count: 6, truncated: false })}\n${JSON.stringify({ id: 'r2', prompt: 'Dr. ___ agrees.', source_section: 'IMPRESSION', token_count: 7, truncated: false })}\n`,
    );
    expect((await getBuffer(store, outputs['errors.jsonl']!)).toString()).toContain('"line":2');
  });

  it('refuses a dataset job whose input is missing or unnamed', async () => {
    await expect(
      callUnary(
        client,
        'startAnonymizeDataset',
        anonymizer.StartAnonymizeDatasetRequest.fromPartial({ requestId: 'j2' }),
      ),
    ).rejects.toMatchObject({ code: grpc.status.INVALID_ARGUMENT, details: expect.stringContaining('input.uri') });
    const uri = new FileArtifactStore(tmp.dir).uriOf('inputs/absent.jsonl');
    await expect(
      callUnary(
        client,
        'startAnonymizeDataset',
        anonymizer.StartAnonymizeDatasetRequest.fromPartial({ requestId: 'j3', input: { uri } }),
      ),
    ).rejects.toMatchObject({ code: grpc.status.NOT_FOUND, details: 'input.uri: the manifest is not in the store' });
  });

  it('refuses a dataset job whose input is not the bytes its sha256 names, and takes it with the right one', async () => {
    const store = new FileArtifactStore(tmp.dir);
    const input = await store.put('inputs/changed.jsonl', `${JSON.stringify({ id: 'r1', text: REPORT })}\n`);
    const changed = `${JSON.stringify({ id: 'r9', text: REPORT })}\n`;
    fs.writeFileSync(path.join(tmp.dir, 'inputs', 'changed.jsonl'), changed); // rewritten behind the store's back
    const start = (requestId: string, sha256: string) =>
      callUnary<anonymizer.StartAnonymizeDatasetResponse>(
        client,
        'startAnonymizeDataset',
        anonymizer.StartAnonymizeDatasetRequest.fromPartial({ requestId, input: { ...input, sha256 } }),
      );
    const found = createHash('sha256').update(changed).digest('hex');
    await expect(start('digest-1', input.sha256)).rejects.toMatchObject({
      code: grpc.status.FAILED_PRECONDITION,
      details: `input: sha256 mismatch for ${input.uri} (expected ${input.sha256}, found ${found})`,
    });
    await expect(start('digest-2', 'ABC')).rejects.toMatchObject({
      code: grpc.status.INVALID_ARGUMENT,
      details: expect.stringMatching(/^input\.sha256: must be 64 lower-case hex/),
    });
    expect((await start('digest-3', found)).job!.requestId).toBe('digest-3');
  });
});

describe('a dataset job resumed after a restart', () => {
  it('checks its input again: changed while the service was down, the job fails FAILED_PRECONDITION naming input and its URI', async () => {
    const tmp = makeTempDir('anonymizer-resume');
    const env = testServiceEnv(tmp.dir, { ANONYMIZER_SURROGATE_SECRET: SECRET });
    const store = new FileArtifactStore(tmp.dir);
    const input = await store.put('inputs/reports.jsonl', `${JSON.stringify({ id: 'r1', text: REPORT })}\n`);
    const first = await startService(holdingJobs(anonymizerService(env)));
    const firstClient = new anonymizer.AnonymizerServiceClient(first.target, grpc.credentials.createInsecure());
    const { job } = await callUnary<anonymizer.StartAnonymizeDatasetResponse>(
      firstClient,
      'startAnonymizeDataset',
      anonymizer.StartAnonymizeDatasetRequest.fromPartial({ requestId: 'resumed-1', input }),
    );
    firstClient.close();
    await first.shutdown();

    const changed = `${JSON.stringify({ id: 'r2', text: REPORT })}\n`;
    await store.put('inputs/reports.jsonl', changed);
    const second = await startService(anonymizerService(env));
    try {
      const last = (await watchJobToEnd(second.target, job!.jobId)).at(-1)!;
      const found = createHash('sha256').update(changed).digest('hex');
      expect(last).toMatchObject({
        state: common.JobState.JOB_STATE_FAILED,
        error: {
          code: 'FAILED_PRECONDITION',
          field: 'input',
          message: `input: sha256 mismatch for ${input.uri} (expected ${input.sha256}, found ${found})`,
        },
        outputs: [],
      });
    } finally {
      await second.shutdown();
      tmp.remove();
    }
  });
});

describe('AnonymizerService without a surrogate secret', () => {
  it('refuses surrogate mode with FAILED_PRECONDITION and stops at start on a short secret, hiding it', async () => {
    const tmp = makeTempDir('anonymizer-nosecret');
    const service = await startService(anonymizerService(testServiceEnv(tmp.dir)));
    const client = new anonymizer.AnonymizerServiceClient(service.target, grpc.credentials.createInsecure());
    await expect(
      callUnary(client, 'anonymize', {
        report: { id: 'r', text: REPORT },
        options: { mode: anonymizer.OutputMode.OUTPUT_MODE_SURROGATE },
      }),
    ).rejects.toMatchObject({
      code: grpc.status.FAILED_PRECONDITION,
      details: expect.stringContaining('ANONYMIZER_SURROGATE_SECRET'),
    });
    client.close();
    await service.shutdown();
    await expect(
      startService(anonymizerService(testServiceEnv(tmp.dir, { ANONYMIZER_SURROGATE_SECRET: 'shortsecret' }))),
    ).rejects.toThrow(/ANONYMIZER_SURROGATE_SECRET: the secret must be at least 16 bytes \(value hidden\)/);
    tmp.remove();
  });
});

import * as grpc from '@grpc/grpc-js';
import { FileArtifactStore, getBuffer } from '@medsyn/artifact-store';
import { Anonymizer, createDetector } from '@medsyn/deid';
import { anonymizer, common, jobs } from '@medsyn/proto';
import { startService, type RunningService } from '@medsyn/service-kit';
import { callUnary, healthCheck, makeTempDir, testServiceEnv } from '@medsyn/testing';
import { anonymizerService } from '../src/service';

const PHI_ID = 'John Smith 555-123-4567';
const REPORT = 'FINDINGS: Discussed with Dr. Okafor on 3/4/2021. MRN 12345678.\nIMPRESSION: No acute process.\n';
const MAX_REPORT_BYTES = 2 * 1024 * 1024;

function watchToEnd(target: string, jobId: string): Promise<common.Job> {
  const client = new jobs.JobServiceClient(target, grpc.credentials.createInsecure());
  let last: common.Job | undefined;
  return new Promise<common.Job>((resolve, reject) => {
    const watch = client.watchJob({ jobId });
    watch.on('data', (r: jobs.WatchJobResponse) => (last = r.job));
    watch.on('end', () => (client.close(), resolve(last!)));
    watch.on('error', reject);
  });
}

describe('the anonymizer facing untrusted input', () => {
  const tmp = makeTempDir('anonymizer-untrusted');
  const store = new FileArtifactStore(tmp.dir);
  let service: RunningService;
  let client: anonymizer.AnonymizerServiceClient;
  const logs: string[] = [];

  beforeAll(async () => {
    const env = testServiceEnv(tmp.dir, {
      ANONYMIZER_DETECTOR: 'rules',
      ANONYMIZER_MAX_REPORT_BYTES: String(MAX_REPORT_BYTES),
      LOG_LEVEL: 'debug',
    });
    const destination = { write: (line: string) => logs.push(line) };
    service = await startService({ ...anonymizerService(env), logDestination: destination as never });
    client = new anonymizer.AnonymizerServiceClient(service.target, grpc.credentials.createInsecure(), {
      'grpc.max_receive_message_length': -1,
      'grpc.max_send_message_length': -1,
    });
  });
  afterAll(async () => {
    client?.close();
    await service?.shutdown();
    tmp.remove();
  });

  it('refuses a report id that is not an opaque key, naming report.id and never echoing it', async () => {
    const error = await callUnary(
      client,
      'anonymize',
      anonymizer.AnonymizeRequest.fromPartial({ report: { id: PHI_ID, text: REPORT } }),
    ).catch((e: grpc.ServiceError) => e);
    expect(error).toMatchObject({
      code: grpc.status.INVALID_ARGUMENT,
      details: expect.stringMatching(/^report\.id: must be 1 to 128 characters/),
    });
    expect(JSON.stringify(error)).not.toContain('Smith');
    await expect(
      callUnary(
        client,
        'anonymize',
        anonymizer.AnonymizeRequest.fromPartial({ report: { id: 'x'.repeat(129), text: REPORT } }),
      ),
    ).rejects.toMatchObject({ code: grpc.status.INVALID_ARGUMENT });
    expect(
      await callUnary(
        client,
        'anonymize',
        anonymizer.AnonymizeRequest.fromPartial({ report: { id: 'ok.1:a_b-c', text: REPORT } }),
      ),
    ).toMatchObject({ result: { id: 'ok.1:a_b-c' } });
  });

  it('answers a streamed report with such an id without echoing the id', async () => {
    const call = client.anonymizeStream();
    const answers: anonymizer.AnonymizeStreamResponse[] = [];
    call.on('data', (a: anonymizer.AnonymizeStreamResponse) => answers.push(a));
    const ended = new Promise((resolve) => call.on('end', resolve));
    call.write(anonymizer.AnonymizeStreamRequest.fromPartial({ report: { id: PHI_ID, text: REPORT } }));
    call.write(anonymizer.AnonymizeStreamRequest.fromPartial({ report: { id: 'b', text: REPORT } }));
    call.end();
    await ended;
    expect(answers.map((a) => [a.id, a.error?.field ?? '', a.error?.recordId ?? ''])).toEqual([
      ['', 'report.id', ''],
      ['b', '', ''],
    ]);
    expect(JSON.stringify(answers) + logs.join('')).not.toMatch(/Smith|555-123/);
  });

  it('refuses a report above ANONYMIZER_MAX_REPORT_BYTES with RESOURCE_EXHAUSTED naming report.text, and stays healthy', async () => {
    const text = 'a'.repeat(MAX_REPORT_BYTES + 1);
    await expect(
      callUnary(client, 'anonymize', anonymizer.AnonymizeRequest.fromPartial({ report: { id: 'big', text } })),
    ).rejects.toMatchObject({
      code: grpc.status.RESOURCE_EXHAUSTED,
      details: expect.stringMatching(
        /^report\.text: 2097153 bytes is more than this service accepts \(ANONYMIZER_MAX_REPORT_BYTES=2097152\)/,
      ),
    });
    expect(await healthCheck(service.target)).toBe('SERVING');
  });

  it('anonymizes a long report on its worker thread exactly as on the main thread, answering health checks meanwhile', async () => {
    const text = REPORT.repeat(Math.floor((MAX_REPORT_BYTES - 1000) / REPORT.length));
    const order: string[] = [];
    const long = callUnary<anonymizer.AnonymizeResponse>(
      client,
      'anonymize',
      anonymizer.AnonymizeRequest.fromPartial({
        report: { id: 'long', text },
        options: { mode: anonymizer.OutputMode.OUTPUT_MODE_TAG },
      }),
    ).then((r) => {
      order.push('long');
      return r;
    });
    await new Promise((resolve) => setTimeout(resolve, 200));
    expect(await healthCheck(service.target)).toBe('SERVING');
    order.push('health');
    const { result } = await long;
    // Health was answered while the long report was still being worked on.
    expect(order).toEqual(['health', 'long']);
    const expected = await new Anonymizer({ detector: createDetector('rules') }).anonymize({ id: 'long', text }, 'tag');
    expect(result!.text).toBe(expected.text);
    expect(result!.spans).toHaveLength(expected.spans.length);
  });

  it('refuses an id_field that is the text field, naming id_field', async () => {
    const input = await store.put('inputs/same-field.jsonl', JSON.stringify({ id: 'r1', text: REPORT }));
    for (const fields of [{ idField: 'text' }, { idField: 'report', textField: 'report' }]) {
      await expect(
        callUnary(
          client,
          'startAnonymizeDataset',
          anonymizer.StartAnonymizeDatasetRequest.fromPartial({
            requestId: `same-${fields.idField}`,
            input,
            ...fields,
          }),
        ),
      ).rejects.toMatchObject({
        code: grpc.status.INVALID_ARGUMENT,
        details: expect.stringMatching(/^id_field: must not be the text field/),
      });
    }
  });

  it('validates output_prefix at start: jobs/ is reserved, ".." and absolute prefixes are refused', async () => {
    const input = await store.put('inputs/ok.jsonl', JSON.stringify({ id: 'r1', text: REPORT }));
    for (const outputPrefix of ['jobs/anonymizer/', '../outside/', '/abs/', 'a/../../b/']) {
      await expect(
        callUnary(
          client,
          'startAnonymizeDataset',
          anonymizer.StartAnonymizeDatasetRequest.fromPartial({ requestId: `p-${outputPrefix}`, input, outputPrefix }),
        ),
      ).rejects.toMatchObject({
        code: grpc.status.INVALID_ARGUMENT,
        details: expect.stringContaining('output_prefix'),
      });
    }
  });

  it('gives an output prefix to its first job: another input on it is refused, the same request re-attaches', async () => {
    const a = await store.put('inputs/a.jsonl', JSON.stringify({ id: 'a1', text: REPORT }));
    const b = await store.put('inputs/b.jsonl', JSON.stringify({ id: 'b1', text: REPORT }));
    const request = anonymizer.StartAnonymizeDatasetRequest.fromPartial({
      requestId: 'owner-a',
      input: a,
      outputPrefix: 'shared/run/',
    });
    const { job } = await callUnary<anonymizer.StartAnonymizeDatasetResponse>(client, 'startAnonymizeDataset', request);
    expect((await watchToEnd(service.target, job!.jobId)).state).toBe(common.JobState.JOB_STATE_SUCCEEDED);
    await expect(
      callUnary(
        client,
        'startAnonymizeDataset',
        anonymizer.StartAnonymizeDatasetRequest.fromPartial({
          requestId: 'owner-b',
          input: b,
          outputPrefix: 'shared/run/',
        }),
      ),
    ).rejects.toMatchObject({
      code: grpc.status.FAILED_PRECONDITION,
      details: expect.stringContaining('output_prefix'),
    });
    expect(
      (await callUnary<anonymizer.StartAnonymizeDatasetResponse>(client, 'startAnonymizeDataset', request)).job!.jobId,
    ).toBe(job!.jobId);
    expect((await getBuffer(store, 'shared/run/anonymized.jsonl')).toString()).toContain('"id":"a1"');
  });

  it('keeps a dataset record id holding PHI out of every output, errors.jsonl and the log', async () => {
    const input = await store.put(
      'inputs/phi-ids.jsonl',
      [JSON.stringify({ id: PHI_ID, text: REPORT }), JSON.stringify({ id: 'r2', text: REPORT })].join('\n'),
    );
    const { job } = await callUnary<anonymizer.StartAnonymizeDatasetResponse>(
      client,
      'startAnonymizeDataset',
      anonymizer.StartAnonymizeDatasetRequest.fromPartial({ requestId: 'phi-ids', input, outputPrefix: 'phi-ids/' }),
    );
    const done = await watchToEnd(service.target, job!.jobId);
    expect(done).toMatchObject({ state: common.JobState.JOB_STATE_SUCCEEDED, progress: { completed: 2, failed: 1 } });
    const errors = (await getBuffer(store, 'phi-ids/errors.jsonl')).toString();
    expect(JSON.parse(errors)).toMatchObject({ line: 1, id: '', field: 'id' });
    for await (const object of store.list('phi-ids/'))
      expect((await getBuffer(store, object.key)).toString()).not.toMatch(/Smith|555-123/);
    expect(logs.join('')).not.toMatch(/Smith|555-123/);
  });
});

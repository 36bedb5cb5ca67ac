import * as fs from 'node:fs';
import * as path from 'node:path';
import * as grpc from '@grpc/grpc-js';
import { jobs } from '@medsyn/proto';
import { makeTempDir, makeTlsFixture, type TlsFixture } from '@medsyn/testing';
import {
  PipelineConfigError,
  connect,
  parsePipelineConfig,
  startLocalServices,
  unary,
  type Endpoint,
  type LocalServices,
} from '../src';

const tmp = makeTempDir('pipeline-remote');
afterAll(() => tmp.remove());

const TOKEN = 'pipeline-test-token-0123456789';
const env = { MEDSYN_TEST_TOKEN: TOKEN, WRONG_TOKEN: 'not-the-token-0123456789' };

/** ListJobs through the pipeline's own client factory: resolves with the gRPC status code (0 when it succeeds). */
async function listJobs(endpoint: Endpoint): Promise<grpc.status> {
  const client = connect(jobs.JobServiceClient, endpoint, env);
  try {
    await unary(client, 'listJobs', jobs.ListJobsRequest.fromPartial({}));
    return grpc.status.OK;
  } catch (error) {
    return (error as grpc.ServiceError).code;
  } finally {
    client.close();
  }
}

describe('the pipeline to a service that asks for a bearer token (and TLS)', () => {
  let tls: TlsFixture;
  let tokenOnly: LocalServices;
  let mutualTls: LocalServices;

  beforeAll(async () => {
    fs.mkdirSync(path.join(tmp.dir, 'tls'));
    tls = makeTlsFixture(path.join(tmp.dir, 'tls'));
    const store = `file://${path.join(tmp.dir, 'store')}`;
    [tokenOnly, mutualTls] = await Promise.all([
      startLocalServices(['anonymizer'], {
        store,
        logDir: path.join(tmp.dir, 'logs-token'),
        env: { GRPC_AUTH_TOKEN: TOKEN },
      }),
      startLocalServices(['anonymizer'], {
        store,
        logDir: path.join(tmp.dir, 'logs-tls'),
        env: {
          GRPC_AUTH_TOKEN: TOKEN,
          GRPC_TLS_CERT: tls.serverCert,
          GRPC_TLS_KEY: tls.serverKey,
          GRPC_TLS_CLIENT_CA: tls.caCert,
        },
        tls: { ca: tls.caCert, cert: tls.clientCert, key: tls.clientKey },
      }),
    ]);
  }, 180_000);
  afterAll(async () => {
    await tokenOnly?.stop();
    await mutualTls?.stop();
  });

  it('is refused UNAUTHENTICATED without the token or with a wrong one, and served with it (plaintext, loopback)', async () => {
    const { address } = tokenOnly.endpoints.anonymizer!;
    expect(await listJobs({ address })).toBe(grpc.status.UNAUTHENTICATED);
    expect(await listJobs({ address, tokenEnv: 'WRONG_TOKEN' })).toBe(grpc.status.UNAUTHENTICATED);
    expect(await listJobs({ address, tokenEnv: 'MEDSYN_TEST_TOKEN' })).toBe(grpc.status.OK);
  });

  it('speaks mutual TLS with the CA and client certificate, and still needs the token', async () => {
    // The server certificate names localhost and 127.0.0.1.
    const { address } = mutualTls.endpoints.anonymizer!;
    const mtls = { ca: tls.caCert, cert: tls.clientCert, key: tls.clientKey };
    expect(await listJobs({ address, tls: mtls })).toBe(grpc.status.UNAUTHENTICATED);
    expect(await listJobs({ address, tokenEnv: 'MEDSYN_TEST_TOKEN' })).toBe(grpc.status.UNAVAILABLE);
    expect(await listJobs({ address, tls: { ca: tls.caCert }, tokenEnv: 'MEDSYN_TEST_TOKEN' })).toBe(
      grpc.status.UNAVAILABLE,
    );
    expect(await listJobs({ address, tls: mtls, tokenEnv: 'MEDSYN_TEST_TOKEN' })).toBe(grpc.status.OK);
  });

  it('reads the remote-endpoint options from the config, naming the key of a mistake', () => {
    const dir = path.join(tmp.dir, 'config');
    fs.mkdirSync(path.join(dir, 'model'), { recursive: true });
    fs.mkdirSync(path.join(dir, 'dataset'), { recursive: true });
    fs.writeFileSync(path.join(dir, 'model', 'model_index.json'), '{}');
    fs.writeFileSync(path.join(dir, 'reports.jsonl'), '');
    fs.copyFileSync(tls.caCert, path.join(dir, 'ca.crt'));
    const parse = (services: unknown) => () =>
      parsePipelineConfig(
        {
          run: 'r',
          services,
          input: { reports: 'reports.jsonl' },
          synthesize: { model: 'model' },
          pretrain: { methods: ['convirt'], data: ['synthetic'] },
          evaluate: { dataset: { format: 'covid_cxr', root: 'dataset' }, tasks: ['classification'] },
        },
        dir,
        env,
      );
    const config = parse({
      anonymizer: 'anon.example:50051',
      evaluator: { address: 'eval.example:50054', token_env: 'WRONG_TOKEN' },
      tls: { ca: 'ca.crt' },
      token_env: 'MEDSYN_TEST_TOKEN',
    })();
    expect(config.services).toEqual({
      anonymizer: {
        address: 'anon.example:50051',
        tls: { ca: path.join(dir, 'ca.crt') },
        tokenEnv: 'MEDSYN_TEST_TOKEN',
      },
      evaluator: { address: 'eval.example:50054', tls: { ca: path.join(dir, 'ca.crt') }, tokenEnv: 'WRONG_TOKEN' },
    });
    expect(JSON.stringify(config)).not.toContain(TOKEN);
    const rejects = (services: unknown, message: string) => {
      expect(parse(services)).toThrow(PipelineConfigError);
      expect(parse(services)).toThrow(message);
    };
    rejects({ anonymizer: 'anon.example:50051', token: TOKEN }, 'services.token: unknown key');
    rejects(
      { anonymizer: 'anon.example:50051', token_env: 'UNSET_TOKEN', tls: { ca: 'ca.crt' } },
      'services.token_env: the environment variable UNSET_TOKEN is not set',
    );
    rejects(
      { anonymizer: { address: 'anon.example:50051', token_env: 'MEDSYN_TEST_TOKEN' } },
      'services.anonymizer.token_env: the token would go to anon.example:50051 in clear',
    );
    rejects(
      { anonymizer: { address: 'anon.example:50051', tls: { ca: 'ca.crt', cert: 'ca.crt' } } },
      'services.anonymizer.tls.key: a client certificate needs both cert and key',
    );
    rejects(
      { anonymizer: { address: 'anon.example:50051', tls: { ca: 'missing.crt' } } },
      'services.anonymizer.tls.ca: file not found',
    );
    rejects({ anonymizer: 'anon.example' }, 'services.anonymizer.address: must be host:port');
    expect(
      parse({ anonymizer: { address: 'anon.example:50051', token_env: 'MEDSYN_TEST_TOKEN', plaintext: true } })()
        .services.anonymizer,
    ).toEqual({ address: 'anon.example:50051', tokenEnv: 'MEDSYN_TEST_TOKEN' });
  });
});

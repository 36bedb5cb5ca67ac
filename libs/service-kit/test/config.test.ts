import * as fs from 'node:fs';
import * as path from 'node:path';
import { z } from 'zod';
import { makeTempDir, makeTlsFixture } from '@medsyn/testing';
import { ConfigError, loadConfig } from '../src';

const defaults = { grpcPort: 50051, metricsPort: 9461 };
const tmp = makeTempDir('config');
afterAll(() => tmp.remove());

function problems(env: NodeJS.ProcessEnv): string {
  try {
    loadConfig(env, defaults);
  } catch (error) {
    expect(error).toBeInstanceOf(ConfigError);
    return (error as ConfigError).message;
  }
  throw new Error('expected a ConfigError');
}

describe('configuration from the environment', () => {
  it('uses documented defaults when nothing is set', () => {
    expect(loadConfig({}, defaults)).toMatchObject({
      grpcHost: '127.0.0.1',
      metricsHost: '127.0.0.1',
      insecureListen: false,
      maxRunningJobs: 2,
      grpcPort: 50051,
      metricsPort: 9461,
      storeUri: 'file://./.medsyn',
      logLevel: 'info',
      maxMessageBytes: 64 * 1024 * 1024,
      shutdownGraceMs: 20000,
      tls: undefined,
      authToken: undefined,
    });
  });

  it('names every bad variable with the value it got', () => {
    const message = problems({
      GRPC_PORT: 'abc',
      METRICS_PORT: '70000',
      LOG_LEVEL: 'loud',
      GRPC_MAX_MESSAGE_BYTES: '-1',
    });
    expect(message).toMatch(/GRPC_PORT: must be a port number \(got "abc"\)/);
    expect(message).toMatch(/METRICS_PORT: must be from 0 to 65535 \(got "70000"\)/);
    expect(message).toMatch(/LOG_LEVEL: .*\(got "loud"\)/);
    expect(message).toMatch(/GRPC_MAX_MESSAGE_BYTES: must be positive/);
  });

  it('never shows the value of a secret', () => {
    const message = problems({ GRPC_AUTH_TOKEN: 'short-secret' });
    expect(message).toMatch(/GRPC_AUTH_TOKEN: must be at least 16 characters \(value hidden\)/);
    expect(message).not.toContain('short-secret');
  });

  it('reports unreadable TLS files and incomplete TLS settings', () => {
    expect(problems({ GRPC_TLS_CERT: '/nonexistent/cert.pem', GRPC_TLS_KEY: '/nonexistent/key.pem' })).toMatch(
      /GRPC_TLS_CERT: cannot read \/nonexistent\/cert\.pem \(ENOENT\)[\s\S]*GRPC_TLS_KEY: cannot read/,
    );
    const cert = path.join(tmp.dir, 'cert.pem');
    fs.writeFileSync(cert, 'x');
    expect(problems({ GRPC_TLS_CERT: cert })).toMatch(/GRPC_TLS_CERT and GRPC_TLS_KEY must be set together/);
    expect(problems({ GRPC_TLS_CLIENT_CA: cert })).toMatch(/GRPC_TLS_CLIENT_CA \(mutual TLS\) needs GRPC_TLS_CERT/);
  });

  it('reads the auth token from a file', () => {
    const file = path.join(tmp.dir, 'token');
    fs.writeFileSync(file, 'a-token-of-enough-length\n');
    expect(loadConfig({ GRPC_AUTH_TOKEN_FILE: file }, defaults).authToken).toBe('a-token-of-enough-length');
  });

  it("validates a service's own variables with the kit's", () => {
    const extra = { GUIDANCE_SCALE: z.coerce.number().min(0, 'must be >= 0').default(3) };
    expect(loadConfig({}, defaults, extra).service.GUIDANCE_SCALE).toBe(3);
    expect(() => loadConfig({ GUIDANCE_SCALE: '-1' }, defaults, extra)).toThrow(
      /GUIDANCE_SCALE: must be >= 0 \(got "-1"\)/,
    );
  });
});

describe('safe by default: where the services listen', () => {
  const token = { GRPC_AUTH_TOKEN: 'a-token-of-enough-length' };

  it('listens on loopback only when neither TLS nor a token protects the port', () => {
    expect(loadConfig({}, defaults)).toMatchObject({ grpcHost: '127.0.0.1', metricsHost: '127.0.0.1' });
    expect(loadConfig({ GRPC_HOST: 'localhost' }, defaults).grpcHost).toBe('localhost');
    expect(loadConfig({ GRPC_HOST: '::1' }, defaults).grpcHost).toBe('::1');
  });

  it('refuses a wider unprotected GRPC_HOST, naming the variables that would allow it', () => {
    const message = problems({ GRPC_HOST: '0.0.0.0' });
    expect(message).toMatch(/GRPC_HOST: "0\.0\.0\.0" is not a loopback address/);
    for (const name of ['GRPC_TLS_CERT', 'GRPC_AUTH_TOKEN', 'GRPC_INSECURE_LISTEN=true'])
      expect(message).toContain(name);
    expect(problems({ GRPC_HOST: '10.0.0.5' })).toMatch(/GRPC_HOST/);
  });

  it('listens on every interface by default once a token or TLS protects the port', () => {
    expect(loadConfig(token, defaults)).toMatchObject({ grpcHost: '0.0.0.0', metricsHost: '0.0.0.0' });
    const tls = makeTlsFixture(tmp.dir);
    expect(
      loadConfig(
        { GRPC_TLS_CERT: tls.serverCert, GRPC_TLS_KEY: tls.serverKey, GRPC_TLS_CLIENT_CA: tls.caCert },
        defaults,
      ).grpcHost,
    ).toBe('0.0.0.0');
    expect(loadConfig({ ...token, GRPC_HOST: '10.0.0.5' }, defaults).grpcHost).toBe('10.0.0.5');
  });

  it('opens an unprotected port only with the explicit GRPC_INSECURE_LISTEN=true', () => {
    expect(loadConfig({ GRPC_INSECURE_LISTEN: 'true' }, defaults)).toMatchObject({
      grpcHost: '0.0.0.0',
      insecureListen: true,
    });
    expect(loadConfig({ GRPC_INSECURE_LISTEN: 'true', GRPC_HOST: '10.0.0.5' }, defaults).grpcHost).toBe('10.0.0.5');
    expect(problems({ GRPC_INSECURE_LISTEN: 'yes' })).toMatch(/GRPC_INSECURE_LISTEN: must be true or false/);
  });

  it('allows any explicit METRICS_HOST (counts only, no PHI) while gRPC stays on loopback', () => {
    expect(loadConfig({ METRICS_HOST: '0.0.0.0' }, defaults)).toMatchObject({
      grpcHost: '127.0.0.1',
      metricsHost: '0.0.0.0',
    });
  });
});

describe('TLS material is checked at start', () => {
  const tls = makeTlsFixture(tmp.dir);
  const garbage = path.join(tmp.dir, 'garbage.pem');
  fs.writeFileSync(garbage, '-----BEGIN CERTIFICATE-----\nbm90IGEgY2VydGlmaWNhdGU=\n-----END CERTIFICATE-----\n');
  const plain = path.join(tmp.dir, 'plain.txt');
  fs.writeFileSync(plain, 'hello');

  it('stops on a garbage GRPC_TLS_CLIENT_CA, naming it', () => {
    for (const file of [garbage, plain]) {
      expect(
        problems({ GRPC_TLS_CERT: tls.serverCert, GRPC_TLS_KEY: tls.serverKey, GRPC_TLS_CLIENT_CA: file }),
      ).toMatch(/GRPC_TLS_CLIENT_CA: not a bundle of PEM CA certificates/);
    }
  });

  it('stops on a garbage certificate or key, or a key of another certificate, naming it', () => {
    expect(problems({ GRPC_TLS_CERT: garbage, GRPC_TLS_KEY: tls.serverKey })).toMatch(
      /GRPC_TLS_CERT: not a PEM certificate/,
    );
    expect(problems({ GRPC_TLS_CERT: tls.serverCert, GRPC_TLS_KEY: plain })).toMatch(
      /GRPC_TLS_KEY: not a PEM private key/,
    );
    expect(problems({ GRPC_TLS_CERT: tls.serverCert, GRPC_TLS_KEY: tls.clientKey })).toMatch(
      /GRPC_TLS_KEY: does not match the certificate in GRPC_TLS_CERT/,
    );
  });

  it('accepts a real certificate, key and client CA', () => {
    expect(
      loadConfig(
        { GRPC_TLS_CERT: tls.serverCert, GRPC_TLS_KEY: tls.serverKey, GRPC_TLS_CLIENT_CA: tls.caCert },
        defaults,
      ).tls?.clientCa,
    ).toBeDefined();
  });
});

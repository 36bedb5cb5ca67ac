import * as fs from 'node:fs';
import * as path from 'node:path';
import { z } from 'zod';
import { makeTempDir } from '@medsyn/testing';
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
      grpcHost: '0.0.0.0',
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
    const message = problems({ GRPC_PORT: 'abc', METRICS_PORT: '70000', LOG_LEVEL: 'loud', GRPC_MAX_MESSAGE_BYTES: '-1' });
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
    expect(() => loadConfig({ GUIDANCE_SCALE: '-1' }, defaults, extra)).toThrow(/GUIDANCE_SCALE: must be >= 0 \(got "-1"\)/);
  });
});

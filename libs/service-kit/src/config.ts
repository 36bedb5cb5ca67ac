import { X509Certificate, createPrivateKey } from 'node:crypto';
import * as fs from 'node:fs';
import * as tls from 'node:tls';
import { z } from 'zod';

/** A variable that is missing or malformed; the message names every bad variable, never a secret's value. */
export class ConfigError extends Error {
  constructor(readonly problems: string[]) {
    super(`invalid configuration:\n${problems.map((p) => `  ${p}`).join('\n')}`);
    this.name = 'ConfigError';
  }
}

/** Per-service defaults: each service has its own ports so all four run side by side. */
export interface ServiceDefaults {
  grpcPort: number;
  metricsPort: number;
  /** Jobs run at once (JOBS_MAX_RUNNING); default 2. */
  maxRunningJobs?: number;
}

const port = z.coerce
  .number({ error: 'must be a port number' })
  .int('must be an integer')
  .min(0, 'must be from 0 to 65535')
  .max(65535, 'must be from 0 to 65535');
const positiveInt = z.coerce.number().int('must be an integer').positive('must be positive');
const optionalPath = z.string().min(1).optional();

/** The environment every service reads (names match the YAML keys and CLI flags in docs/configuration.md). */
function kitSchema(defaults: ServiceDefaults) {
  return z.object({
    // No default here: it depends on whether the port is protected (see listenHosts()).
    GRPC_HOST: z.string().optional(),
    GRPC_PORT: port.default(defaults.grpcPort),
    GRPC_INSECURE_LISTEN: z.enum(['true', 'false'], { error: 'must be true or false' }).default('false'),
    METRICS_HOST: z.string().optional(),
    METRICS_PORT: port.default(defaults.metricsPort),
    MEDSYN_STORE: z.string().default('file://./.medsyn'),
    LOG_LEVEL: z.enum(['fatal', 'error', 'warn', 'info', 'debug', 'trace', 'silent']).default('info'),
    GRPC_MAX_MESSAGE_BYTES: positiveInt.max(2 ** 31 - 1, 'must be below 2 GiB').default(64 * 1024 * 1024),
    GRPC_TLS_CERT: optionalPath,
    GRPC_TLS_KEY: optionalPath,
    GRPC_TLS_CLIENT_CA: optionalPath,
    GRPC_AUTH_TOKEN: z.string().min(16, 'must be at least 16 characters').optional(),
    GRPC_AUTH_TOKEN_FILE: optionalPath,
    SHUTDOWN_GRACE_SECONDS: z.coerce.number().min(0, 'must be >= 0').max(3600, 'must be <= 3600').default(20),
    GPU_SAMPLE_INTERVAL_SECONDS: z.coerce.number().min(0.1, 'must be >= 0.1').default(5),
    JOBS_MAX_RUNNING: positiveInt.max(1000, 'must be <= 1000').default(defaults.maxRunningJobs ?? 2),
  });
}

const SECRET_VARIABLES = new Set(['GRPC_AUTH_TOKEN']);

export interface TlsFiles {
  cert: Buffer;
  key: Buffer;
  /** Present for mutual TLS: clients must show a certificate signed by it. */
  clientCa?: Buffer;
}

export interface KitConfig {
  grpcHost: string;
  grpcPort: number;
  /** GRPC_INSECURE_LISTEN=true: a non-loopback address without TLS or a token (logged as a warning). */
  insecureListen: boolean;
  metricsHost: string;
  metricsPort: number;
  storeUri: string;
  logLevel: string;
  maxMessageBytes: number;
  tls?: TlsFiles;
  authToken?: string;
  shutdownGraceMs: number;
  gpuSampleIntervalMs: number;
  maxRunningJobs: number;
}

/** 127.0.0.0/8, ::1 and localhost: reachable from this machine only. */
export function isLoopback(host: string): boolean {
  return host === 'localhost' || host === '::1' || host === '[::1]' || /^127\.\d{1,3}\.\d{1,3}\.\d{1,3}$/.test(host);
}

/**
 * Safe by default: without TLS or a bearer token the gRPC port (reports, PHI) listens on loopback
 * only; a wider GRPC_HOST needs one of them or GRPC_INSECURE_LISTEN=true. The metrics port
 * carries counts only (no PHI, no ids), so it follows the gRPC default but any explicit
 * METRICS_HOST is allowed (Prometheus scrapes it from another pod).
 */
function listenHosts(
  v: { GRPC_HOST?: string; METRICS_HOST?: string },
  secured: boolean,
  insecureListen: boolean,
  problems: string[],
) {
  const open = secured || insecureListen;
  const fallback = open ? '0.0.0.0' : '127.0.0.1';
  const grpcHost = v.GRPC_HOST ?? fallback;
  if (!open && !isLoopback(grpcHost)) {
    problems.push(
      `GRPC_HOST: ${JSON.stringify(grpcHost)} is not a loopback address and the port is unprotected; set GRPC_TLS_CERT/GRPC_TLS_KEY or GRPC_AUTH_TOKEN/GRPC_AUTH_TOKEN_FILE, or GRPC_INSECURE_LISTEN=true to accept it (docs/configuration.md)`,
    );
  }
  return { grpcHost, metricsHost: v.METRICS_HOST ?? fallback };
}

/** Parses the TLS material at start, so a garbage file stops the service instead of failing every handshake. */
function checkTls(
  cert: Buffer | undefined,
  key: Buffer | undefined,
  clientCa: Buffer | undefined,
  problems: string[],
): void {
  let certificate: X509Certificate | undefined;
  if (cert) {
    try {
      certificate = new X509Certificate(cert);
    } catch {
      problems.push('GRPC_TLS_CERT: not a PEM certificate');
    }
  }
  let privateKey: ReturnType<typeof createPrivateKey> | undefined;
  if (key) {
    try {
      privateKey = createPrivateKey(key);
    } catch {
      problems.push('GRPC_TLS_KEY: not a PEM private key (or it is encrypted)');
    }
  }
  if (certificate && privateKey && !certificate.checkPrivateKey(privateKey))
    problems.push('GRPC_TLS_KEY: does not match the certificate in GRPC_TLS_CERT');
  if (clientCa) {
    const blocks =
      clientCa.toString('utf8').match(/-----BEGIN CERTIFICATE-----[\s\S]+?-----END CERTIFICATE-----/g) ?? [];
    const bad =
      blocks.length === 0 ||
      blocks.some((pem) => {
        try {
          return !new X509Certificate(pem);
        } catch {
          return true;
        }
      });
    if (bad) problems.push('GRPC_TLS_CLIENT_CA: not a bundle of PEM CA certificates');
  }
  if (certificate && privateKey && !problems.length) {
    try {
      tls.createSecureContext({ cert, key, ca: clientCa });
    } catch (error) {
      problems.push(`GRPC_TLS_CERT: unusable with GRPC_TLS_KEY/GRPC_TLS_CLIENT_CA (${(error as Error).message})`);
    }
  }
}

/**
 * Reads the kit's variables from env, plus a service's own when `extra` is given. Every problem
 * is collected and reported at once, naming the variable (values of secrets are never shown).
 */
export function loadConfig<E extends z.ZodRawShape = Record<never, never>>(
  env: NodeJS.ProcessEnv,
  defaults: ServiceDefaults,
  extra?: E,
): KitConfig & { service: z.infer<z.ZodObject<E>> } {
  const schema = kitSchema(defaults).extend(extra ?? ({} as E));
  const blankless = Object.fromEntries(Object.entries(env).filter(([, v]) => v !== undefined && v !== ''));
  const parsed = schema.safeParse(blankless);
  if (!parsed.success) {
    throw new ConfigError(
      parsed.error.issues.map((issue) => {
        const name = String(issue.path[0]);
        const value = blankless[name];
        const shown =
          value === undefined
            ? ''
            : SECRET_VARIABLES.has(name)
              ? ' (value hidden)'
              : ` (got ${JSON.stringify(value.slice(0, 200))})`;
        return `${name}: ${issue.message}${shown}`;
      }),
    );
  }
  const v = parsed.data as z.infer<ReturnType<typeof kitSchema>> & Record<string, unknown>;
  const problems: string[] = [];
  const read = (name: string, file: string | undefined): Buffer | undefined => {
    if (!file) return undefined;
    try {
      return fs.readFileSync(file);
    } catch (error) {
      problems.push(`${name}: cannot read ${file} (${(error as NodeJS.ErrnoException).code ?? 'error'})`);
      return undefined;
    }
  };
  if (Boolean(v.GRPC_TLS_CERT) !== Boolean(v.GRPC_TLS_KEY))
    problems.push('GRPC_TLS_CERT and GRPC_TLS_KEY must be set together');
  if (v.GRPC_TLS_CLIENT_CA && !v.GRPC_TLS_CERT)
    problems.push('GRPC_TLS_CLIENT_CA (mutual TLS) needs GRPC_TLS_CERT and GRPC_TLS_KEY');
  if (v.GRPC_AUTH_TOKEN && v.GRPC_AUTH_TOKEN_FILE)
    problems.push('set GRPC_AUTH_TOKEN or GRPC_AUTH_TOKEN_FILE, not both');
  const cert = read('GRPC_TLS_CERT', v.GRPC_TLS_CERT);
  const key = read('GRPC_TLS_KEY', v.GRPC_TLS_KEY);
  const clientCa = read('GRPC_TLS_CLIENT_CA', v.GRPC_TLS_CLIENT_CA);
  const tokenFromFile = read('GRPC_AUTH_TOKEN_FILE', v.GRPC_AUTH_TOKEN_FILE)?.toString('utf8').trim();
  if (tokenFromFile !== undefined && tokenFromFile.length < 16)
    problems.push('GRPC_AUTH_TOKEN_FILE: token must be at least 16 characters');
  checkTls(cert, key, clientCa, problems);
  const authToken = v.GRPC_AUTH_TOKEN ?? tokenFromFile;
  const insecureListen = v.GRPC_INSECURE_LISTEN === 'true';
  const { grpcHost, metricsHost } = listenHosts(
    v,
    Boolean(cert && key) || Boolean(authToken),
    insecureListen,
    problems,
  );
  if (problems.length) throw new ConfigError(problems);

  const service = Object.fromEntries(Object.keys(extra ?? {}).map((k) => [k, v[k]])) as z.infer<z.ZodObject<E>>;
  return {
    grpcHost,
    grpcPort: v.GRPC_PORT,
    insecureListen,
    metricsHost,
    metricsPort: v.METRICS_PORT,
    storeUri: v.MEDSYN_STORE,
    logLevel: v.LOG_LEVEL,
    maxMessageBytes: v.GRPC_MAX_MESSAGE_BYTES,
    tls: cert && key ? { cert, key, clientCa } : undefined,
    authToken,
    shutdownGraceMs: v.SHUTDOWN_GRACE_SECONDS * 1000,
    gpuSampleIntervalMs: v.GPU_SAMPLE_INTERVAL_SECONDS * 1000,
    maxRunningJobs: v.JOBS_MAX_RUNNING,
    service,
  };
}

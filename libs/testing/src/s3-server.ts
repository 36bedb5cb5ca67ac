import * as path from 'node:path';
import { startProcess, type ManagedProcess } from './process';
import { makeTempDir } from './temp';

/** A real S3-protocol server (s3rver) in its own process on loopback. */
export interface S3Server {
  endpoint: string;
  accessKey: string;
  secretKey: string;
  /** Environment that points medsyn's S3 store at this server. */
  env: Record<string, string>;
  process: ManagedProcess;
  stop(): Promise<void>;
}

/** Starts s3rver on a free loopback port with the given buckets created. */
export async function startS3Server(buckets: string[] = ['medsyn']): Promise<S3Server> {
  const data = makeTempDir('s3rver');
  const bin = path.join(path.dirname(require.resolve('s3rver/package.json')), 'bin', 's3rver.js');
  const args = [
    bin,
    '-d',
    data.dir,
    '-a',
    '127.0.0.1',
    '-p',
    '0',
    ...buckets.flatMap((b) => ['--configure-bucket', b]),
  ];
  const proc = await startProcess(process.execPath, { args, readyWhen: /listening on 127\.0\.0\.1:(\d+)/ });
  const endpoint = `http://127.0.0.1:${proc.readyMatch![1]}`;
  // s3rver accepts this fixed pair; real deployments read theirs from a Secret.
  const accessKey = 'S3RVER';
  const secretKey = 'S3RVER';
  return {
    endpoint,
    accessKey,
    secretKey,
    env: { MEDSYN_S3_ACCESS_KEY: accessKey, MEDSYN_S3_SECRET_KEY: secretKey },
    process: proc,
    async stop() {
      await proc.stop();
      data.remove();
    },
  };
}

import * as path from 'node:path';
import { fileURLToPath } from 'node:url';
import { StoreConfigError } from './errors';
import { FileArtifactStore } from './file-store';
import { DEFAULT_PART_SIZE_BYTES, S3ArtifactStore } from './s3-store';
import type { ArtifactStore } from './types';

/** The embedded default: a folder next to where the process runs. */
export const DEFAULT_STORE_URI = 'file://./.medsyn';

/**
 * Opens the store a URI names:
 * - `file://./relative/dir` or `file:///absolute/dir`: the local filesystem;
 * - `s3://bucket[/prefix]?endpoint=http://host:9000[&region=us-east-1][&part_size_mib=16]`:
 *   S3 or MinIO. Credentials come from the environment only (MEDSYN_S3_ACCESS_KEY and
 *   MEDSYN_S3_SECRET_KEY, or AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY), never from the URI.
 * Throws StoreConfigError naming what is wrong; reachability is check()'s job.
 */
export function openStore(uri: string, env: NodeJS.ProcessEnv = process.env): ArtifactStore {
  if (uri.startsWith('file://')) return new FileArtifactStore(filePath(uri));
  if (uri.startsWith('s3://')) return openS3(uri, env);
  throw new StoreConfigError(`unsupported store URI scheme in ${JSON.stringify(redact(uri))}: use file:// or s3://`);
}

function filePath(uri: string): string {
  const rest = uri.slice('file://'.length);
  if (rest === '') throw new StoreConfigError('file:// store URI needs a path, e.g. file://./.medsyn');
  // file://./x and file://x are relative to the working directory; file:///x is absolute.
  return rest.startsWith('/') ? fileURLToPath(uri) : path.resolve(decodeURIComponent(rest));
}

function openS3(uri: string, env: NodeJS.ProcessEnv): S3ArtifactStore {
  let url: URL;
  try {
    url = new URL(uri);
  } catch {
    throw new StoreConfigError(`malformed s3 store URI ${JSON.stringify(redact(uri))}`);
  }
  if (url.username || url.password)
    throw new StoreConfigError(
      's3 store URI must not carry credentials: set MEDSYN_S3_ACCESS_KEY and MEDSYN_S3_SECRET_KEY',
    );
  const bucket = url.hostname;
  if (!/^[a-z0-9][a-z0-9.-]{1,61}[a-z0-9]$/.test(bucket))
    throw new StoreConfigError(`invalid s3 bucket name ${JSON.stringify(bucket)}`);
  const prefixPath = decodeURIComponent(url.pathname).replace(/^\/+|\/+$/g, '');
  const endpointText = url.searchParams.get('endpoint') ?? env.MEDSYN_S3_ENDPOINT ?? 'https://s3.amazonaws.com';
  let endpoint: URL;
  try {
    endpoint = new URL(endpointText);
  } catch {
    throw new StoreConfigError(`invalid s3 endpoint ${JSON.stringify(endpointText)}: expected e.g. http://minio:9000`);
  }
  if (endpoint.protocol !== 'http:' && endpoint.protocol !== 'https:')
    throw new StoreConfigError(`s3 endpoint must be http:// or https://, got ${endpoint.protocol}`);
  const accessKey = env.MEDSYN_S3_ACCESS_KEY ?? env.AWS_ACCESS_KEY_ID;
  const secretKey = env.MEDSYN_S3_SECRET_KEY ?? env.AWS_SECRET_ACCESS_KEY;
  if (!accessKey)
    throw new StoreConfigError('MEDSYN_S3_ACCESS_KEY (or AWS_ACCESS_KEY_ID) is required for an s3:// store');
  if (!secretKey)
    throw new StoreConfigError('MEDSYN_S3_SECRET_KEY (or AWS_SECRET_ACCESS_KEY) is required for an s3:// store');
  const partSizeMiB = Number(url.searchParams.get('part_size_mib') ?? DEFAULT_PART_SIZE_BYTES / 2 ** 20);
  if (!Number.isInteger(partSizeMiB) || partSizeMiB < 5 || partSizeMiB > 5120)
    throw new StoreConfigError('part_size_mib must be an integer from 5 to 5120');
  return new S3ArtifactStore({
    bucket,
    prefix: prefixPath ? `${prefixPath}/` : '',
    endpoint,
    accessKey,
    secretKey,
    region: url.searchParams.get('region') ?? env.MEDSYN_S3_REGION ?? 'us-east-1',
    partSizeBytes: partSizeMiB * 2 ** 20,
  });
}

/** A URI safe to print: query strings may carry tokens some tools put there. */
function redact(uri: string): string {
  return uri.replace(/\?.*$/, '?…');
}

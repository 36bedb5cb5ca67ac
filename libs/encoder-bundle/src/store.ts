import { ArtifactNotFoundError, getBuffer, type ArtifactRef, type ArtifactStore } from '@medsyn/artifact-store';
import type { EncoderBundle } from './encoders';
import { BUNDLE_FILES, EncoderBundleError, parseEncoderManifest } from './manifest';
import { checkImageEncoder, checkTextEncoder, onnxSignature } from './signature';

const join = (prefix: string, file: string) => `${prefix.replace(/\/+$/, '')}/${file}`;

/** Checks a bundle's files against each other and the layout; throws EncoderBundleError naming the mismatch. */
export function validateEncoderBundle(bundle: EncoderBundle): void {
  const manifest = parseEncoderManifest(JSON.parse(JSON.stringify(bundle.manifest)));
  checkImageEncoder(manifest, onnxSignature(bundle.imageEncoder));
  if (bundle.textEncoder) {
    checkTextEncoder(manifest, onnxSignature(bundle.textEncoder));
    if (bundle.vocabTxt === undefined)
      throw new EncoderBundleError(`${BUNDLE_FILES.vocab} is missing: a text encoder needs its vocabulary`);
  } else if (manifest.text) {
    throw new EncoderBundleError(`encoder.json has a text section but the bundle has no ${BUNDLE_FILES.textEncoder}`);
  }
}

/**
 * Writes a bundle under `prefix` after validating it. encoder.json goes last, so a reader that
 * finds it finds the models it describes (each object is published atomically by the store).
 */
export async function writeEncoderBundle(
  store: ArtifactStore,
  prefix: string,
  bundle: EncoderBundle,
): Promise<Record<string, ArtifactRef>> {
  validateEncoderBundle(bundle);
  const refs: Record<string, ArtifactRef> = {};
  refs[BUNDLE_FILES.imageEncoder] = await store.put(join(prefix, BUNDLE_FILES.imageEncoder), bundle.imageEncoder, {
    mediaType: 'application/onnx',
  });
  if (bundle.textEncoder) {
    refs[BUNDLE_FILES.textEncoder] = await store.put(join(prefix, BUNDLE_FILES.textEncoder), bundle.textEncoder, {
      mediaType: 'application/onnx',
    });
    const vocabKey = bundle.manifest.text?.vocab ?? BUNDLE_FILES.vocab;
    refs[vocabKey] = await store.put(join(prefix, vocabKey), bundle.vocabTxt ?? '', { mediaType: 'text/plain' });
  }
  refs[BUNDLE_FILES.manifest] = await store.put(
    join(prefix, BUNDLE_FILES.manifest),
    `${JSON.stringify(bundle.manifest, null, 2)}\n`,
    {
      mediaType: 'application/json',
    },
  );
  return refs;
}

async function read(store: ArtifactStore, prefix: string, file: string, why: string): Promise<Buffer> {
  try {
    return await getBuffer(store, join(prefix, file));
  } catch (error) {
    if (error instanceof ArtifactNotFoundError)
      throw new EncoderBundleError(`${file} is missing under ${prefix} (${why})`);
    throw error;
  }
}

/**
 * Reads and validates the bundle under `prefix`: encoder.json, image_encoder.onnx, and the text
 * encoder and vocabulary when encoder.json has a text section. The ONNX inputs and outputs are
 * checked against encoder.json; any mismatch throws EncoderBundleError naming it.
 */
export async function readEncoderBundle(store: ArtifactStore, prefix: string): Promise<EncoderBundle> {
  const raw = await read(store, prefix, BUNDLE_FILES.manifest, 'every bundle has one');
  let json: unknown;
  try {
    json = JSON.parse(raw.toString('utf8'));
  } catch {
    throw new EncoderBundleError(`${BUNDLE_FILES.manifest} under ${prefix} is not valid JSON`);
  }
  const manifest = parseEncoderManifest(json);
  const bundle: EncoderBundle = {
    manifest,
    imageEncoder: await read(store, prefix, BUNDLE_FILES.imageEncoder, 'required'),
  };
  if (manifest.text) {
    bundle.textEncoder = await read(store, prefix, BUNDLE_FILES.textEncoder, 'encoder.json has a text section');
    bundle.vocabTxt = (await read(store, prefix, manifest.text.vocab, 'text.vocab in encoder.json')).toString('utf8');
  }
  validateEncoderBundle(bundle);
  return bundle;
}

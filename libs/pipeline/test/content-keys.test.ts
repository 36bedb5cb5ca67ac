import * as fs from 'node:fs';
import * as path from 'node:path';
import { makeTempDir } from '@medsyn/testing';
import { ContentHasher, imagesDigest, localImages, reportRecords } from '../src/content';

const tmp = makeTempDir('pipeline-keys');
afterAll(() => tmp.remove());

/** A folder of small files; returns its path. */
function tree(name: string, files: Record<string, string>): string {
  const dir = path.join(tmp.dir, name);
  for (const [rel, body] of Object.entries(files)) {
    fs.mkdirSync(path.dirname(path.join(dir, rel)), { recursive: true });
    fs.writeFileSync(path.join(dir, rel), body);
  }
  return dir;
}

/** Flips one byte and moves mtime back to what it was, as a careless copy might: only the content differs. */
function editOneByte(file: string): void {
  const before = fs.statSync(file);
  const bytes = fs.readFileSync(file);
  bytes[0] = bytes[0]! ^ 1;
  fs.writeFileSync(file, bytes);
  fs.utimesSync(file, before.atime, before.mtime);
}

describe('stage keys cover the content of what a stage reads', () => {
  it('changes the model digest when one byte of a .safetensors, .onnx or json file changes, and not otherwise', async () => {
    for (const file of [
      'unet/diffusion_pytorch_model.safetensors',
      'unet/model.onnx',
      'scheduler/scheduler_config.json',
    ]) {
      const dir = tree(`model-${path.basename(file)}`, {
        'model_index.json': '{}',
        'unet/diffusion_pytorch_model.safetensors': 'weights',
        'unet/model.onnx': 'graph',
        'scheduler/scheduler_config.json': '{"steps":3}',
      });
      const before = await new ContentHasher().tree(dir);
      expect(await new ContentHasher().tree(dir)).toBe(before);
      editOneByte(path.join(dir, file));
      expect(await new ContentHasher().tree(dir)).not.toBe(before);
    }
  });

  it('changes the dataset digest when a file is edited, added or renamed', async () => {
    const dir = tree('dataset', { 'metadata.csv': 'id,label\na,1\n', 'images/a.png': 'png-a' });
    const digest = () => new ContentHasher().tree(dir);
    const first = await digest();
    editOneByte(path.join(dir, 'images/a.png'));
    const edited = await digest();
    expect(edited).not.toBe(first);
    fs.renameSync(path.join(dir, 'images/a.png'), path.join(dir, 'images/b.png'));
    expect(await digest()).not.toBe(edited);
    fs.writeFileSync(path.join(dir, 'extra.txt'), '');
    expect(await digest()).not.toBe(edited);
  });

  it('changes the real-images digest when one byte of one image changes, and keeps it for an unchanged tree', async () => {
    const dir = tree('reports', { 'img/1.png': 'one', 'img/2.png': 'two' });
    const records = reportRecords(
      Buffer.from('{"id":"r1","image":"img/1.png"}\nnot json\n{"id":"r2","image":"img/2.png"}\n{"id":"r3"}\n'),
    );
    const images = localImages(records, dir, 'id', 'image');
    expect(images.map((i) => i.id)).toEqual(['r1', 'r2']);
    const hasher = new ContentHasher();
    const before = await imagesDigest(hasher, images);
    expect(await imagesDigest(new ContentHasher(), images)).toBe(before);
    editOneByte(path.join(dir, 'img/2.png'));
    expect(await imagesDigest(new ContentHasher(), images)).not.toBe(before);
  });

  it('hashes a file again within a run once its size or mtime changes', async () => {
    const dir = tree('cache', { 'a.bin': 'abc' });
    const hasher = new ContentHasher();
    const first = await hasher.file(path.join(dir, 'a.bin'));
    fs.writeFileSync(path.join(dir, 'a.bin'), 'abcd');
    expect(await hasher.file(path.join(dir, 'a.bin'))).not.toBe(first);
  });
});

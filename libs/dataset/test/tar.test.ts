import { execFileSync } from 'node:child_process';
import * as fs from 'node:fs';
import * as path from 'node:path';
import { Readable } from 'node:stream';
import * as tar from 'tar-stream';
import { makeTempDir } from '@medsyn/testing';
import { readTar, tarChunks, type TarFile } from '../src/tar';

async function concat(chunks: AsyncIterable<Buffer>): Promise<Buffer> {
  const parts: Buffer[] = [];
  for await (const chunk of chunks) parts.push(chunk);
  return Buffer.concat(parts);
}

async function* each<T>(items: T[]): AsyncIterable<T> {
  yield* items;
}

/** What tar-stream's pack writes for the same entries: the format the bundles had before. */
async function tarStreamPack(files: TarFile[]): Promise<Buffer> {
  const pack = tar.pack();
  const bytes = concat(pack as unknown as AsyncIterable<Buffer>);
  for (const { name, body, mtime } of files) {
    await new Promise<void>((resolve, reject) =>
      pack.entry(
        { name, size: body.byteLength, mtime: new Date(mtime * 1000), mode: 0o644, uname: '', gname: '' },
        body,
        (error) => (error ? reject(error) : resolve()),
      ),
    );
  }
  pack.finalize();
  return bytes;
}

const FILES: TarFile[] = [
  { name: 'r_001.png', body: Buffer.alloc(70000, 1), mtime: 0 },
  { name: 'r_001.txt', body: Buffer.from('FINDINGS: none.'), mtime: 0 },
  { name: 'r_001.json', body: Buffer.alloc(0), mtime: 0 },
  // Over 100 bytes: a pax path record, as tar-stream writes it.
  { name: `${'k'.repeat(120)}.png`, body: Buffer.alloc(512, 2), mtime: 0 },
  // Spans the 1 MiB chunks.
  { name: 'big.png', body: Buffer.alloc(2.5 * 1024 * 1024, 3), mtime: 1234567 },
];

describe('shard tar', () => {
  const tmp = makeTempDir('dataset-tar');
  afterAll(() => tmp.remove());

  it('writes the bytes tar-stream wrote for the same entries, long names included', async () => {
    expect((await concat(tarChunks(each(FILES)))).equals(await tarStreamPack(FILES))).toBe(true);
  });

  it('reads back what it writes, in chunks of any size, skipping the members not selected unread', async () => {
    const archive = await concat(tarChunks(each(FILES)));
    for (const size of [100, 511, 4096, 65536]) {
      const pieces = Array.from({ length: Math.ceil(archive.length / size) }, (_, i) =>
        archive.subarray(i * size, (i + 1) * size),
      );
      const seen: string[] = [];
      const read: { name: string; body: Buffer }[] = [];
      for await (const member of readTar(
        Readable.from(pieces),
        ({ name }) => (seen.push(name), !name.endsWith('.txt')),
      ))
        read.push({ name: member.name, body: Buffer.from(member.body) });
      expect(seen).toEqual(FILES.map((f) => f.name));
      expect(read).toEqual(FILES.filter((f) => !f.name.endsWith('.txt')).map(({ name, body }) => ({ name, body })));
    }
  });

  it('reads the archives Python tarfile writes (GNU and pax long names, folders), and refuses truncated or damaged ones', async () => {
    const file = path.join(tmp.dir, 'python.tar');
    const script = `
import io, sys, tarfile
with tarfile.open(sys.argv[1], 'w', format=getattr(tarfile, sys.argv[2])) as tar:
    d = tarfile.TarInfo('folder'); d.type = tarfile.DIRTYPE; tar.addfile(d)
    for name, data in [('a.png', b'x' * 700), ('L' * 150 + '.txt', 'ünïcode'.encode())]:
        info = tarfile.TarInfo(name); info.size = len(data); tar.addfile(info, io.BytesIO(data))
`;
    for (const format of ['GNU_FORMAT', 'PAX_FORMAT']) {
      execFileSync('/usr/bin/python3', ['-c', script, file, format], { stdio: 'pipe' });
      const read: string[] = [];
      const archive = fs.readFileSync(file);
      for await (const member of readTar(Readable.from([archive]), () => true))
        read.push(`${member.name}:${member.body.toString()}`);
      expect(read).toEqual([`a.png:${'x'.repeat(700)}`, `${'L'.repeat(150)}.txt:ünïcode`]);
    }
    const archive = await concat(tarChunks(each(FILES.slice(0, 2))));
    const consume = async (bytes: Buffer) => {
      for await (const _ of readTar(Readable.from([bytes]), () => true)) void _;
    };
    await expect(consume(archive.subarray(0, 600))).rejects.toThrow('unexpected end of data');
    const damaged = Buffer.from(archive);
    damaged[10] = 0x41;
    await expect(consume(damaged)).rejects.toThrow('invalid tar header checksum');
  });
});

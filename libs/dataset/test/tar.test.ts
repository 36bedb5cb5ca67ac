import { execFileSync } from 'node:child_process';
import * as fs from 'node:fs';
import * as path from 'node:path';
import { Readable } from 'node:stream';
import * as tar from 'tar-stream';
import { makeTempDir } from '@medsyn/testing';
import { TarPacker, readTar, type TarFile } from '../src/tar';

async function concat(chunks: AsyncIterable<Buffer>): Promise<Buffer> {
  const parts: Buffer[] = [];
  for await (const chunk of chunks) parts.push(chunk);
  return Buffer.concat(parts);
}

/** The archive TarPacker writes for files, and the buffers it hands over on the way. */
function pack(files: TarFile[]): { archive: Buffer; buffers: Buffer[] } {
  const packer = new TarPacker();
  const buffers = [...files.flatMap((file) => packer.add(file)), ...packer.end()];
  return { archive: Buffer.concat(buffers), buffers };
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
  // Larger than a gathered buffer (1 MiB).
  { name: 'big.png', body: Buffer.alloc(2.5 * 1024 * 1024, 3), mtime: 1234567 },
];

describe('shard tar', () => {
  const tmp = makeTempDir('dataset-tar');
  afterAll(() => tmp.remove());

  it('writes the bytes tar-stream wrote for the same entries, long names included', async () => {
    expect(pack(FILES).archive.equals(await tarStreamPack(FILES))).toBe(true);
  });

  it('hands over each large body as its own buffer, uncopied, and gathers what lies between two of them', () => {
    const { buffers } = pack(FILES);
    const large = FILES.filter((f) => f.body.byteLength >= 16 * 1024).map((f) => f.body);
    expect(buffers.filter((b) => large.includes(b))).toEqual(large);
    // r_001.png's padding to big.png's header: one buffer; then big.png; then its padding and the end blocks.
    expect(buffers).toHaveLength(5);
    // Many small members: gathered into buffers of about 1 MiB, never one for the whole archive.
    const small = Array.from({ length: 3000 }, (_, i) => ({
      name: `s${i}.txt`,
      body: Buffer.alloc(1000, i),
      mtime: 0,
    }));
    const packed = pack(small);
    expect(Math.max(...packed.buffers.map((b) => b.byteLength))).toBeLessThanOrEqual(1024 * 1024 + 1536);
    expect(packed.buffers.length).toBeGreaterThan(3);
  });

  it('reads back what it writes, in chunks of any size, skipping the members not selected unread', async () => {
    const { archive } = pack(FILES);
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
    const { archive } = pack(FILES.slice(0, 2));
    const consume = async (bytes: Buffer) => {
      for await (const _ of readTar(Readable.from([bytes]), () => true)) void _;
    };
    await expect(consume(archive.subarray(0, 600))).rejects.toThrow('unexpected end of data');
    const damaged = Buffer.from(archive);
    damaged[10] = 0x41;
    await expect(consume(damaged)).rejects.toThrow('invalid tar header checksum');
  });
});

/**
 * The tar a bundle needs, and no more: regular files written as ustar (POSIX.1-1988) with a pax
 * `path` record for names over 100 bytes, byte for byte what tar-stream's pack writes for the same
 * entries; and a reader of ustar, pax and GNU long names that hands over only the members asked
 * for. A stream per member (tar-stream) cost more than the rest of an export or import together.
 */

const BLOCK = 512;
const END_OF_ARCHIVE = Buffer.alloc(2 * BLOCK);
/**
 * A member body this large is written from its own buffer: copying it costs more than the store's
 * handling of one more buffer (the file store writes up to 1 MiB of them with one writev).
 */
const PASS_THROUGH_BYTES = 16 * 1024;
/** Headers and small bodies are gathered into buffers of at most about this size. */
const GATHERED_MAX_BYTES = 1024 * 1024;

/** A regular file of a shard: its name and bytes (mode 0644, owner 0:0, no user or group names). */
export interface TarFile {
  name: string;
  body: Buffer;
  /** Seconds since the epoch. */
  mtime: number;
}

/** `digits` octal digits and a space (a value too wide for them saturates at 7s, as tar-stream writes it). */
const octal = (value: number, digits: number) => {
  const text = value.toString(8);
  return `${text.length > digits ? '7'.repeat(digits) : text.padStart(digits, '0')} `;
};

/** What every header of ours holds: mode 0644, owner 0:0, ustar magic and version "00", devices 0:0. */
const HEADER_TEMPLATE = (() => {
  const header = Buffer.alloc(BLOCK);
  header.write(octal(0o644, 6), 100, 'latin1');
  header.write(octal(0, 6), 108, 'latin1'); // uid
  header.write(octal(0, 6), 116, 'latin1'); // gid
  header.write('ustar\u000000', 257, 'latin1');
  header.write(octal(0, 6), 329, 'latin1'); // devmajor
  header.write(octal(0, 6), 337, 'latin1'); // devminor
  return header;
})();

/** A 512-byte ustar header, as tar-stream's headers.encode writes it: the template with the member's fields. */
function ustarHeader(name: string, typeflag: string, size: number, mtime: number): Buffer {
  const header = Buffer.from(HEADER_TEMPLATE);
  header.write(name, 0, 100, 'utf8');
  if (size.toString(8).length > 11) writeBase256(header, 124, size);
  else header.write(octal(size, 11), 124, 'latin1');
  header.write(octal(mtime, 11), 136, 'latin1');
  header.write(typeflag, 156, 'latin1');
  header.write(octal(checksum(header), 6), 148, 'latin1');
  return header;
}

/** A size over 11 octal digits (8 GiB), as GNU tar writes it: 0x80, then 11 bytes big-endian. */
function writeBase256(header: Buffer, offset: number, value: number): void {
  header[offset] = 0x80;
  for (let i = 11; i > 0; i--, value = Math.floor(value / 256)) header[offset + i] = value & 0xff;
}

/** The header's byte sum with its checksum field counted as spaces (POSIX ustar). */
function checksum(header: Buffer): number {
  let sum = 8 * 0x20;
  for (let i = 0; i < 148; i++) sum += header[i]!;
  for (let i = 156; i < BLOCK; i++) sum += header[i]!;
  return sum;
}

/** A pax record `<length> path=<name>\n`, where the length counts its own digits. */
function paxPathRecord(name: string): Buffer {
  const body = ` path=${name}\n`;
  const bytes = Buffer.byteLength(body);
  let digits = String(bytes).length;
  if (bytes + digits >= 10 ** digits) digits++;
  return Buffer.from(`${bytes + digits}${body}`, 'utf8');
}

/** The blocks that precede a member's bytes: a ustar header, or a pax header for a name that does not fit one. */
function headerBlocks(file: TarFile): Buffer[] {
  const { name, body, mtime } = file;
  if (Buffer.byteLength(name) === name.length && name.length <= 100)
    return [ustarHeader(name, '0', body.byteLength, mtime)];
  const record = paxPathRecord(name);
  return [
    ustarHeader('PaxHeader', 'x', record.byteLength, mtime),
    record,
    padding(record.byteLength),
    ustarHeader('PaxHeader', '0', body.byteLength, mtime),
  ];
}

const padding = (size: number) => END_OF_ARCHIVE.subarray(0, (BLOCK - (size % BLOCK)) % BLOCK);

/**
 * Packs tar members into the buffers a put writes out, copying only what is small: a body of
 * PASS_THROUGH_BYTES or more (an image) is handed on as it is, and the headers, padding and small
 * bodies between two such bodies are gathered into one buffer. So an image's bytes are never copied
 * on their way to the store, and no 1 MiB chunk is allocated per MiB written.
 */
export class TarPacker {
  private gathered: Buffer[] = [];
  private gatheredBytes = 0;

  /** The bytes ready to write once `file` is added, in order (maybe none yet). */
  add(file: TarFile): Buffer[] {
    const ready: Buffer[] = [];
    for (const block of headerBlocks(file)) this.gather(block, ready);
    if (file.body.byteLength >= PASS_THROUGH_BYTES) {
      this.flush(ready);
      ready.push(file.body);
    } else {
      this.gather(file.body, ready);
    }
    this.gather(padding(file.body.byteLength), ready);
    return ready;
  }

  /** The last bytes of the archive: what is gathered and the end-of-archive blocks. */
  end(): Buffer[] {
    const ready: Buffer[] = [];
    this.gather(END_OF_ARCHIVE, ready);
    this.flush(ready);
    return ready;
  }

  private gather(piece: Buffer, ready: Buffer[]): void {
    if (piece.byteLength === 0) return;
    this.gathered.push(piece);
    this.gatheredBytes += piece.byteLength;
    if (this.gatheredBytes >= GATHERED_MAX_BYTES) this.flush(ready);
  }

  private flush(ready: Buffer[]): void {
    if (this.gatheredBytes === 0) return;
    ready.push(this.gathered.length === 1 ? this.gathered[0]! : Buffer.concat(this.gathered, this.gatheredBytes));
    this.gathered = [];
    this.gatheredBytes = 0;
  }
}

/** A tar member as the reader sees it: a regular file's name and declared size. */
export interface TarMemberHeader {
  name: string;
  size: number;
}

/** Bytes of a stream, taken in order in pieces of any length (copied only when a piece spans chunks). */
class ByteQueue {
  /** Chunks not yet taken whole, from `head` on (an index, not shift(): a large piece spans many chunks). */
  private chunks: Buffer[] = [];
  private head = 0;
  private offset = 0;
  private buffered = 0;
  private readonly source: AsyncIterator<Buffer>;

  constructor(source: AsyncIterable<Buffer>) {
    this.source = source[Symbol.asyncIterator]();
  }

  /** Exactly n bytes, or fewer at the end of the stream. */
  async take(n: number): Promise<Buffer> {
    while (this.buffered < n && (await this.pull()));
    const first = this.chunks[this.head];
    if (first && first.byteLength - this.offset >= n) {
      const piece = first.subarray(this.offset, this.offset + n);
      this.advance(n);
      return piece;
    }
    const piece = Buffer.allocUnsafe(Math.min(n, this.buffered));
    for (let copied = 0; copied < piece.byteLength;) {
      const chunk = this.chunks[this.head]!;
      const count = chunk.copy(
        piece,
        copied,
        this.offset,
        Math.min(chunk.byteLength, this.offset + piece.byteLength - copied),
      );
      copied += count;
      this.advance(count);
    }
    return piece;
  }

  /** Drops n bytes without keeping them; false when the stream ends first. */
  async skip(n: number): Promise<boolean> {
    for (let left = n; left > 0;) {
      if (this.buffered === 0 && !(await this.pull())) return false;
      const count = Math.min(left, this.chunks[this.head]!.byteLength - this.offset);
      this.advance(count);
      left -= count;
    }
    return true;
  }

  private async pull(): Promise<boolean> {
    const next = await this.source.next();
    if (next.done) return false;
    if (next.value.byteLength > 0) {
      this.chunks.push(next.value);
      this.buffered += next.value.byteLength;
    }
    return true;
  }

  private advance(n: number): void {
    this.offset += n;
    this.buffered -= n;
    if (this.offset === this.chunks[this.head]?.byteLength) {
      this.head++;
      this.offset = 0;
      if (this.head === this.chunks.length) {
        this.chunks = [];
        this.head = 0;
      }
    }
  }
}

const TRUNCATED = 'unexpected end of data';

/** An octal header field, or a GNU base-256 one (its first byte's high bit set). */
function numberField(header: Buffer, offset: number, length: number): number {
  if (header[offset]! & 0x80) {
    let value = header[offset]! & 0x7f;
    for (let i = offset + 1; i < offset + length; i++) value = value * 256 + header[i]!;
    return value;
  }
  const text = header
    .toString('latin1', offset, offset + length)
    .replace(/[\0 ]+$/, '')
    .trim();
  if (!/^[0-7]*$/.test(text)) throw new Error(`invalid number in tar header: ${JSON.stringify(text)}`);
  return text === '' ? 0 : parseInt(text, 8);
}

const stringField = (header: Buffer, offset: number, length: number) => {
  const end = header.indexOf(0, offset);
  return header.toString('utf8', offset, end < 0 || end > offset + length ? offset + length : end);
};

/** pax records (`<length> <key>=<value>\n`, POSIX.1-2001 pax format). */
function paxRecords(body: Buffer): Map<string, string> {
  const records = new Map<string, string>();
  for (let offset = 0; offset < body.byteLength;) {
    const space = body.indexOf(0x20, offset);
    const length = space < 0 ? NaN : parseInt(body.toString('latin1', offset, space), 10);
    if (!(length > 0) || offset + length > body.byteLength) break;
    const record = body.toString('utf8', space + 1, offset + length - 1);
    const equals = record.indexOf('=');
    if (equals > 0) records.set(record.slice(0, equals), record.slice(equals + 1));
    offset += length;
  }
  return records;
}

/**
 * The regular files of a tar stream, in order. `select` sees each one's header first: true reads
 * its bytes, false skips them unread, and a throw stops the reading. Other entries (folders,
 * links) are skipped. Errors (a bad checksum, a truncated archive) say what is wrong with the
 * archive's structure, never its content.
 */
export async function* readTar(
  source: AsyncIterable<Buffer>,
  select: (member: TarMemberHeader) => boolean,
): AsyncIterable<{ name: string; body: Buffer }> {
  const bytes = new ByteQueue(source);
  let longName: string | undefined;
  let pax = new Map<string, string>();
  for (;;) {
    const header = await bytes.take(BLOCK);
    if (header.byteLength === 0) return; // an archive cut at a block boundary after its last member, as tar accepts
    if (header.byteLength < BLOCK) throw new Error(TRUNCATED);
    const sum = checksum(header);
    if (sum === 8 * 0x20 && header.every((b) => b === 0)) return; // end-of-archive block
    if (sum !== numberField(header, 148, 8)) throw new Error('invalid tar header checksum');
    const magic = header.toString('latin1', 257, 263);
    if (magic !== 'ustar\0' && magic !== 'ustar ') throw new Error('invalid tar header: unknown format');
    const typeflag = String.fromCharCode(header[156]!);
    const size = pax.has('size') ? Number(pax.get('size')) : numberField(header, 124, 12);
    const padded = size + ((BLOCK - (size % BLOCK)) % BLOCK);
    if (typeflag === 'x' || typeflag === 'L') {
      const body = await bytes.take(padded);
      if (body.byteLength < padded) throw new Error(TRUNCATED);
      if (typeflag === 'x') pax = paxRecords(body.subarray(0, size));
      else longName = stringField(body, 0, size);
      continue;
    }
    const prefix = magic === 'ustar\0' && header[345] ? `${stringField(header, 345, 155)}/` : '';
    const name = pax.get('path') ?? longName ?? prefix + stringField(header, 0, 100);
    pax = new Map();
    longName = undefined;
    const isFile = (typeflag === '0' || typeflag === '\0') && !name.endsWith('/');
    if (isFile && select({ name, size })) {
      const body = await bytes.take(padded);
      if (body.byteLength < padded) throw new Error(TRUNCATED);
      yield { name, body: body.subarray(0, size) };
    } else if (!(await bytes.skip(padded))) {
      throw new Error(TRUNCATED);
    }
  }
}

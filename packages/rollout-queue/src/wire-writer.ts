/**
 * Protobuf encoding into one buffer of the exact size, for the messages on
 * the rollout path that carry ~64 KiB groups (PromptGroup, PullBatchResponse).
 *
 * The generated encoders write into a growable buffer: it starts small and
 * doubles (allocating a zeroed array and copying what was written each
 * time), `finish()` copies the result once more, and grpc-js's generated
 * serializer copies it again with `Buffer.from`. For a 4 MiB batch that was
 * most of the control plane's CPU time. Here sizes are computed first and
 * every byte is written once.
 *
 * Output is byte-identical to the generated encoders (same field order,
 * same skipping of default values); tests compare the two. Encoders built on
 * this return `undefined` when a value is outside what they handle (a
 * negative or non-integer int64), and callers fall back to the generated
 * encoder.
 */

/** Bytes of `n` as a varint; `n` a non-negative safe integer. */
export function varintSize(n: number): number {
  let size = 1;
  while (n >= 0x80) {
    n = Math.floor(n / 128);
    size++;
  }
  return size;
}

/** Whether `n` can be written by this writer as an int64/uint32 varint. */
export function isPlainVarint(n: number): boolean {
  return Number.isSafeInteger(n) && n >= 0;
}

/** Size of a length-delimited field with a one-byte tag and `length` bytes of content. */
export function delimitedSize(length: number): number {
  return 1 + varintSize(length) + length;
}

/** Writes fields into a buffer allocated at its final size. */
export class ExactWriter {
  readonly buffer: Buffer;
  pos = 0;

  /** `into`: write at the start of this buffer (at least `size` bytes) instead of allocating. */
  constructor(size: number, into?: Buffer) {
    if (into && into.byteLength < size) throw new RangeError(`exact writer: ${size} bytes do not fit in ${into.byteLength}`);
    this.buffer = into ? into.subarray(0, size) : Buffer.allocUnsafe(size);
  }

  /** A field tag (field number < 16, so one byte). */
  tag(byte: number): this {
    this.buffer[this.pos++] = byte;
    return this;
  }

  varint(n: number): this {
    const b = this.buffer;
    while (n >= 0x80) {
      b[this.pos++] = (n % 128) | 0x80;
      n = Math.floor(n / 128);
    }
    b[this.pos++] = n;
    return this;
  }

  bytes(value: Uint8Array): this {
    this.varint(value.byteLength);
    this.buffer.set(value, this.pos);
    this.pos += value.byteLength;
    return this;
  }

  /** A string whose UTF-8 length the caller computed (Buffer.byteLength). */
  string(value: string, byteLength: number): this {
    this.varint(byteLength);
    this.pos += this.buffer.write(value, this.pos, byteLength, 'utf8');
    return this;
  }

  double(value: number): this {
    this.buffer.writeDoubleLE(value, this.pos);
    this.pos += 8;
    return this;
  }

  /** The encoded message; throws when the size computed up front was wrong (a bug). */
  finish(): Buffer {
    if (this.pos !== this.buffer.byteLength) {
      throw new Error(`exact writer: wrote ${this.pos} bytes into ${this.buffer.byteLength}`);
    }
    return this.buffer;
  }
}

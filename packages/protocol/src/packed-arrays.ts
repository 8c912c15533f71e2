/**
 * Token ids and logprobs travel as packed little-endian arrays (int32 and
 * float32) inside `bytes` fields. These helpers convert without copying when
 * the buffer is aligned and the host is little-endian, which is every
 * platform Tandem targets; they fall back to a DataView copy otherwise.
 */

const LITTLE_ENDIAN = new Uint8Array(new Uint32Array([1]).buffer)[0] === 1;

/** Packs token ids as little-endian int32. */
export function packInt32(values: ArrayLike<number>): Buffer {
  const out = new Int32Array(values.length);
  for (let i = 0; i < values.length; i++) out[i] = values[i] as number;
  return toBytes(out);
}

/** Packs logprobs as little-endian float32. */
export function packFloat32(values: ArrayLike<number>): Buffer {
  const out = new Float32Array(values.length);
  for (let i = 0; i < values.length; i++) out[i] = values[i] as number;
  return toBytes(out);
}

/** Reads a packed int32 array; throws when the byte length is not a multiple of 4. */
export function unpackInt32(bytes: Uint8Array): Int32Array {
  assertWordAligned(bytes, 'int32');
  if (LITTLE_ENDIAN && bytes.byteOffset % 4 === 0) {
    return new Int32Array(bytes.buffer, bytes.byteOffset, bytes.byteLength / 4);
  }
  const view = new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength);
  const out = new Int32Array(bytes.byteLength / 4);
  for (let i = 0; i < out.length; i++) out[i] = view.getInt32(i * 4, true);
  return out;
}

/** Reads a packed float32 array; throws when the byte length is not a multiple of 4. */
export function unpackFloat32(bytes: Uint8Array): Float32Array {
  assertWordAligned(bytes, 'float32');
  if (LITTLE_ENDIAN && bytes.byteOffset % 4 === 0) {
    return new Float32Array(bytes.buffer, bytes.byteOffset, bytes.byteLength / 4);
  }
  const view = new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength);
  const out = new Float32Array(bytes.byteLength / 4);
  for (let i = 0; i < out.length; i++) out[i] = view.getFloat32(i * 4, true);
  return out;
}

function toBytes(view: Int32Array | Float32Array): Buffer {
  if (LITTLE_ENDIAN) return Buffer.from(view.buffer, view.byteOffset, view.byteLength);
  const out = Buffer.alloc(view.byteLength);
  const dv = new DataView(out.buffer, out.byteOffset, out.byteLength);
  const isInt = view instanceof Int32Array;
  for (let i = 0; i < view.length; i++) {
    if (isInt) dv.setInt32(i * 4, view[i] as number, true);
    else dv.setFloat32(i * 4, view[i] as number, true);
  }
  return out;
}

function assertWordAligned(bytes: Uint8Array, kind: string): void {
  if (bytes.byteLength % 4 !== 0) {
    throw new RangeError(`packed ${kind} array has ${bytes.byteLength} bytes, not a multiple of 4`);
  }
}

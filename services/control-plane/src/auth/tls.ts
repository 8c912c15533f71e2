import { readFileSync } from 'node:fs';
import { ServerCredentials, credentials, type ChannelCredentials } from '@grpc/grpc-js';
import { ErrorCode, TandemError } from '@tandem/common';

/** A server's certificate chain and private key (PEM). */
export interface TlsKeyPair {
  cert: Buffer;
  key: Buffer;
}

/** Reads a certificate and key; INVALID_ARGUMENT names the variable whose file is unreadable. */
export function loadKeyPair(files: { certFile: string; keyFile: string }): TlsKeyPair {
  return { cert: readPem(files.certFile, 'TANDEM_TLS_CERT_FILE'), key: readPem(files.keyFile, 'TANDEM_TLS_KEY_FILE') };
}

/** Reads a PEM file; INVALID_ARGUMENT names `variable` when it cannot be read. */
export function readPem(path: string, variable: string): Buffer {
  try {
    return readFileSync(path);
  } catch (err) {
    throw new TandemError(ErrorCode.InvalidArgument, `${variable} ${path} cannot be read: ${(err as Error).message}`);
  }
}

/** gRPC server credentials: TLS with `pair`, plain text without. Client certificates are not asked for. */
export function grpcServerCredentials(pair: TlsKeyPair | undefined): ServerCredentials {
  return pair ? ServerCredentials.createSsl(null, [{ cert_chain: pair.cert, private_key: pair.key }], false) : ServerCredentials.createInsecure();
}

/**
 * gRPC client credentials: TLS when `tls` is set (verifying the server
 * against `caFile`, or the system roots without one), plain text otherwise.
 */
export function grpcClientCredentials(options: { tls: boolean; caFile?: string }): ChannelCredentials {
  if (!options.tls && options.caFile === undefined) return credentials.createInsecure();
  return credentials.createSsl(options.caFile === undefined ? null : readPem(options.caFile, 'TANDEM_TLS_CA_FILE'));
}

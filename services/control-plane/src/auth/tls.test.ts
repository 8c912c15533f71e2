import { mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import { request as httpRequest } from 'node:http';
import { request as httpsRequest } from 'node:https';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { credentials, Metadata, status, type ServiceError } from '@grpc/grpc-js';
import { RunServiceClient, type ListRunsResponse } from '@tandem/protocol';
import { startTestControlPlane, type TestControlPlane } from '../testing/test-control-plane.js';
import { grpcClientCredentials } from './tls.js';
import { makeSelfSignedCertificate, type TestCertificate } from './testing/self-signed.js';

/**
 * TLS on both servers with a certificate made at test time: HTTPS and gRPC
 * over TLS answer a client that trusts the certificate; plain text, and a
 * client that does not trust it, are refused.
 */

const TOKEN = 'tls-test-token-0123456789abcdef';
let cp: TestControlPlane;
let dir: string;
let cert: TestCertificate;
let ca: Buffer;
let httpUrl: string;
let grpcAddress: string;

beforeAll(async () => {
  dir = await mkdtemp(join(tmpdir(), 'tandem-tls-'));
  cert = await makeSelfSignedCertificate(dir);
  ca = await readFile(cert.caFile);
  await writeFile(join(dir, 'tokens.yaml'), `tokens:\n  - { subject: ops, token: ${TOKEN}, role: viewer, namespaces: ['*'] }\n`);
  cp = await startTestControlPlane({
    TANDEM_RUNTIME: 'none',
    TANDEM_AUTH_TOKENS_FILE: join(dir, 'tokens.yaml'),
    TANDEM_TLS_CERT_FILE: cert.certFile,
    TANDEM_TLS_KEY_FILE: cert.keyFile,
  });
  ({ httpUrl, grpcAddress } = cp);
}, 60_000);

afterAll(async () => {
  await cp?.stop();
  if (dir) await rm(dir, { recursive: true, force: true });
});

type Answer = { status: number; body: string } | { error: string };

function get(url: string, options: { ca?: Buffer; plain?: boolean }): Promise<Answer> {
  return new Promise((resolve) => {
    const request = options.plain ? httpRequest : httpsRequest;
    const req = request(url, { method: 'GET', headers: { authorization: `Bearer ${TOKEN}` }, ...(options.ca ? { ca: options.ca } : {}), timeout: 10_000 }, (res) => {
      let body = '';
      res.on('data', (d: Buffer) => (body += d.toString()));
      res.on('end', () => resolve({ status: res.statusCode ?? 0, body }));
    });
    req.on('timeout', () => req.destroy(new Error('timed out')));
    req.on('error', (err: NodeJS.ErrnoException) => resolve({ error: err.code ?? err.message }));
    req.end();
  });
}

function listRuns(client: RunServiceClient): Promise<{ code: status; details: string }> {
  const md = new Metadata();
  md.set('authorization', `Bearer ${TOKEN}`);
  return new Promise((resolve) =>
    client.listRuns({ namespace: '' }, md, { deadline: Date.now() + 10_000 }, (err: ServiceError | null, _res: ListRunsResponse) =>
      resolve(err ? { code: err.code, details: err.details } : { code: status.OK, details: 'ok' }),
    ),
  );
}

describe('TLS', () => {
  it('serves HTTPS to a client that trusts the certificate', async () => {
    expect(httpUrl.startsWith('https://')).toBe(true);
    const answer = await get(`${httpUrl}/v1/runs`, { ca });
    expect(answer).toMatchObject({ status: 200 });
    expect(JSON.parse((answer as { body: string }).body)).toEqual({ runs: [] });
  });

  it('refuses plain HTTP on the HTTPS port, and a client that does not trust the certificate', async () => {
    const plain = await get(`${httpUrl.replace('https://', 'http://')}/v1/runs`, { plain: true });
    expect('status' in plain ? plain.status : 0).not.toBe(200);
    const untrusted = await get(`${httpUrl}/v1/runs`, {});
    expect(untrusted).toEqual({ error: 'DEPTH_ZERO_SELF_SIGNED_CERT' });
  });

  it('serves gRPC over TLS, and refuses plain text and untrusting clients', async () => {
    const trusted = new RunServiceClient(grpcAddress, grpcClientCredentials({ tls: true, caFile: cert.caFile }));
    const plain = new RunServiceClient(grpcAddress, credentials.createInsecure());
    const untrusted = new RunServiceClient(grpcAddress, grpcClientCredentials({ tls: true }));
    try {
      expect(await listRuns(trusted)).toEqual({ code: status.OK, details: 'ok' });
      expect((await listRuns(plain)).code).toBe(status.UNAVAILABLE);
      expect((await listRuns(untrusted)).code).toBe(status.UNAVAILABLE);
    } finally {
      trusted.close();
      plain.close();
      untrusted.close();
    }
  });
});

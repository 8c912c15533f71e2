import { createServer, request, type IncomingMessage, type ServerResponse } from 'node:http';
import type { AddressInfo, Socket } from 'node:net';

/**
 * A generator that hangs weight updates: an HTTP proxy in the test process
 * in front of a real simulated generator that forwards every route (health,
 * completions, pause, resume, ...) but never answers `POST /update_weights`,
 * like a vLLM server stuck in the NCCL receive of a broadcast. Its other
 * routes keep working, as they do on a real server whose engine is wedged
 * in a collective call.
 */
export class HangingUpdateProxy {
  /** `/update_weights` calls received and left hanging. */
  hungUpdates = 0;
  private readonly sockets = new Set<Socket>();
  private readonly server = createServer((req, res) => this.handle(req, res));
  private baseUrl = '';

  private constructor(private readonly target: URL) {
    this.server.on('connection', (s) => {
      this.sockets.add(s);
      s.on('close', () => this.sockets.delete(s));
    });
  }

  /** Listens on a free loopback port in front of the generator at `targetUrl`. */
  static async start(targetUrl: string): Promise<HangingUpdateProxy> {
    const proxy = new HangingUpdateProxy(new URL(targetUrl));
    await new Promise<void>((resolve, reject) => {
      proxy.server.once('error', reject);
      proxy.server.listen(0, '127.0.0.1', () => resolve());
    });
    proxy.baseUrl = `http://127.0.0.1:${(proxy.server.address() as AddressInfo).port}`;
    return proxy;
  }

  get url(): string {
    return this.baseUrl;
  }

  /** Stops listening and drops every connection, hanging ones included. */
  async close(): Promise<void> {
    const closed = new Promise<void>((resolve) => this.server.close(() => resolve()));
    for (const s of this.sockets) s.destroy();
    await closed;
  }

  private handle(req: IncomingMessage, res: ServerResponse): void {
    const path = new URL(req.url ?? '/', 'http://proxy.invalid').pathname;
    if (path === '/update_weights') {
      this.hungUpdates++;
      req.resume(); // read the body, answer nothing
      return;
    }
    const upstream = request(
      {
        host: this.target.hostname,
        port: this.target.port,
        method: req.method,
        path: req.url,
        headers: req.headers,
      },
      (up) => {
        res.writeHead(up.statusCode ?? 502, up.headers);
        up.pipe(res);
      },
    );
    upstream.on('error', () => {
      if (!res.headersSent) res.writeHead(502);
      res.end();
    });
    res.on('close', () => upstream.destroy());
    req.pipe(upstream);
  }
}

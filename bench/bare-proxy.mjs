// The floor any Node gateway starts from: node:http in, node:http out over a keep-alive pool, nothing else.
// Usage: node bench/bare-proxy.mjs LISTEN_PORT UPSTREAM_PORT
import http from 'node:http';

const [listenPort, upstreamPort] = process.argv.slice(2).map(Number);
if (!listenPort || !upstreamPort) {
  console.error('usage: bare-proxy.mjs LISTEN_PORT UPSTREAM_PORT');
  process.exit(2);
}
const agent = new http.Agent({ keepAlive: true, maxSockets: 64 });

http
  .createServer((req, res) => {
    const upstream = http.request(
      {
        host: '127.0.0.1',
        port: upstreamPort,
        method: req.method,
        path: req.url,
        headers: req.headers,
        agent,
      },
      (upRes) => {
        res.writeHead(upRes.statusCode ?? 502, upRes.headers);
        upRes.pipe(res);
      },
    );
    upstream.on('error', () => {
      if (res.headersSent) res.destroy();
      else res.writeHead(502).end();
    });
    req.pipe(upstream);
  })
  .listen(listenPort, '127.0.0.1');

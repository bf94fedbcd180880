// The ceiling for a Node gateway built like Portcullis: node:http in, an undici Pool out, nothing else.
// Usage: node bench/bare-undici-proxy.mjs LISTEN_PORT UPSTREAM_PORT
import http from 'node:http';
import { Pool } from 'undici';

const [listenPort, upstreamPort] = process.argv.slice(2).map(Number);
if (!listenPort || !upstreamPort) {
  console.error('usage: bare-undici-proxy.mjs LISTEN_PORT UPSTREAM_PORT');
  process.exit(2);
}
const pool = new Pool(`http://127.0.0.1:${upstreamPort}`, { connections: 128 });

http
  .createServer((req, res) => {
    pool.request({ path: req.url, method: req.method, headers: req.headers, body: req }).then(
      ({ statusCode, headers, body }) => {
        res.writeHead(statusCode, headers);
        body.pipe(res);
      },
      () => res.writeHead(502).end(),
    );
  })
  .listen(listenPort, '127.0.0.1');

// Prints N distinct free loopback TCP ports, space-separated. Usage: node bench/free-ports.mjs N
import net from 'node:net';

const n = Number(process.argv[2] ?? 1);
const servers = [];
// All held open at once so the kernel cannot hand out the same port twice.
for (let i = 0; i < n; i++) {
  const server = net.createServer();
  await new Promise((resolve) => server.listen(0, '127.0.0.1', resolve));
  servers.push(server);
}
process.stdout.write(`${servers.map((s) => s.address().port).join(' ')}\n`);
for (const server of servers) server.close();

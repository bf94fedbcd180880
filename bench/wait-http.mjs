// Exits 0 once URL answers 200; 1 after TIMEOUT_S seconds, or at once if process PID has exited.
// Usage: node bench/wait-http.mjs URL TIMEOUT_S [PID]
const [url, timeoutS = '20', pid] = process.argv.slice(2);
const deadline = Date.now() + Number(timeoutS) * 1000;

while (Date.now() < deadline) {
  if (pid) {
    try {
      process.kill(Number(pid), 0);
    } catch {
      console.error(`process ${pid} exited before ${url} was ready`);
      process.exit(1);
    }
  }
  try {
    const res = await fetch(url, { signal: AbortSignal.timeout(1000) });
    await res.arrayBuffer();
    if (res.status === 200) process.exit(0);
  } catch {
    // not listening yet
  }
  await new Promise((resolve) => setTimeout(resolve, 100));
}
console.error(`timed out after ${timeoutS}s waiting for ${url}`);
process.exit(1);

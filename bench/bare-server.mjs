/**
 * The ceiling of our HTTP stack: the same Fastify version, one route at the check-in path that
 * parses the JSON body and answers 200 with an empty check-in answer. No database, no auth.
 * Prints "listening on <url> (" like keywarden serve, so the benchmark finds it the same way.
 */
import Fastify from 'fastify';

const app = Fastify({ logger: false, bodyLimit: 1024 * 1024 });
app.post('/api/v1/agent/checkin', async (request) => {
  // Plain JavaScript on purpose: the benchmark runs this file with `node --input-type=module` (no tsx).
  const body = request.body;
  return { requestPasswords: [], jobs: [], nextCheckinSeconds: 3600, seq: body?.seq ?? null };
});
app.get('/readyz', async () => ({ status: 'ready' }));
const address = await app.listen({ host: '127.0.0.1', port: 0 });
process.stderr.write(`listening on ${address} (bare Fastify)\n`);
process.on('SIGTERM', () => void app.close().then(() => process.exit(0)));

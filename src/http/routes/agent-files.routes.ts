import { z } from 'zod';
import type { FastifyPluginAsync } from 'fastify';
import type { FastifyPluginAsyncZod } from 'fastify-type-provider-zod';
import type { Container } from '../../container.js';
import { etagMatches } from '../../modules/agent/agent-files.js';
import { errors } from '../schemas.js';

const ManifestSchema = z.object({
  version: z.string().describe("the agent version (the script's $AgentVersion line)"),
  files: z.array(
    z.object({
      name: z.string(),
      sha256: z.string().describe('SHA-256 of the file, hex'),
      size: z.number().describe('bytes'),
      url: z.string().describe('path of the download on this server, e.g. /agent/Keywarden-Agent.ps1'),
    }),
  ),
});

/**
 * The rollout kit's downloads at /agent/<file>, outside the API (an RMM fetches them with a plain
 * GET): public, the repository's bytes, revalidated with the content hash as ETag. Any name that
 * is not on the kit's list is a 404, so no path can be reached through it.
 */
export const agentFileDownloadRoutes =
  (c: Container): FastifyPluginAsync =>
  async (app) => {
    app.get('/agent/*', { config: { auth: 'public' }, schema: { hide: true } }, async (request, reply) => {
      const file = c.agentFiles.file((request.params as { '*'?: string })['*'] ?? '');
      reply
        .header('etag', file.etag)
        .header('cache-control', 'no-cache')
        .header('x-content-type-options', 'nosniff')
        .header('x-keywarden-agent-version', c.agentFiles.version())
        .header('x-content-sha256', file.sha256);
      if (etagMatches(request.headers['if-none-match'], file.etag)) return reply.status(304).send();
      return reply.type('text/plain; charset=utf-8').header('content-disposition', `attachment; filename="${file.name}"`).send(file.bytes);
    });
  };

/** The kit's manifest in the API: what an RMM script or the console needs to fetch and verify the files. */
export const agentFileRoutes =
  (c: Container): FastifyPluginAsyncZod =>
  async (app) => {
    app.get(
      '/agent/files',
      {
        config: { auth: 'public' },
        schema: {
          tags: ['agent'],
          summary: 'The agent script and deployment helpers this server serves at /agent/<name>, with their SHA-256 (no sign-in needed)',
          security: [],
          response: { 200: ManifestSchema, ...errors(400) },
        },
      },
      async () => c.agentFiles.manifest(),
    );
  };

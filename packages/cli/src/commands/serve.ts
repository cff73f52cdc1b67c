/** `qwen2 serve`: an OpenAI-compatible HTTP server. */
import { basename, resolve } from 'node:path';
import { existsSync } from 'node:fs';
import { loadModel, MODEL_FLAGS, modelFlags } from '../load-model.js';
import { createOpenAIServer } from '../serve/openai-server.js';
import { SPECULATIVE_FLAGS, speculativeFlags } from '../speculative-flags.js';
import type { Command } from './command.js';
import { UsageError } from '../util/errors.js';

/** The id `/v1/models` reports: a Hub id as given, a folder by its name. */
function modelId(spec: string): string {
  return existsSync(spec) ? basename(resolve(spec)) : spec;
}

export const serveCommand: Command = {
  name: 'serve',
  summary: 'OpenAI-compatible HTTP server',
  usage: 'qwen2 serve --model DIR [--port 8080] [--host 127.0.0.1] [--parallel N]',
  description:
    'Serves POST /v1/chat/completions and POST /v1/completions (streaming with server-sent events) and\n' +
    'GET /v1/models. Binds 127.0.0.1 unless --host is given. Requests queue and run one at a time, or\n' +
    'with --parallel N up to N at once, decoded together in one batch (each in its own KV cache of\n' +
    '--max-context tokens); a client that disconnects aborts its generation. --port 0 picks a free port.\n' +
    'Ctrl-C stops the server.\n' +
    'Beside sampling fields it takes response_format (json_object, json_schema), tools and tool_choice\n' +
    '(replies with tool_calls), logprobs/top_logprobs, and on completions logprobs with echo.\n' +
    '--prompt-lookup or --draft-model turns on speculative decoding for every request (same output).',
  flags: {
    ...MODEL_FLAGS,
    port: { type: 'string', value: 'PORT', help: 'TCP port (default 8080; 0 = any free port)' },
    host: { type: 'string', value: 'ADDR', help: 'address to bind (default 127.0.0.1; 0.0.0.0 = all interfaces)' },
    'max-tokens': { type: 'string', value: 'N', help: 'max_tokens for chat requests that give none (default 1024)' },
    'served-model-name': { type: 'string', value: 'NAME', help: 'model id reported to clients (default: the --model value)' },
    parallel: { type: 'string', value: 'N', help: 'requests generated at once, in one batch (default 1; each has its own KV cache)' },
    ...SPECULATIVE_FLAGS,
  },
  positionals: 0,
  async run(args, { status }) {
    const flags = modelFlags(args);
    const port = args.int('port', 8080, 0, 65535);
    const host = args.string('host') ?? '127.0.0.1';
    const defaultMaxTokens = args.int('max-tokens', 1024, 1);
    const id = args.string('served-model-name') ?? modelId(flags.spec);
    const speculative = speculativeFlags(args, flags.dtype);
    const parallel = args.int('parallel', 1, 1, 256);
    if (parallel > 1 && speculative) {
      throw new UsageError('--parallel above 1 cannot be combined with --prompt-lookup or --draft-model: speculative decoding runs one request at a time', args.command);
    }
    if (parallel > 1) flags.parallel = parallel;
    const loaded = await loadModel(flags, status, undefined, speculative);
    const { server, idle } = createOpenAIServer(loaded.model, {
      modelId: id,
      defaultMaxTokens,
      ...(loaded.speculative ? { speculative: loaded.speculative } : {}),
      onRequest: (line) => status.note(line),
    });
    await new Promise<void>((resolveListen, reject) => {
      server.once('error', reject);
      server.listen(port, host, () => {
        server.off('error', reject);
        resolveListen();
      });
    }).catch(async (err) => {
      await loaded.dispose();
      throw err;
    });
    const address = server.address();
    const actualPort = typeof address === 'object' && address ? address.port : port;
    const shownHost = host.includes(':') ? `[${host}]` : host;
    // Always printed (even with --quiet): scripts read the port from this line.
    process.stderr.write(`qwen2: serving ${id} on ${loaded.model.backend.info.name} at http://${shownHost}:${actualPort}/v1\n`);
    await new Promise<void>((resolveStop) => {
      const stop = () => {
        process.off('SIGINT', stop);
        process.off('SIGTERM', stop);
        server.close(() => resolveStop());
        server.closeAllConnections();
      };
      process.on('SIGINT', stop);
      process.on('SIGTERM', stop);
    });
    // Closing the connections aborted any generation; let it unwind before freeing the model under it.
    await idle();
    await loaded.dispose();
    return 0;
  },
};

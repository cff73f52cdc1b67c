/** `qwen2 logits`: the full-vocabulary float32 logits of a token sequence, as JSON (a contract command). */
import { loadModel, MODEL_FLAGS, modelFlags } from '../load-model.js';
import { float32ArrayJson, writeOut } from '../util/output.js';
import { checkIds } from './generate.js';
import type { Command } from './command.js';

export const logitsCommand: Command = {
  name: 'logits',
  summary: 'full-vocabulary logits as JSON',
  usage: 'qwen2 logits --model DIR --ids 1,2,3 [--all-positions]',
  description:
    'Runs one forward pass over the ids (positions 0..n-1, no BOS added) and prints {"ids":[...],"logits":[...]}:\n' +
    'the float32 logits of the last position, or with --all-positions an array with one row per position.',
  flags: {
    ...MODEL_FLAGS,
    ids: { type: 'string', value: '1,2,3', help: 'input token ids (required)' },
    'all-positions': { type: 'boolean', help: 'logits of every position, not just the last' },
  },
  positionals: 0,
  async run(args, { status }) {
    const flags = modelFlags(args);
    const ids = args.ids('ids');
    if (!ids) args.requiredString('ids', 'comma-separated token ids');
    const allPositions = args.flag('all-positions');
    const loaded = await loadModel(flags, status);
    try {
      checkIds(ids!, loaded.model.config.vocabSize);
      const rows = await loaded.model.logits(ids!, { allPositions });
      const last = rows[rows.length - 1]!;
      // Written piece by piece: 151,936 logits per row are megabytes of JSON.
      await writeOut(`{"ids":${JSON.stringify(ids)},"logits":`);
      if (allPositions) {
        for (let i = 0; i < rows.length; i++) await writeOut(`${i === 0 ? '[' : ','}${float32ArrayJson(rows[i]!)}`);
        await writeOut(']}\n');
      } else {
        await writeOut(`${float32ArrayJson(last)}}\n`);
      }
    } finally {
      await loaded.dispose();
    }
    return 0;
  },
};

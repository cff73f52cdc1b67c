// What the benchmark scripts (bench.mjs, host-cost.mjs) share: their `--name value` options, Qwen2
// model shapes and the upload of one model's weights (the scripts differ only in what each weight holds).

/** The value after `--name` on the command line, or `fallback`. */
export function option(name, fallback) {
  const i = process.argv.indexOf(`--${name}`, 2);
  return i >= 0 ? process.argv[i + 1] : fallback;
}

/** Shapes by name: the real Qwen2 sizes, plus small ones for CPU drivers. */
export const MODELS = {
  // Qwen2-0.5B's 24 layers (and so its dispatches per token) at tiny widths: the host cost per step
  // measured without minutes of GPU work per token on a CPU driver.
  micro: { hidden: 128, inter: 256, layers: 24, heads: 2, kvHeads: 1, vocab: 1024, tied: true },
  tiny: { hidden: 256, inter: 1024, layers: 4, heads: 4, kvHeads: 2, vocab: 32000, tied: true },
  '0.5b': { hidden: 896, inter: 4864, layers: 24, heads: 14, kvHeads: 2, vocab: 151936, tied: true },
  '1.5b': { hidden: 1536, inter: 8960, layers: 28, heads: 12, kvHeads: 2, vocab: 151936, tied: true },
  '7b': { hidden: 3584, inter: 18944, layers: 28, heads: 28, kvHeads: 4, vocab: 152064, tied: false },
};

/** core's Qwen2Config for shape `m`. */
export function modelConfig(m) {
  return {
    vocabSize: m.vocab, hiddenSize: m.hidden, intermediateSize: m.inter, numHiddenLayers: m.layers, numAttentionHeads: m.heads,
    numKeyValueHeads: m.kvHeads, headDim: m.hidden / m.heads, rmsNormEps: 1e-6, ropeTheta: 1e6, tieWordEmbeddings: m.tied,
    maxPositionEmbeddings: 32768, maxWindowLayers: m.layers,
  };
}

/**
 * Uploads a model of shape `m` to `backend`: `matrix(rows, cols)` makes each weight matrix's host
 * weight; norms and biases are ones. Returns core's ModelWeights.
 */
export async function uploadModel(backend, m, matrix) {
  const headDim = m.hidden / m.heads;
  const up = (rows, cols, name) => backend.uploadWeight(matrix(rows, cols), name);
  const ones = (n, name) => backend.uploadWeight({ format: 'f32', rows: 1, cols: n, data: new Float32Array(n).fill(1) }, name);
  const embed = await up(m.vocab, m.hidden, 'embed');
  const layers = [];
  for (let l = 0; l < m.layers; l++) {
    layers.push({
      inputNorm: await ones(m.hidden, 'in'), postNorm: await ones(m.hidden, 'post'),
      q: await up(m.heads * headDim, m.hidden, 'q'), k: await up(m.kvHeads * headDim, m.hidden, 'k'), v: await up(m.kvHeads * headDim, m.hidden, 'v'),
      qBias: await ones(m.heads * headDim, 'qb'), kBias: await ones(m.kvHeads * headDim, 'kb'), vBias: await ones(m.kvHeads * headDim, 'vb'),
      o: await up(m.hidden, m.heads * headDim, 'o'),
      gate: await up(m.inter, m.hidden, 'gate'), up: await up(m.inter, m.hidden, 'up'), down: await up(m.hidden, m.inter, 'down'),
    });
  }
  const lmHead = m.tied ? embed : await up(m.vocab, m.hidden, 'lm_head');
  return { embed, layers, norm: await ones(m.hidden, 'norm'), lmHead, bytes: backend.memory().weights, fallbacks: [] };
}

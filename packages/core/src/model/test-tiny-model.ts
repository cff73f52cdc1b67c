// For tests: the tiny-f32 fixture as a Qwen2Model, and a reference backend that counts its passes.
import { fileURLToPath } from 'node:url';
import { openModel } from '@qwen2-ts/loader';
import type { Backend, Tensor } from '../backend/types.js';
import { ReferenceBackend } from '../backend/reference/reference-backend.js';
import { Qwen2Model } from './qwen2-model.js';
import { loadModelWeights } from './weights.js';

const dir = fileURLToPath(new URL('../../../../fixtures/models/tiny-f32', import.meta.url));

/** The tiny-f32 fixture's weights on `backend` (the caller disposes the model). */
export async function loadTinyModel(backend: Backend): Promise<Qwen2Model> {
  const opened = await openModel(dir);
  try {
    return new Qwen2Model(backend, opened.config, await loadModelWeights(opened.checkpoint, opened.config, backend, {}));
  } finally {
    await opened.close();
  }
}

/**
 * The reference backend, recording the tokens of every pass (a batched pass is one, of all its rows) and
 * counting argmax calls.
 */
export class PassCountingBackend extends ReferenceBackend {
  passes: number[] = [];
  argmaxCalls = 0;
  override beginPass(tokens: number, startPos: number): void {
    this.passes.push(tokens);
    super.beginPass(tokens, startPos);
  }
  override argmax(logits: Tensor): Promise<Int32Array> {
    this.argmaxCalls++;
    return super.argmax(logits);
  }
}

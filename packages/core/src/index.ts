/**
 * The Qwen2 model graph, the backend kernel interface, KV cache, sampling, generation and chat.
 *
 * ```ts
 * const model = await Qwen2.load('/models/Qwen2-0.5B-Instruct', { dtype: 'q8_0' });
 * for await (const chunk of model.chat([{ role: 'user', content: 'Hi!' }])) process.stdout.write(chunk.text);
 * ```
 * @packageDocumentation
 */
export { argmax } from './argmax.js';
export { QUANT_BLOCK, QK_K, Q4_K_BLOCK_BYTES } from './backend/types.js';
export type {
  AttentionSpec, Backend, BackendInfo, DeviceTokens, HostWeight, KVCache, KVCacheDtype, KVCacheSpec, SamplingParams, Tensor, Weight, WeightFormat,
} from './backend/types.js';
export { ReferenceBackend } from './backend/reference/reference-backend.js';
export { expectShape, checkTokenIds, checkLayer, checkKVCacheSpec, kvValueBytes, checkBeginPass, checkEndPass } from './backend/usage-checks.js';
export { ContextOverflowError, ModelWeightsError, WeightFormatError, BackendUsageError } from './errors.js';

// Numbers and weights
export { f16ToF32, f32ToF16, bf16ToF32, f32ToBf16, roundToF16KV } from './numeric/half.js';
export { quantizeQ8_0, dequantizeQ8_0Row } from './quant/q8_0.js';
export { quantizeQ4_0, dequantizeQ4_0Row } from './quant/q4_0.js';
export { quantizeQ4_K, dequantizeQ4_KRow, q4kScaleMin, type Q4_KWeight } from './quant/q4_k.js';
export { dequantize, dequantizeRow, rowDot, hostWeightBytes, validateHostWeight } from './quant/host-weight.js';
export { toHostWeight, decodeToF32, nativeFormat, type QuantizeBlocks } from './weights/convert.js';

// The graph
export type { Qwen2ModelConfig } from './model/config.js';
export { tensorNames, layerWindow } from './model/config.js';
export { loadModelWeights, freeModelWeights } from './model/weights.js';
export type { QuantizedLayer } from './weights/from-quantized.js';
export type { TensorSource, ModelWeights, LayerWeights, LoadWeightsOptions, WeightLoadProgress } from './model/weights.js';
export { Qwen2Model, DEFAULT_MAX_CHUNK } from './model/qwen2-model.js';
export type { InspectHook, InspectPoint } from './model/qwen2-model.js';
export { KVSequence } from './model/sequence.js';

// Sampling and generation
export { sampleFromLogits, applyPenalties, validateSamplingParams } from './sampling/sample.js';
export { SeededRandom, randomSeed } from './sampling/rng.js';
export { TokenHistory } from './sampling/history.js';
export { StopStringMatcher } from './generate/stop-strings.js';
export { tokenLogprob, logSoftmaxAt, type TokenLogprob } from './generate/logprobs.js';
export { resolveSampling, type SamplingSettings } from './generate/sampling-options.js';
export { promptLookup, nextGuesses, SpeculationSchedule, type LookupMatch, type Guesses, type Proposer } from './generate/speculative.js';

// Constrained generation
export { compileJsonSchema, compileResponseFormat, literalText, propertyNode, JsonSchemaError, type JsonSchema, type ResponseFormat, type ValueNode, type PropertyNode } from './constrain/json-schema.js';
export { JsonConstraint } from './constrain/json-constraint.js';
export { TokenVocabulary } from './constrain/token-vocabulary.js';

// The high-level API
export { Qwen2 } from './api/qwen2.js';
export { sharedVocabulary } from './api/draft-vocabulary.js';
export type { DtypeOption, LoadOptions, GenerateOptions, SpeculativeOptions, ChatOptions, GenerationChunk, GenerationResult, GenerationStream } from './api/types.js';
export { parseToolCalls, ToolCallFilter, toolCallGrammar, chatOutput, messagesForTemplate, type ToolCall, type ToolChoice, type ToolDefinition } from './api/tool-calls.js';
export type { ChatCompletion, ChatCompletionChunk, ChatCompletionRequest, ChatLogprob, FinishReason, OpenAIChat, OpenAIResponseFormat } from './api/openai.js';
export { toGenerateOptions, toChatOptions, assistantMessage, chatChoice, ChatChunkChoices, chatLogprob, finishReason, fromOpenAIResponseFormat } from './api/openai.js';

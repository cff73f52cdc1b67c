/**
 * The playground page: wires the form, the chat and the stats to the inference worker. All model work
 * happens in the worker; this thread only renders.
 *
 * Test hooks (stable, independent of wording): `body[data-state]` (starting, idle, loading, ready,
 * generating), `#load-progress[data-fraction|data-phase|data-downloaded-bytes]`, assistant turns'
 * `data-token-ids` and `data-finish-reason`, `#model-info[data-backend]`, `#cache-size[data-bytes]`.
 */
import { probeWebGPU } from '@qwen2-ts/backend-webgpu';
import { cacheUsage, clearCache } from './browser-cache.js';
import { MODEL_CACHE_NAME } from './cache-name.js';
import { Conversation, ConversationError } from './conversation.js';
import { defaultBackend, describeThreads, plural, describeWebGPU, formatReport, unavailableReason, type EnvironmentReport } from './environment.js';
import { formatBytes, formatMs, formatTokensPerSecond } from './format.js';
import { LiveStats, totalMemory } from './live-stats.js';
import { DEFAULT_MODEL, describeSource, folderNameOf, parseModelText, type ModelSource } from './model-source.js';
import { describeLoaded, describeProgress, ProgressTracker } from './progress.js';
import { DEFAULT_SETTINGS, parseSettings, toGenerateOptions, type SamplingSettings } from './settings.js';
import { ChatView } from './ui/chat-view.js';
import { byId, el } from './ui/dom.js';
import { InferenceClient } from './worker-client.js';
import { KV_CACHE_KINDS, WEIGHT_DTYPES, type BackendKind, type KVCacheKind, type LoadedInfo, type MemoryUse, type WeightDtype } from './worker/protocol.js';

type PageState = 'starting' | 'idle' | 'loading' | 'ready' | 'generating';

const ui = {
  environment: byId('environment', HTMLElement),
  loadForm: byId('load-form', HTMLFormElement),
  modelText: byId('model-text', HTMLInputElement),
  pickFolder: byId('pick-folder', HTMLButtonElement),
  folderInput: byId('folder-input', HTMLInputElement),
  pickedFolder: byId('picked-folder', HTMLSpanElement),
  dtype: byId('dtype', HTMLSelectElement),
  kvCache: byId('kv-cache', HTMLSelectElement),
  load: byId('load', HTMLButtonElement),
  cancelLoad: byId('cancel-load', HTMLButtonElement),
  progress: byId('load-progress', HTMLProgressElement),
  progressText: byId('progress-text', HTMLParagraphElement),
  modelInfo: byId('model-info', HTMLParagraphElement),
  loadError: byId('load-error', HTMLParagraphElement),
  cacheSize: byId('cache-size', HTMLSpanElement),
  clearCache: byId('clear-cache', HTMLButtonElement),
  systemPrompt: byId('system-prompt', HTMLTextAreaElement),
  settings: byId('settings', HTMLDetailsElement),
  settingsError: byId('settings-error', HTMLParagraphElement),
  jsonOutput: byId('json-output', HTMLInputElement),
  promptLookup: byId('prompt-lookup', HTMLInputElement),
  messages: byId('messages', HTMLOListElement),
  chatForm: byId('chat-form', HTMLFormElement),
  prompt: byId('prompt', HTMLTextAreaElement),
  send: byId('send', HTMLButtonElement),
  stop: byId('stop', HTMLButtonElement),
  regenerate: byId('regenerate', HTMLButtonElement),
  clearChat: byId('clear-chat', HTMLButtonElement),
  chatError: byId('chat-error', HTMLParagraphElement),
  stats: byId('stats', HTMLElement),
  stat: {
    ttft: byId('stat-ttft', HTMLElement),
    prefill: byId('stat-prefill', HTMLElement),
    decode: byId('stat-decode', HTMLElement),
    tokens: byId('stat-tokens', HTMLElement),
    memory: byId('stat-memory', HTMLElement),
  },
};

const client = new InferenceClient(new Worker(new URL('./worker/inference.worker.ts', import.meta.url), { type: 'module', name: 'qwen2-ts inference' }));
const conversation = new Conversation();
const chatView = new ChatView(ui.messages);
let state: PageState = 'starting';
let env: EnvironmentReport | undefined;
let pickedFolder: ModelSource | undefined;
let loadId: number | undefined;
let replyId: number | undefined;
let loaded: LoadedInfo | undefined;

function setState(next: PageState): void {
  state = next;
  document.body.dataset.state = next;
  const busy = next === 'loading' || next === 'generating' || next === 'starting';
  ui.load.disabled = busy;
  ui.cancelLoad.disabled = next !== 'loading';
  ui.clearCache.disabled = busy;
  ui.send.disabled = next !== 'ready';
  ui.stop.disabled = next !== 'generating';
  ui.regenerate.disabled = next !== 'ready' || conversation.turns.at(-1)?.role !== 'assistant';
  ui.clearChat.disabled = next !== 'ready' || conversation.turns.length === 0;
}

// ---- environment and backend choice ---------------------------------------------------------------

function backendRadios(): HTMLInputElement[] {
  return [...ui.loadForm.querySelectorAll<HTMLInputElement>('input[name="backend"]')];
}

function selectedBackend(): BackendKind {
  return (backendRadios().find((r) => r.checked)?.value ?? 'wasm') as BackendKind;
}

async function probeEnvironment(): Promise<EnvironmentReport> {
  const report: EnvironmentReport = {
    webgpu: describeWebGPU(await probeWebGPU()),
    threads: describeThreads(globalThis.crossOriginIsolated === true, typeof SharedArrayBuffer !== 'undefined', navigator.hardwareConcurrency ?? 1),
  };
  ui.environment.replaceChildren(...formatReport(report).map((line) => el('p', line)));
  const wanted = new URLSearchParams(location.search).get('backend');
  const initial = wanted === 'webgpu' || wanted === 'wasm' ? wanted : defaultBackend(report);
  for (const radio of backendRadios()) {
    const kind = radio.value as BackendKind;
    const why = unavailableReason(report, kind);
    radio.disabled = why !== undefined;
    radio.checked = kind === initial && !radio.disabled;
    const reason = ui.loadForm.querySelector<HTMLElement>(`.reason[data-for="${kind}"]`)!;
    if (why) reason.textContent = `unavailable: ${why}`;
    else if (kind === 'webgpu') reason.textContent = report.webgpu.shaderF16 ? 'shader-f16 available' : 'no shader-f16: computes in f32';
    else reason.textContent = report.threads.available ? plural(report.threads.count ?? 1, 'thread') : `one thread: ${report.threads.reason}`;
  }
  if (!backendRadios().some((r) => r.checked)) backendRadios().find((r) => !r.disabled)!.checked = true;
  return report;
}

// ---- model source -----------------------------------------------------------------------------------

ui.modelText.value = new URLSearchParams(location.search).get('model') ?? DEFAULT_MODEL;
const wantedDtype = new URLSearchParams(location.search).get('dtype');
if (wantedDtype && (WEIGHT_DTYPES as readonly string[]).includes(wantedDtype)) ui.dtype.value = wantedDtype;
const wantedKvCache = new URLSearchParams(location.search).get('kv-cache');
if (wantedKvCache && (KV_CACHE_KINDS as readonly string[]).includes(wantedKvCache)) ui.kvCache.value = wantedKvCache;

function usePicked(source: ModelSource | undefined): void {
  pickedFolder = source;
  ui.pickedFolder.textContent = source ? describeSource(source) : '';
  if (source) ui.modelText.value = '';
}

ui.modelText.addEventListener('input', () => usePicked(undefined));
ui.pickFolder.addEventListener('click', async () => {
  const picker = (window as { showDirectoryPicker?: (o?: { mode?: 'read' }) => Promise<FileSystemDirectoryHandle> }).showDirectoryPicker;
  if (!picker) {
    ui.folderInput.click(); // Firefox, Safari: the plain folder input
    return;
  }
  try {
    usePicked({ kind: 'directory', handle: await picker({ mode: 'read' }) });
  } catch (e) {
    if ((e as DOMException).name !== 'AbortError') ui.loadError.textContent = `cannot open the folder: ${(e as Error).message}`;
  }
});
ui.folderInput.addEventListener('change', () => {
  const files = [...(ui.folderInput.files ?? [])];
  if (files.length > 0) usePicked({ kind: 'files', files, name: folderNameOf(files) });
});

// ---- loading ----------------------------------------------------------------------------------------

function showProgress(tracker: ProgressTracker): void {
  const v = tracker.view();
  ui.progress.value = v.fraction;
  ui.progress.dataset.fraction = String(v.fraction);
  ui.progress.dataset.phase = v.phase;
  ui.progress.dataset.downloadedBytes = String(v.downloadedBytes);
  ui.progressText.textContent = describeProgress(v);
}

function describeMemory(m: MemoryUse): string {
  return `${formatBytes(totalMemory(m))} (weights ${formatBytes(m.weights)}, KV ${formatBytes(m.kvCache)}, activations ${formatBytes(m.activations)})`;
}

ui.loadForm.addEventListener('submit', async (event) => {
  event.preventDefault();
  if (state === 'loading' || state === 'generating') return;
  ui.loadError.textContent = '';
  let source: ModelSource;
  try {
    source = pickedFolder ?? parseModelText(ui.modelText.value);
  } catch (e) {
    ui.loadError.textContent = (e as Error).message;
    return;
  }
  const backend = selectedBackend();
  const threads = backend === 'wasm' && env?.threads.available ? env.threads.count ?? 1 : 1;
  const tracker = new ProgressTracker();
  showProgress(tracker);
  ui.progressText.textContent = `Opening ${describeSource(source)}…`;
  ui.modelInfo.textContent = '';
  delete ui.modelInfo.dataset.backend;
  loaded = undefined;
  setState('loading');
  const started = performance.now();
  try {
    const request = await client.load(source, { backend, dtype: ui.dtype.value as WeightDtype, kvCache: ui.kvCache.value as KVCacheKind, threads }, (p) => {
      tracker.push(p);
      showProgress(tracker);
    });
    loadId = request.id;
    loaded = await request.done;
    ui.progressText.textContent = describeLoaded(tracker.view(), performance.now() - started);
    ui.modelInfo.dataset.backend = loaded.backend.name;
    ui.modelInfo.textContent =
      `${loaded.source} · ${loaded.layers} layers, hidden ${loaded.hiddenSize}, vocab ${loaded.vocabSize} · ` +
      `${loaded.backend.name} on ${loaded.backend.device} · ` +
      `weights ${formatBytes(loaded.weightsBytes)} in ${loaded.weightFormat} · memory ${describeMemory(loaded.memory)} · ` +
      `formats this backend stores: ${loaded.backend.formats.join(', ')}` +
      (loaded.hasChatTemplate ? '' : ' · no chat template: messages are sent as plain text');
    ui.stat.memory.textContent = formatBytes(totalMemory(loaded.memory));
    setState('ready');
  } catch (e) {
    const err = e as Error;
    ui.loadError.textContent = err.name === 'AbortError' ? 'Loading cancelled.' : `${err.name}: ${err.message}`;
    setState('idle');
  } finally {
    loadId = undefined;
    void refreshCacheSize();
  }
});

ui.cancelLoad.addEventListener('click', () => {
  if (loadId !== undefined) void client.stop(loadId);
});

// ---- browser cache ----------------------------------------------------------------------------------

async function refreshCacheSize(): Promise<void> {
  if (typeof caches === 'undefined') {
    ui.cacheSize.textContent = 'Browser cache: unavailable (the Cache API needs a secure context)';
    ui.clearCache.disabled = true;
    return;
  }
  try {
    const usage = await cacheUsage(MODEL_CACHE_NAME);
    ui.cacheSize.dataset.bytes = String(usage.bytes);
    ui.cacheSize.textContent = `Browser cache: ${formatBytes(usage.bytes)} in ${usage.files} files`;
  } catch (e) {
    ui.cacheSize.textContent = `Browser cache: cannot read (${(e as Error).message})`;
  }
}

ui.clearCache.addEventListener('click', async () => {
  ui.clearCache.disabled = true;
  try {
    await clearCache(MODEL_CACHE_NAME);
  } finally {
    await refreshCacheSize();
    setState(state);
  }
});

// ---- settings and chat ------------------------------------------------------------------------------

function settingInputs(): HTMLInputElement[] {
  return [...ui.settings.querySelectorAll<HTMLInputElement>('.grid input')];
}
for (const input of settingInputs()) input.value = String(DEFAULT_SETTINGS[input.name as keyof SamplingSettings]);

function readSettings(): SamplingSettings {
  const raw: Partial<Record<keyof SamplingSettings, string>> = {};
  for (const input of settingInputs()) raw[input.name as keyof SamplingSettings] = input.value;
  return parseSettings(raw);
}

function showStats(stats: LiveStats): void {
  const v = stats.view();
  ui.stat.ttft.textContent = formatMs(v.timeToFirstTokenMs);
  ui.stat.prefill.textContent = v.promptTokens !== undefined ? `${formatTokensPerSecond(v.prefillTokensPerSecond)} (${v.promptTokens} tok)` : formatTokensPerSecond(v.prefillTokensPerSecond);
  ui.stat.decode.textContent = formatTokensPerSecond(v.decodeTokensPerSecond);
  ui.stat.tokens.textContent = String(v.tokens);
  if (v.memory) {
    ui.stat.memory.textContent = formatBytes(totalMemory(v.memory));
    ui.stat.memory.title = describeMemory(v.memory);
  }
  ui.stats.dataset.final = String(v.final);
}

/** Streams one reply for `messages` into the conversation's last turn. */
async function streamReply(messages: ReturnType<Conversation['send']>, settings: SamplingSettings): Promise<void> {
  const stats = new LiveStats(loaded?.memory);
  setState('generating');
  chatView.render(conversation.turns);
  showStats(stats);
  // Render at most once per frame however fast tokens come.
  let scheduled = false;
  const render = () => {
    if (scheduled) return;
    scheduled = true;
    requestAnimationFrame(() => {
      scheduled = false;
      chatView.render(conversation.turns);
      showStats(stats);
    });
  };
  const reply = client.chat(messages, toGenerateOptions(settings, { json: ui.jsonOutput.checked, promptLookup: ui.promptLookup.checked }), (tokenId, text, at) => {
    conversation.append(tokenId, text);
    if (tokenId >= 0) stats.token(at);
    render();
  });
  replyId = reply.id;
  try {
    const result = await reply.done;
    stats.finish(result);
    if (loaded) loaded.memory = result.memory;
    conversation.finish(result.finishReason);
  } catch (e) {
    const err = e as Error;
    ui.chatError.textContent = `${err.name}: ${err.message}`;
    conversation.finish('error');
  } finally {
    replyId = undefined;
    setState('ready');
    chatView.render(conversation.turns);
    showStats(stats);
  }
}

/** Starts a reply unless the settings or the conversation refuse (shown to the user); returns whether it started. */
function startReply(make: (systemPrompt: string) => ReturnType<Conversation['send']>): boolean {
  ui.chatError.textContent = '';
  ui.settingsError.textContent = '';
  let settings: SamplingSettings;
  try {
    settings = readSettings();
  } catch (e) {
    ui.settingsError.textContent = (e as Error).message;
    ui.settings.open = true;
    return false;
  }
  let messages;
  try {
    messages = make(ui.systemPrompt.value);
  } catch (e) {
    if (e instanceof ConversationError) ui.chatError.textContent = e.message;
    else throw e;
    return false;
  }
  void streamReply(messages, settings);
  return true;
}

ui.chatForm.addEventListener('submit', (event) => {
  event.preventDefault();
  if (state !== 'ready') return;
  const text = ui.prompt.value;
  if (startReply((system) => conversation.send(text, system))) ui.prompt.value = '';
});
ui.prompt.addEventListener('keydown', (event) => {
  // Enter sends, Shift+Enter breaks the line (as in most chat apps).
  if (event.key === 'Enter' && !event.shiftKey && !event.isComposing) {
    event.preventDefault();
    ui.chatForm.requestSubmit();
  }
});
ui.stop.addEventListener('click', () => {
  if (replyId !== undefined) void client.stop(replyId);
});
ui.regenerate.addEventListener('click', () => {
  if (state === 'ready') startReply((system) => conversation.regenerate(system));
});
ui.clearChat.addEventListener('click', () => {
  if (state !== 'ready') return;
  conversation.clear();
  chatView.render(conversation.turns);
  setState('ready');
});

// ---- start ------------------------------------------------------------------------------------------

setState('starting');
env = await probeEnvironment();
void refreshCacheSize();
setState('idle');

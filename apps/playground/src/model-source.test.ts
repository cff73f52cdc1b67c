import { describe, expect, it } from 'vitest';
import { describeSource, folderNameOf, ModelSourceError, parseModelText } from './model-source.js';

describe('model source', () => {
  it('tells Hub ids from URLs', () => {
    expect(parseModelText(' Qwen/Qwen2-0.5B-Instruct ')).toEqual({ kind: 'hub', id: 'Qwen/Qwen2-0.5B-Instruct' });
    expect(parseModelText('Qwen/Qwen2.5-0.5B-Instruct@refs/pr/1')).toEqual({ kind: 'hub', id: 'Qwen/Qwen2.5-0.5B-Instruct@refs/pr/1' });
    expect(parseModelText('http://127.0.0.1:8080/models/tiny/')).toEqual({ kind: 'url', url: 'http://127.0.0.1:8080/models/tiny' });
    expect(describeSource(parseModelText('https://example.com/m'))).toBe('https://example.com/m');
    // One GGUF file of a Hub repository, or by URL.
    expect(parseModelText('Qwen/Qwen2-0.5B-Instruct-GGUF/qwen2-0_5b-instruct-q4_0.gguf@main')).toEqual({ kind: 'hub', id: 'Qwen/Qwen2-0.5B-Instruct-GGUF/qwen2-0_5b-instruct-q4_0.gguf@main' });
    expect(parseModelText('https://example.com/m/q4_0.gguf')).toEqual({ kind: 'url', url: 'https://example.com/m/q4_0.gguf' });
  });
  it('rejects other text, saying what is accepted', () => {
    expect(() => parseModelText('')).toThrow(ModelSourceError);
    expect(() => parseModelText('just-a-name')).toThrow(/neither a Hugging Face model id .* nor an http\(s\) URL/);
    expect(() => parseModelText('Qwen/Qwen2-0.5B-Instruct-GGUF/readme.md')).toThrow(ModelSourceError);
    expect(() => parseModelText('ftp://host/model')).toThrow(ModelSourceError);
    expect(() => parseModelText('http://')).toThrow(/not a valid URL/);
  });
  it('names a picked folder after its files\' first path segment', () => {
    // File.webkitRelativePath is set by the browser's folder picker; define it for the test.
    const f = (path: string) => {
      const x = new File(['x'], path.split('/').pop()!);
      Object.defineProperty(x, 'webkitRelativePath', { value: path });
      return x;
    };
    expect(folderNameOf([f('qwen2-0.5b/config.json'), f('qwen2-0.5b/model.safetensors')])).toBe('qwen2-0.5b');
    expect(folderNameOf([])).toBe('folder');
  });
});

/**
 * Browser folder pickers as model folders: the File[] of `<input type="file" webkitdirectory>` and a
 * FileSystemDirectoryHandle from `showDirectoryPicker()`. Reads are Blob slices, so nothing is loaded whole.
 */
import { ModelNotFoundError } from '../errors.js';
import { blobFile, type ModelFolder } from '../random-access.js';

/**
 * A folder from the File[] of an `<input webkitdirectory>`. Paths are matched relative to the picked
 * folder (the first segment of `webkitRelativePath`); plain multi-file picks match by file name.
 */
export function filesFolder(files: File[]): ModelFolder {
  const byPath = new Map<string, File>();
  for (const file of files) {
    const relative = (file as File & { webkitRelativePath?: string }).webkitRelativePath;
    const path = relative ? relative.split('/').slice(1).join('/') : file.name;
    byPath.set(path || file.name, file);
  }
  const root = (files[0] as (File & { webkitRelativePath?: string }) | undefined)?.webkitRelativePath?.split('/')[0] ?? 'selected files';
  return {
    source: root,
    async readText(path) {
      return byPath.get(path)?.text();
    },
    async openFile(path) {
      const file = byPath.get(path);
      if (!file) throw new ModelNotFoundError(root, `${root}: no file '${path}' among the selected files`, path);
      return blobFile(`${root}/${path}`, file);
    },
  };
}

function isNotFound(e: unknown): boolean {
  const name = (e as { name?: string }).name;
  return name === 'NotFoundError' || name === 'TypeMismatchError';
}

async function fileAt(dir: FileSystemDirectoryHandle, path: string): Promise<File | undefined> {
  const parts = path.split('/');
  let current = dir;
  try {
    for (const part of parts.slice(0, -1)) current = await current.getDirectoryHandle(part);
    return await (await current.getFileHandle(parts[parts.length - 1])).getFile();
  } catch (e) {
    if (isNotFound(e)) return undefined;
    throw e;
  }
}

/** A folder from a FileSystemDirectoryHandle (File System Access API / OPFS). */
export function directoryHandleFolder(dir: FileSystemDirectoryHandle): ModelFolder {
  return {
    source: dir.name,
    async readText(path) {
      return (await fileAt(dir, path))?.text();
    },
    async openFile(path) {
      const file = await fileAt(dir, path);
      if (!file) throw new ModelNotFoundError(dir.name, `${dir.name}: no file '${path}' in the folder`, path);
      return blobFile(`${dir.name}/${path}`, file);
    },
  };
}

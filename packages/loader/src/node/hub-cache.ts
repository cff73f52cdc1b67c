/**
 * Node-only: the huggingface_hub cache layout, so models downloaded by Python are reused and vice versa:
 *   {cacheDir}/models--{owner}--{name}/blobs/{etag}            file contents, named by ETag (sha256 for LFS)
 *   {cacheDir}/models--{owner}--{name}/snapshots/{commit}/{file}  relative symlink to the blob
 *   {cacheDir}/models--{owner}--{name}/refs/{revision}          the commit a branch/tag pointed to
 *   {cacheDir}/models--{owner}--{name}/.no_exist/{commit}/{file} marks a file the repo does not have
 */
import { copyFile, lstat, mkdir, readFile, rename, rm, stat, symlink, writeFile } from 'node:fs/promises';
import { dirname, join, relative } from 'node:path';

const COMMIT = /^[0-9a-f]{40}$/;

/** Paths of one repo in the cache. */
export class RepoCache {
  readonly root: string;
  private readonly locks: string;
  constructor(cacheDir: string, readonly repoId: string) {
    const folder = `models--${repoId.split('/').join('--')}`;
    this.root = join(cacheDir, folder);
    this.locks = join(cacheDir, '.locks', folder);
  }
  blob(etag: string): string {
    return join(this.root, 'blobs', etag);
  }
  snapshot(commit: string): string {
    return join(this.root, 'snapshots', commit);
  }
  ref(revision: string): string {
    return join(this.root, 'refs', ...revision.split('/'));
  }
  /** Our lock for a blob download, beside huggingface_hub's lock folder. */
  lock(etag: string): string {
    return join(this.locks, `${etag}.qwen2-ts.lock`);
  }
  noExist(commit: string, file: string): string {
    return join(this.root, '.no_exist', commit, ...file.split('/'));
  }

  /** The commit a revision resolves to in the cache (a commit hash resolves to itself), or undefined. */
  async commitFor(revision: string): Promise<string | undefined> {
    if (COMMIT.test(revision)) return (await exists(this.snapshot(revision))) ? revision : undefined;
    try {
      const commit = (await readFile(this.ref(revision), 'utf8')).trim();
      return COMMIT.test(commit) ? commit : undefined;
    } catch {
      return undefined;
    }
  }

  /** Records where a branch/tag points, as huggingface_hub does (not for commit revisions). */
  async writeRef(revision: string, commit: string): Promise<void> {
    if (revision === commit) return;
    const path = this.ref(revision);
    await mkdir(dirname(path), { recursive: true });
    const temp = `${path}.${process.pid}.tmp`;
    await writeFile(temp, commit);
    await rename(temp, path);
  }

  /** Marks a file as absent at a commit, so offline opens know not to look for it. */
  async markMissing(commit: string, file: string): Promise<void> {
    const path = this.noExist(commit, file);
    await mkdir(dirname(path), { recursive: true });
    await writeFile(path, '');
  }

  /**
   * Points snapshots/{commit}/{file} at the blob: a relative symlink (what huggingface_hub creates),
   * or a copy where symlinks are not allowed (Windows without developer mode, some file systems).
   */
  async link(commit: string, file: string, etag: string): Promise<void> {
    const target = join(this.snapshot(commit), ...file.split('/'));
    const blob = this.blob(etag);
    await mkdir(dirname(target), { recursive: true });
    if (await exists(target)) return;
    await rm(target, { force: true }); // a dangling link
    try {
      await symlink(relative(dirname(target), blob), target);
    } catch {
      const temp = `${target}.${process.pid}.tmp`;
      await copyFile(blob, temp);
      await rename(temp, target);
    }
  }
}

/** True when the path exists (following symlinks, so a dangling link counts as missing). */
export async function exists(path: string): Promise<boolean> {
  try {
    await stat(path);
    return true;
  } catch {
    return false;
  }
}

/** True when the path exists as a link or file, even a dangling link. */
export async function existsNoFollow(path: string): Promise<boolean> {
  try {
    await lstat(path);
    return true;
  } catch {
    return false;
  }
}

import { readdir, stat } from 'node:fs/promises';
import path from 'node:path';

/** Expands files and folders into the playbook files they name: `*.yaml` and `*.yml`, sorted. */
export async function findPlaybookFiles(paths: readonly string[]): Promise<string[]> {
  const files: string[] = [];
  for (const entry of paths) {
    const info = await stat(entry).catch(() => undefined);
    if (info?.isDirectory()) {
      const names = (await readdir(entry)).filter((name) => /\.ya?ml$/.test(name)).sort();
      files.push(...names.map((name) => path.join(entry, name)));
    } else {
      files.push(entry);
    }
  }
  return files;
}

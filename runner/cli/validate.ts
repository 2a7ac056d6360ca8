import { readFileSync } from 'node:fs';

import {
  checkAudiences,
  locate,
  parseCsvDirectory,
  parseDirectorySource,
  parsePlaybookSource,
  parseYamlSource,
  PlaybookSyntaxError,
  PlaybookValidationError,
  TemplateEngine,
  TocsinError,
} from '../../src/checks.js';
import type { Directory, Problem } from '../../src/checks.js';
import { loadServiceConfig } from '../config.js';
import { UsageError } from '../errors.js';
import { findPlaybookFiles } from '../load-playbooks.js';
import { formatProblems } from './print-problems.js';

/** What `validate` found, per file. */
export interface ValidateResult {
  files: { file: string; kind: string; problems: Problem[] }[];
  problemCount: number;
}

/** Checks playbooks, directories and service configs; the `kind:` of each file says which. */
export async function validateFiles(
  paths: readonly string[],
  options: { directory?: Directory } = {},
): Promise<{ result: ValidateResult; texts: Map<string, string> }> {
  const files = [...new Set(await findPlaybookFiles(paths))];
  if (files.length === 0) {
    throw new UsageError(
      `no *.yaml or *.yml files in ${paths.join(', ')}; give playbook files or folders`,
    );
  }

  const checked = await checkFiles(files, options.directory);
  addDuplicateNames(checked);

  const result: ValidateResult = { files: [], problemCount: 0 };
  const texts = new Map<string, string>();
  for (const entry of checked) {
    result.files.push({ file: entry.file, kind: entry.kind, problems: entry.problems });
    result.problemCount += entry.problems.length;
    if (entry.problems.length > 0 && entry.text !== undefined) texts.set(entry.file, entry.text);
  }
  return { result, texts };
}

/** What checking one file found; `name` lets the caller compare names across files. */
interface CheckedFile {
  file: string;
  kind: string;
  problems: Problem[];
  name?: { value: string; location: Problem['location'] };
  /** The file's text, for the excerpts of its problems. */
  text?: string;
}

/** Checks files one after another. */
async function checkFiles(
  files: readonly string[],
  directory: Directory | undefined,
): Promise<CheckedFile[]> {
  const templates = new TemplateEngine();
  const checked: CheckedFile[] = [];
  for (const file of files) {
    let text: string;
    try {
      // One read after another, synchronously: a hundred small files read faster this way than
      // through the thread pool, and nothing else runs meanwhile.
      text = readFileSync(file, 'utf8');
    } catch {
      const location = { file, line: 1, col: 1 };
      checked.push({
        file,
        kind: 'unknown',
        problems: [
          { code: 'E_PLAYBOOK_READ', message: `${file} cannot be read; check the path`, location },
        ],
      });
      continue;
    }
    checked.push({ ...(await checkText(text, file, { directory, templates })), text });
  }
  return checked;
}

/** Two playbooks checked together must not share a name: the service would keep only one. */
function addDuplicateNames(checked: CheckedFile[]): void {
  const first = new Map<string, string>();
  for (const entry of checked) {
    if (!entry.name) continue;
    const earlier = first.get(entry.name.value);
    if (earlier === undefined) {
      first.set(entry.name.value, entry.file);
      continue;
    }
    entry.problems.push({
      code: 'E_PLAYBOOK_DUPLICATE_NAME',
      message: `playbook name "${entry.name.value}" is also used by ${earlier}; give each playbook its own metadata.name`,
      location: entry.name.location,
    });
  }
}

/** Prints a validate result as text: every problem with an excerpt, then a count. */
export function formatValidateText(result: ValidateResult, texts: Map<string, string>): string {
  const problems = result.files.flatMap((entry) => entry.problems);
  const files = result.files.length === 1 ? '1 file' : `${result.files.length} files`;
  if (problems.length === 0) return `${files} checked, no problems`;
  const failing = result.files.filter((entry) => entry.problems.length > 0).length;
  const count = problems.length === 1 ? '1 problem' : `${problems.length} problems`;
  return `${formatProblems(problems, texts)}\n${count} in ${failing} of ${files}`;
}

async function checkText(
  text: string,
  file: string,
  options: { directory: Directory | undefined; templates: TemplateEngine },
): Promise<CheckedFile> {
  let kind = 'unknown';
  try {
    // A directory too large for YAML is CSV; its name says so.
    if (file.toLowerCase().endsWith('.csv')) {
      kind = 'Directory';
      parseCsvDirectory(text, file);
      return { file, kind, problems: [] };
    }
    const source = parseYamlSource(text, file);
    const value = source.value as { kind?: unknown } | null;
    kind = typeof value?.kind === 'string' ? value.kind : 'unknown';
    if (kind === 'Directory') parseDirectorySource(source);
    else if (kind === 'Config') await loadServiceConfig(file, {}, { resolveSecrets: false });
    else {
      const playbook = parsePlaybookSource(source, { templates: options.templates });
      const problems = options.directory ? checkAudiences(playbook, options.directory) : [];
      const name = { value: playbook.name, location: locate(source, ['metadata', 'name']) };
      return { file, kind, problems, name };
    }
    return { file, kind, problems: [] };
  } catch (error) {
    return { file, kind, problems: toProblems(error, file) };
  }
}

function toProblems(error: unknown, file: string): Problem[] {
  if (error instanceof PlaybookValidationError) return [...error.problems];
  if (error instanceof PlaybookSyntaxError || error instanceof TocsinError) {
    const location = error.location ?? { file, line: 1, col: 1 };
    return [
      {
        code: error.code,
        message: error.message.replace(/^\S+:\d+:\d+ /, '').replace(/^\S+: /, ''),
        location,
      },
    ];
  }
  throw error;
}

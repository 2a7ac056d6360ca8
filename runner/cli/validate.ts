import { readFile } from 'node:fs/promises';

import {
  checkAudiences,
  locate,
  parseDirectorySource,
  parsePlaybookSource,
  parseYamlSource,
  PlaybookSyntaxError,
  PlaybookValidationError,
  TemplateEngine,
  TocsinError,
} from '../../src/checks.js';
import type { Directory, Problem, YamlSource } from '../../src/checks.js';
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
  const texts = new Map<string, string>();
  const names = new Map<string, string>();
  const templates = new TemplateEngine();
  const result: ValidateResult = { files: [], problemCount: 0 };

  for (const file of files) {
    let text: string;
    try {
      text = await readFile(file, 'utf8');
    } catch {
      const problem: Problem = {
        code: 'E_PLAYBOOK_READ',
        message: `${file} cannot be read; check the path`,
        location: { file, line: 1, col: 1 },
      };
      result.files.push({ file, kind: 'unknown', problems: [problem] });
      result.problemCount++;
      continue;
    }
    texts.set(file, text);
    const { kind, problems } = await checkText(text, file, {
      directory: options.directory,
      names,
      templates,
    });
    result.files.push({ file, kind, problems });
    result.problemCount += problems.length;
  }
  return { result, texts };
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
  options: {
    directory: Directory | undefined;
    names: Map<string, string>;
    templates: TemplateEngine;
  },
): Promise<{ kind: string; problems: Problem[] }> {
  let kind = 'unknown';
  try {
    const source = parseYamlSource(text, file);
    const value = source.value as { kind?: unknown } | null;
    kind = typeof value?.kind === 'string' ? value.kind : 'unknown';
    if (kind === 'Directory') parseDirectorySource(source);
    else if (kind === 'Config') await loadServiceConfig(file, {}, { resolveSecrets: false });
    else {
      const playbook = parsePlaybookSource(source, { templates: options.templates });
      const problems = checkUniqueName(source, options.names);
      if (options.directory) problems.push(...checkAudiences(playbook, options.directory));
      return { kind, problems };
    }
    return { kind, problems: [] };
  } catch (error) {
    return { kind, problems: toProblems(error, file) };
  }
}

/** Two playbooks checked together must not share a name: the service would keep only one. */
function checkUniqueName(source: YamlSource, names: Map<string, string>): Problem[] {
  const name = (source.value as { metadata?: { name?: unknown } }).metadata?.name;
  if (typeof name !== 'string') return [];
  const first = names.get(name);
  if (first === undefined) {
    names.set(name, source.file);
    return [];
  }
  return [
    {
      code: 'E_PLAYBOOK_DUPLICATE_NAME',
      message: `playbook name "${name}" is also used by ${first}; give each playbook its own metadata.name`,
      location: locate(source, ['metadata', 'name']),
    },
  ];
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

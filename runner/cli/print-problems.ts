import type { Problem } from '../../src/checks.js';

/**
 * Formats problems the way liquidjs prints template errors: the location and code, the message,
 * then the line before, the failing line marked, and a caret under the column.
 */
export function formatProblems(
  problems: readonly Problem[],
  texts: ReadonlyMap<string, string>,
): string {
  return problems
    .map((problem) => formatProblem(problem, texts.get(problem.location.file)))
    .join('\n');
}

function formatProblem(problem: Problem, text: string | undefined): string {
  const { file, line, col } = problem.location;
  const lines = [`${file}:${line}:${col}  ${problem.code}`, `  ${problem.message}`, ''];
  if (text === undefined) return lines.join('\n');

  const source = text.split('\n');
  const width = String(Math.min(line + 1, source.length)).length;
  const row = (number: number, marker: string): string | undefined => {
    const content = source[number - 1];
    return content === undefined
      ? undefined
      : `  ${marker} ${String(number).padStart(width)} | ${content}`;
  };
  const excerpt = [
    row(line - 1, ' '),
    row(line, '>'),
    `    ${' '.repeat(width)} | ${' '.repeat(Math.max(0, col - 1))}^`,
    row(line + 1, ' '),
  ].filter((entry): entry is string => entry !== undefined);
  return [...lines, ...excerpt, ''].join('\n');
}

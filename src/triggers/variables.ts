import { EngineError } from '../errors.js';
import { parseDuration } from '../playbook/index.js';
import type { VariableDefinition } from '../playbook/index.js';

/** Incident variable values, typed as the playbook declares them. */
export type VariableValues = Record<string, string | number | boolean>;

/**
 * Reads incident variables from a trigger payload: each mapped path is looked up, converted to
 * the declared type, and missing values take their default.
 *
 * @throws EngineError E_ENGINE_VARIABLE when a value without default is missing or of the wrong type
 */
export function extractVariables(
  declared: Record<string, VariableDefinition>,
  mapping: Record<string, string>,
  payload: unknown,
): VariableValues {
  const values: VariableValues = {};
  for (const [name, definition] of Object.entries(declared)) {
    const path = mapping[name];
    const raw = path === undefined ? undefined : readPath(payload, path);
    if (raw === undefined || raw === null || raw === '') {
      if (definition.default === undefined) {
        throw new EngineError(
          'E_ENGINE_VARIABLE',
          path === undefined
            ? `variable "${name}" is required and was not given; pass it (tocsin trigger --var ${name}=..., or "variables" in the request) or give the variable a default`
            : `variable "${name}" is required, but the payload has no value at "${path}"; send it or give the variable a default`,
        );
      }
      values[name] = definition.default;
      continue;
    }
    values[name] = convert(name, definition, raw);
  }
  return values;
}

/** Follows a dotted path (`alerts.0.labels.instance`) through objects and arrays. */
export function readPath(value: unknown, path: string): unknown {
  let current = value;
  for (const segment of path.split('.')) {
    if (current === null || typeof current !== 'object') return undefined;
    if (!Object.prototype.hasOwnProperty.call(current, segment)) return undefined;
    current = (current as Record<string, unknown>)[segment];
  }
  return current;
}

function convert(
  name: string,
  definition: VariableDefinition,
  raw: unknown,
): string | number | boolean {
  const { type } = definition;
  switch (type) {
    case 'string':
      if (typeof raw === 'string' || typeof raw === 'number' || typeof raw === 'boolean') {
        return String(raw);
      }
      break;
    case 'number': {
      const number = typeof raw === 'number' ? raw : Number(raw);
      if (typeof raw === 'object' || Number.isNaN(number)) break;
      return number;
    }
    case 'boolean':
      if (typeof raw === 'boolean') return raw;
      if (raw === 'true' || raw === 'false') return raw === 'true';
      break;
    case 'enum':
      if (typeof raw === 'string' && definition.values?.includes(raw)) return raw;
      throw new EngineError(
        'E_ENGINE_VARIABLE',
        `variable "${name}" must be one of ${(definition.values ?? []).map((value) => `"${value}"`).join(', ')}; fix the trigger mapping or the sender`,
      );
    case 'duration':
      if (typeof raw === 'string' && parseDuration(raw)) return raw;
      break;
  }
  throw new EngineError(
    'E_ENGINE_VARIABLE',
    `variable "${name}" must be a ${type}, but the payload gives a ${Array.isArray(raw) ? 'list' : typeof raw}; fix the trigger mapping or the sender`,
  );
}

/**
 * Reads variables given by a person (manual trigger): every name must be declared, values are
 * converted to their declared type, and missing ones take their default.
 *
 * @throws EngineError E_ENGINE_VARIABLE naming the variable that is unknown, missing or wrong
 */
export function convertVariables(
  declared: Record<string, VariableDefinition>,
  given: Record<string, string | number | boolean>,
): VariableValues {
  for (const name of Object.keys(given)) {
    if (!(name in declared)) {
      const known = Object.keys(declared)
        .map((key) => `"${key}"`)
        .join(', ');
      throw new EngineError(
        'E_ENGINE_VARIABLE',
        `variable "${name}" is not declared by the playbook; use one of ${known || 'none'}`,
      );
    }
  }
  const mapping = Object.fromEntries(Object.keys(given).map((name) => [name, name]));
  return extractVariables(declared, mapping, given);
}

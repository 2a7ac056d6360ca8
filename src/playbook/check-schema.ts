import { createHash } from 'node:crypto';
import { createRequire } from 'node:module';

import type { Ajv, ErrorObject, ValidateFunction } from 'ajv';

import directorySchema from '../../schemas/directory.schema.json' with { type: 'json' };
import playbookSchema from '../../schemas/playbook.schema.json' with { type: 'json' };
import configSchema from '../../schemas/config.schema.json' with { type: 'json' };
import type { Problem } from '../errors.js';
import { problemAt, toPathSegments } from './yaml-source.js';
import type { YamlSource } from './yaml-source.js';

/** The documents Tocsin checks against a schema in `schemas/`. */
export type SchemaName = 'playbook' | 'directory' | 'config';

const SCHEMAS: Record<SchemaName, object> = {
  playbook: playbookSchema,
  directory: directorySchema,
  config: configSchema,
};

/** Validators compiled by scripts/build-validators.mjs, each with the digest of its schema. */
type Precompiled = Record<SchemaName, ValidateFunction> & { digests: Record<SchemaName, string> };

// The build compiles the schemas ahead, which spares each start the ajv compiler (about a third
// of `tocsin validate` on one file). Run from source, or with a schema edited after the build,
// ajv compiles at run time instead.
const precompiled = await import(new URL('./schema-validators.js', import.meta.url).href).then(
  (module) => module as Precompiled,
  () => undefined,
);

let ajv: Ajv | undefined;
const validators = new Map<SchemaName, ValidateFunction>();

const KINDS: Record<SchemaName, string> = {
  playbook: 'Playbook',
  directory: 'Directory',
  config: 'Config',
};

/** Checks a parsed YAML document against a schema; one problem per finding, all of them. */
export function checkSchema(name: SchemaName, source: YamlSource): Problem[] {
  const wrongKind = checkKind(name, source);
  if (wrongKind) return [wrongKind];

  const validate = validatorFor(name);
  if (validate(source.value)) return [];

  const problems: Problem[] = [];
  const seen = new Set<string>();
  for (const error of validate.errors ?? []) {
    const problem = toProblem(source, error);
    if (!problem) continue;
    const key = `${problem.location.line}:${problem.location.col}:${problem.message}`;
    if (seen.has(key)) continue;
    seen.add(key);
    problems.push(problem);
  }
  return problems;
}

/** A document of another kind gets one problem that says so, not a list of missing keys. */
function checkKind(name: SchemaName, source: YamlSource): Problem | undefined {
  const value = source.value;
  const wanted = KINDS[name];
  if (value === null || typeof value !== 'object' || Array.isArray(value)) {
    const found = value === null ? 'empty' : Array.isArray(value) ? 'a list' : `a ${typeof value}`;
    return problemAt(
      source,
      [],
      'E_PLAYBOOK_SCHEMA',
      `the document is ${found}; a ${wanted} is a mapping that starts with apiVersion: tocsin/v1 and kind: ${wanted}`,
    );
  }
  const kind = (value as { kind?: unknown }).kind;
  if (typeof kind !== 'string' || kind === wanted) return undefined;
  const known = Object.values(KINDS);
  const what = known.includes(kind)
    ? `this is a ${kind}, not a ${wanted}`
    : `kind "${kind}" is unknown; use one of ${known.map((k) => `"${k}"`).join(', ')}`;
  return problemAt(source, ['kind'], 'E_PLAYBOOK_SCHEMA', `${what}; give a ${wanted} file here`);
}

function validatorFor(name: SchemaName): ValidateFunction {
  const cached = validators.get(name);
  if (cached) return cached;
  const schema = SCHEMAS[name];
  const validate =
    precompiled && precompiled.digests[name] === schemaDigest(schema)
      ? precompiled[name]
      : compileSchema(schema);
  validators.set(name, validate);
  return validate;
}

/** Must match `schemaDigest` in scripts/build-validators.mjs. */
function schemaDigest(schema: object): string {
  return createHash('sha256').update(JSON.stringify(schema)).digest('hex');
}

function compileSchema(schema: object): ValidateFunction {
  if (!ajv) {
    // ajv and ajv-formats are CommonJS; required here, they load only when needed.
    const require = createRequire(import.meta.url);
    const { Ajv: AjvClass } = require('ajv') as typeof import('ajv');
    const addFormats = require('ajv-formats') as (ajv: Ajv) => Ajv;
    ajv = addFormats(new AjvClass({ allErrors: true, verbose: true, strict: false }));
  }
  return ajv.compile(schema);
}

function toProblem(source: YamlSource, error: ErrorObject): Problem | undefined {
  const path = toPathSegments(error.instancePath);
  const where = path.length === 0 ? 'the document' : `"${path.join('.')}"`;

  // Branch failures inside oneOf are summarised by the oneOf error itself.
  if (error.schemaPath.includes('/oneOf/')) return undefined;
  // An if/then says only that the branch failed; the branch's own errors say how.
  if (error.keyword === 'if') return undefined;

  switch (error.keyword) {
    case 'required': {
      const key = String(error.params.missingProperty);
      return problemAt(
        source,
        path,
        'E_PLAYBOOK_SCHEMA',
        `${where} lacks the required key "${key}"; add it`,
      );
    }
    case 'additionalProperties': {
      const key = String(error.params.additionalProperty);
      const allowed = Object.keys((error.parentSchema as { properties?: object }).properties ?? {});
      const hint =
        allowed.length > 0 ? `; allowed keys are ${allowed.map((k) => `"${k}"`).join(', ')}` : '';
      return problemAt(
        source,
        [...path, key],
        'E_PLAYBOOK_SCHEMA',
        `unexpected key "${key}" in ${where}; remove it or fix its spelling${hint}`,
        'key',
      );
    }
    case 'enum': {
      const allowed = (error.params.allowedValues as unknown[])
        .map((value) => JSON.stringify(value))
        .join(', ');
      return problemAt(
        source,
        path,
        'E_PLAYBOOK_SCHEMA',
        `${where} is ${JSON.stringify(error.data)}, which is not allowed; use one of ${allowed}`,
      );
    }
    case 'const': {
      const allowed = JSON.stringify(error.params.allowedValue);
      return problemAt(
        source,
        path,
        'E_PLAYBOOK_SCHEMA',
        `${where} is ${JSON.stringify(error.data)}; it must be ${allowed}`,
      );
    }
    case 'oneOf': {
      const required = ((error.parentSchema as { oneOf?: { required?: string[] }[] }).oneOf ?? [])
        .flatMap((branch) => branch.required ?? [])
        .map((key) => `"${key}"`);
      const keys = required.length > 0 ? required.join(' or ') : 'one of its forms';
      return problemAt(
        source,
        path,
        'E_PLAYBOOK_SCHEMA',
        `${where} must have exactly one of ${keys}; keep one`,
      );
    }
    case 'pattern': {
      if (error.propertyName !== undefined) {
        return problemAt(
          source,
          [...path, error.propertyName],
          'E_PLAYBOOK_SCHEMA',
          `name "${error.propertyName}" in ${where} must match ${String(error.params.pattern)}; rename it`,
          'key',
        );
      }
      return problemAt(
        source,
        path,
        'E_PLAYBOOK_SCHEMA',
        `${where} is ${JSON.stringify(error.data)}, which must match ${String(error.params.pattern)}`,
      );
    }
    case 'propertyNames':
      return undefined;
    default:
      return problemAt(
        source,
        path,
        'E_PLAYBOOK_SCHEMA',
        `${where} ${error.message ?? 'is invalid'}`,
      );
  }
}

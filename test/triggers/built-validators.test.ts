import { createHash } from 'node:crypto';
import { readFileSync } from 'node:fs';
import path from 'node:path';

import { Ajv } from 'ajv';
import type { ValidateFunction } from 'ajv';
import { describe, expect, it } from 'vitest';

// The build (npm run build, or prepare after npm ci) compiles the webhook schemas ahead, so
// `serve` never loads the ajv compiler: these validators must be those of today's schemas and
// judge bodies exactly as the run-time compiler does.
const ROOT = path.resolve(import.meta.dirname, '..', '..');
const built = (await import(path.join(ROOT, 'dist/src/triggers/webhook-validators.js'))) as Record<
  string,
  ValidateFunction
> & { digests: Record<string, string> };
const schemaOf = (name: string): object =>
  JSON.parse(
    readFileSync(path.join(ROOT, 'schemas', `${name}-webhook.schema.json`), 'utf8'),
  ) as object;
const fixture = (name: string): Record<string, unknown> =>
  JSON.parse(readFileSync(path.join(ROOT, 'test/fixtures/webhooks', name), 'utf8')) as Record<
    string,
    unknown
  >;

describe('webhook validators built ahead', () => {
  it.each(['alertmanager', 'grafana', 'pagerduty'])(
    'are those of the %s schema as it is now',
    (name) => {
      const digest = createHash('sha256')
        .update(JSON.stringify(schemaOf(name)))
        .digest('hex');
      expect(built.digests[name]).toBe(digest);
    },
  );

  it('judge good and bad bodies as the run-time compiler does', () => {
    const ajv = new Ajv({ allErrors: false, strict: false });
    const compiled = new Map<string, ValidateFunction>();
    const firing = fixture('alertmanager-firing.json');
    const bodies: [string, unknown][] = [
      ['alertmanager', firing],
      ['alertmanager', { ...firing, version: '3' }],
      ['alertmanager', { ...firing, alerts: 'none' }],
      ['alertmanager', { ...firing, groupKey: undefined }],
      ['alertmanager', [firing]],
      ['grafana', firing],
      ['pagerduty', fixture('pagerduty-v3-incident-triggered.json')],
      ['pagerduty', { event: { event_type: 7 } }],
    ];
    for (const [name, body] of bodies) {
      const ahead = built[name];
      const now = compiled.get(name) ?? ajv.compile(schemaOf(name));
      compiled.set(name, now);
      const parsed = JSON.parse(JSON.stringify(body)) as unknown;
      expect(ahead?.(parsed), `${name} ${JSON.stringify(body).slice(0, 40)}`).toBe(now(parsed));
      expect(ahead?.errors ?? null).toEqual(now.errors ?? null);
    }
    expect(built.alertmanager?.(firing)).toBe(true);
    expect(built.alertmanager?.({ ...firing, version: '3' })).toBe(false);
  });
});

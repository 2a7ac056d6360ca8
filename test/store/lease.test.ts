import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';

import { afterEach, describe, expect, it } from 'vitest';

import { IncidentStore } from '../../src/index.js';

const T0 = '2026-12-03T09:00:00.000Z';
const T1 = '2026-12-03T09:00:10.000Z';
const T2 = '2026-12-03T09:00:16.000Z';

describe('the writer lease', () => {
  const dirs: string[] = [];
  afterEach(() => {
    for (const dir of dirs.splice(0)) rmSync(dir, { recursive: true, force: true });
  });

  function twoStores(): [IncidentStore, IncidentStore] {
    const dir = mkdtempSync(path.join(tmpdir(), 'tocsin-lease-'));
    dirs.push(dir);
    const file = path.join(dir, 'tocsin.db');
    return [new IncidentStore(file), new IncidentStore(file)];
  }

  it('goes to one process at a time, and to another when it runs out', () => {
    const [a, b] = twoStores();

    expect(a.acquireLease('a', T0, 15_000).holder).toBe('a');
    expect(b.acquireLease('b', T1, 15_000).holder).toBe('a');
    expect(a.renewLease('a', T1, 15_000)).toBe(true);
    // Renewed at T1, the lease lasts until T1 + 15s, past T2.
    expect(b.acquireLease('b', T2, 15_000).holder).toBe('a');
    expect(b.acquireLease('b', '2026-12-03T09:00:25.001Z', 15_000).holder).toBe('b');
    expect(a.renewLease('a', '2026-12-03T09:00:26.000Z', 15_000)).toBe(false);
    a.close();
    b.close();
  });

  it('passes at once from a holder known to be gone', () => {
    const [a, b] = twoStores();
    a.acquireLease('a', T0, 15_000);

    expect(b.acquireLease('b', T1, 15_000, (holder) => holder === 'a').holder).toBe('b');
    a.close();
    b.close();
  });

  it('fails every write of a process that lost the lease, and changes nothing', () => {
    const [a, b] = twoStores();
    let now = T0;
    a.acquireLease('a', now, 15_000);
    a.holdLease('a', () => now);
    a.transaction(() =>
      a.appendAudit({ incidentId: null, at: now, actor: 't', type: 'x', data: {} }),
    );

    now = '2026-12-03T09:00:20.000Z';
    b.acquireLease('b', now, 15_000);

    expect(() =>
      a.transaction(() =>
        a.appendAudit({ incidentId: null, at: now, actor: 't', type: 'y', data: {} }),
      ),
    ).toThrow(expect.objectContaining({ code: 'E_STORE_LEASE_LOST' }));
    expect(() => a.claimMessages(10, now, now)).toThrow(
      expect.objectContaining({ code: 'E_STORE_LEASE_LOST' }),
    );
    const types = b.db
      .prepare('SELECT type FROM audit ORDER BY seq')
      .all()
      .map((row) => (row as { type: string }).type);
    expect(types).toEqual(['x']);
    a.close();
    b.close();
  });

  it('fails writes once the lease ran out, even when nobody took it', () => {
    const [a, b] = twoStores();
    let now = T0;
    a.acquireLease('a', now, 15_000);
    a.holdLease('a', () => now);
    now = '2026-12-03T09:00:15.000Z';

    expect(() => a.transaction(() => undefined)).toThrow(/ran out/);
    a.close();
    b.close();
  });
});

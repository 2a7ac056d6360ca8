import { existsSync } from 'node:fs';
import path from 'node:path';

import { createEngine, IncidentStore, systemClock, toIsoUtc } from '../../src/index.js';
import type { Engine } from '../../src/index.js';
import { loadServiceConfig } from '../config.js';
import { UsageError } from '../errors.js';
import { isDeadHere, leaseHolder } from '../lease.js';
import { loadPlan } from '../service.js';
import { toIncidentView } from '../server/views.js';

/** Where `--db` acts: the database file, and the config that names playbooks and directory. */
export interface DirectTarget {
  db: string;
  config?: string;
}

/**
 * Acts on the database directly, for when the service is down: takes the writer lease (refused
 * while a service holds it), resumes the open incidents, runs `act`, and gives the lease back.
 * Timers are not run and nothing is sent here: messages the action decides wait in the outbox
 * for the next `tocsin serve`, which also fires any timer that came due meanwhile.
 *
 * @returns the incident's view (as the API gives it) after the action
 */
export async function actOnDatabase(
  target: DirectTarget,
  act: (engine: Engine) => string,
): Promise<unknown> {
  const file = path.resolve(target.db);
  if (!existsSync(file)) {
    throw new UsageError(`no database at ${file}; give the file tocsin serve uses (--db)`);
  }
  const config = await loadServiceConfig(target.config, process.env, { resolveSecrets: false });
  const { templates, playbooks, directory } = await loadPlan(config);

  const store = new IncidentStore(file);
  const holder = leaseHolder();
  const now = (): string => toIsoUtc(systemClock.now());
  try {
    const lease = store.acquireLease(holder, now(), 30_000, isDeadHere);
    if (lease.holder !== holder) {
      throw new UsageError(
        `a service (${lease.holder}) is running on ${file}; act through it instead: leave out --db and give --url`,
      );
    }
    store.holdLease(holder, now);
    const engine = createEngine({ store, clock: systemClock, directory, templates });
    engine.loadPlaybooks(playbooks);
    engine.restore();
    const incidentId = act(engine);
    const incident = store.getIncident(incidentId);
    return incident ? toIncidentView(store, incident, true) : { id: incidentId };
  } finally {
    store.releaseLease(holder);
    store.close();
  }
}

/** Lists incidents, or shows one, read-only from the database file. */
export function readFromDatabase(db: string, incidentId: string | undefined): unknown {
  const file = path.resolve(db);
  const store = new IncidentStore(file, { readonly: true });
  try {
    if (incidentId === undefined) {
      const incidents = store.listIncidents({ limit: 100 });
      return { incidents: incidents.map((incident) => toIncidentView(store, incident, false)) };
    }
    const incident = store.getIncident(incidentId);
    if (!incident) throw new UsageError(`no incident has id "${incidentId}" in ${file}`);
    return toIncidentView(store, incident, true);
  } finally {
    store.close();
  }
}

import { existsSync } from 'node:fs';
import path from 'node:path';

import { createEngine, IncidentStore, systemClock, toIsoUtc } from '../../src/index.js';
import type { Engine } from '../../src/index.js';
import { loadServiceConfig } from '../config.js';
import { UsageError } from '../errors.js';
import { isCliHolder, isDeadHere, leaseHolder } from '../lease.js';
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
  const embedded = await loadServiceConfig(undefined, process.env, { resolveSecrets: false });
  if (target.config === undefined && file !== embedded.database) {
    throw new UsageError(
      `give --config, the service config of ${file}: its playbooks and directory decide who hears what`,
    );
  }
  const config =
    target.config === undefined
      ? embedded
      : await loadServiceConfig(target.config, process.env, { resolveSecrets: false });
  const { templates, playbooks, directory } = await loadPlan(config);

  // Only an existing Tocsin database of this version is written to; anything else is left alone.
  new IncidentStore(file, { readonly: true }).close();
  const store = new IncidentStore(file);
  const holder = leaseHolder('cli');
  const now = (): string => toIsoUtc(systemClock.now());
  try {
    await takeLease(store, holder, now, file);
    store.holdLease(holder, now);
    const engine = createEngine({ store, clock: systemClock, directory, templates });
    engine.loadPlaybooks(playbooks);
    engine.restore();
    // Time has passed while the service was down: what came due first happens first, as the
    // service would have done it, so a late acknowledgement does not undo an overdue escalation.
    engine.fireDueTimers();
    const incidentId = act(engine);
    const incident = store.getIncident(incidentId);
    return incident ? toIncidentView(store, incident, true) : { id: incidentId };
  } finally {
    store.releaseLease(holder);
    store.close();
  }
}

/** Takes the writer lease; waits a few seconds for another CLI command, never for a service. */
async function takeLease(
  store: IncidentStore,
  holder: string,
  now: () => string,
  file: string,
): Promise<void> {
  for (let attempt = 0; ; attempt++) {
    const lease = store.acquireLease(holder, now(), 30_000, isDeadHere);
    if (lease.holder === holder) return;
    if (!isCliHolder(lease.holder) || attempt >= 50) {
      throw new UsageError(
        isCliHolder(lease.holder)
          ? `another tocsin command (${lease.holder}) has held ${file} for over 5 s; try again`
          : `a service (${lease.holder}) is running on ${file}; act through it instead: leave out --db and give --url`,
      );
    }
    await new Promise((resolve) => setTimeout(resolve, 100));
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

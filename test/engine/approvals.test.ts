import { DateTime } from 'luxon';
import { beforeEach, describe, expect, it } from 'vitest';

import {
  createEngine,
  IncidentStore,
  ManualClock,
  parseCsvDirectory,
  parseDirectory,
  parsePlaybook,
} from '../../src/index.js';
import type { Engine } from '../../src/index.js';

const START = DateTime.fromISO('2026-12-03T09:00:00Z');

function playbookWith(onTimeout: 'hold' | 'send' | 'escalate') {
  return parsePlaybook(
    `apiVersion: tocsin/v1
kind: Playbook
metadata: { name: gated, version: 1 }
triggers: [{ source: alertmanager }]
audiences:
  customers: { select: { tags: [customer] }, channels: [email] }
  crisis: { select: { roles: [crisis-lead] }, channels: [sms] }
stages:
  - id: notice
    after: 30m
    audiences: [customers]
    approval: { roles: [legal, comms], quorum: 2, timeout: 1h, onTimeout: ${onTimeout} }
${onTimeout === 'escalate' ? '  - { id: overdue, on: approval-timed-out, audiences: [crisis] }\n' : ''}messages:
  notice:
    customers: { email: { subject: Notice, text: 'We are working on it.' } }
${onTimeout === 'escalate' ? "  overdue:\n    crisis: { sms: 'Notice not approved.' }\n" : ''}`,
    'gated.yaml',
  );
}

const yamlDirectory = parseDirectory(
  `apiVersion: tocsin/v1
kind: Directory
people:
  - { id: ilse, name: Ilse, phone: '+12025550109', roles: [legal] }
  - { id: hana, name: Hana, email: hana@example.com, roles: [comms] }
  - { id: frieda, name: Frieda, phone: '+12025550106', roles: [crisis-lead, comms] }
  - { id: kim, name: Kim, email: kim@example.com, tags: [customer] }
`,
  'directory.yaml',
);
// The same people as a CSV directory, which is kept packed and found by searching.
const csvDirectory = parseCsvDirectory(
  `id,name,phone,email,roles,tags
ilse,Ilse,+12025550109,,legal,
hana,Hana,,hana@example.com,comms,
frieda,Frieda,+12025550106,,crisis-lead;comms,
kim,Kim,,kim@example.com,,customer
`,
  'directory.csv',
);

describe.each([
  ['YAML', yamlDirectory],
  ['CSV', csvDirectory],
])('approval gates, people from a %s directory', (_kind, directory) => {
  let store: IncidentStore;
  let clock: ManualClock;
  let engine: Engine;

  function start(onTimeout: 'hold' | 'send' | 'escalate' = 'hold', createdBy = 'frieda'): string {
    store = new IncidentStore(':memory:');
    clock = new ManualClock(START);
    engine = createEngine({ store, clock, directory });
    engine.loadPlaybooks([playbookWith(onTimeout)]);
    engine.start();
    return engine.startIncident({ playbook: 'gated', variables: {}, createdBy }).id;
  }

  function sent(id: string): string[] {
    return store.listMessages(id).map((message) => `${message.stageId}:${message.personId}`);
  }

  beforeEach(() => {
    store?.close();
  });

  it('asks the approvers, not the author, when the stage is due, and sends on the quorum', () => {
    const id = start();

    clock.advanceTo(START.plus({ minutes: 30 }));
    expect(sent(id)).toEqual(['approval:notice:ilse', 'approval:notice:hana']);

    clock.advanceTo(START.plus({ minutes: 40 }));
    engine.approve(id, 'notice', 'ilse');
    expect(sent(id)).not.toContain('notice:kim');
    engine.approve(id, 'notice', 'hana');

    expect(sent(id)).toContain('notice:kim');
    expect(store.listMessages(id).find((m) => m.stageId === 'notice')?.decidedAt).toBe(
      '2026-12-03T09:40:00.000Z',
    );
    expect(store.listTimers(id)).toEqual([]);
  });

  it('refuses the author, people without the role, a second approval by the same person, and approvals before the stage is due', () => {
    const id = start('hold', 'frieda');
    const codeOf = (by: string): unknown => {
      try {
        engine.approve(id, 'notice', by);
        return 'approved';
      } catch (error) {
        return (error as { code?: string }).code;
      }
    };

    expect(codeOf('ilse')).toBe('E_ENGINE_NOT_APPROVER');
    clock.advanceTo(START.plus({ minutes: 30 }));

    expect(codeOf('frieda')).toBe('E_ENGINE_NOT_APPROVER');
    expect(codeOf('kim')).toBe('E_ENGINE_NOT_APPROVER');
    expect(codeOf('ilse')).toBe('approved');
    expect(codeOf('ilse')).toBe('E_ENGINE_NOT_APPROVER');
    expect(sent(id)).not.toContain('notice:kim');
  });

  it.each([
    ['hold', ['approval:notice:ilse', 'approval:notice:hana', 'approval:notice:frieda']],
    [
      'send',
      ['approval:notice:ilse', 'approval:notice:hana', 'approval:notice:frieda', 'notice:kim'],
    ],
    [
      'escalate',
      ['approval:notice:ilse', 'approval:notice:hana', 'approval:notice:frieda', 'overdue:frieda'],
    ],
  ] as const)('applies the %s policy when the approval times out', (policy, expected) => {
    const id = start(policy, 'alertmanager');

    clock.advanceTo(START.plus({ minutes: 30 }));
    engine.approve(id, 'notice', 'ilse');
    clock.advanceTo(START.plus({ hours: 1, minutes: 30 }));

    expect(sent(id)).toEqual(expected);
    expect(store.listAudit(id).some((entry) => entry.type === 'stage.skipped')).toBe(
      policy !== 'send',
    );
  });

  it('takes an approval by SMS reply quoting the code from the request, and only from an approver', () => {
    const id = start('hold', 'hana');
    clock.advanceTo(START.plus({ minutes: 30 }));
    const [request] = store.listMessages(id).filter((message) => message.personId === 'ilse');
    const code = /APPROVE (\d{4,6}-\d+)/.exec(request?.body ?? '')?.[1] ?? '';
    const reply = (address: string, text: string) =>
      engine.handleReply({ channel: 'sms', address, text });

    // frieda holds comms too; ilse and frieda make the quorum of two.
    const wrongStage = reply('+12025550109', `APPROVE ${code.replace(/-\d+$/, '-9')}`);
    const unknown = reply('+12025550109', 'APPROVE 0000-1');
    const noCode = reply('+12025550109', 'APPROVE');
    const first = reply('+12025550109', `approve ${code}`);
    const again = reply('+12025550109', `APPROVE ${code}`);
    expect(sent(id)).not.toContain('notice:kim');
    const second = reply('+12025550106', `FREIGABE ${code}`);

    expect(code).toMatch(/^\d{4,6}-1$/);
    expect(
      [wrongStage, unknown, noCode, first, again, second].map((outcome) => outcome.outcome),
    ).toEqual([
      'not-approved',
      'no-incident',
      'not-understood',
      'approved',
      'not-approved',
      'approved',
    ]);
    expect(first.answer).toBe(`Your approval of ${code} is recorded.`);
    expect(sent(id)).toContain('notice:kim');
    expect(
      store
        .listAudit(id)
        .filter((entry) => entry.type === 'approval.received')
        .map((entry) => entry.actor),
    ).toEqual(['ilse', 'frieda']);
  });

  it('refuses an approval by reply from the author', () => {
    const id = start('hold', 'ilse');
    clock.advanceTo(START.plus({ minutes: 30 }));
    const [request] = store.listMessages(id).filter((message) => message.personId === 'frieda');
    const code = /APPROVE (\d{4,6}-\d+)/.exec(request?.body ?? '')?.[1] ?? '';

    const outcome = engine.handleReply({
      channel: 'sms',
      address: '+12025550109',
      text: `APPROVE ${code}`,
    });

    expect(outcome.outcome).toBe('not-approved');
    expect(store.listAudit(id).some((entry) => entry.type === 'approval.received')).toBe(false);
  });

  it('keeps the approvals given before a restart', () => {
    const id = start('hold', 'alertmanager');
    clock.advanceTo(START.plus({ minutes: 35 }));
    engine.approve(id, 'notice', 'ilse');
    engine.stop();

    engine = createEngine({ store, clock, directory });
    engine.loadPlaybooks([playbookWith('hold')]);
    engine.restore();
    engine.start();
    engine.approve(id, 'notice', 'frieda');

    expect(sent(id)).toContain('notice:kim');
  });
});

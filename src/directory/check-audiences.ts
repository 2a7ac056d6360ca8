import type { Problem } from '../errors.js';
import { locate, parseYamlSource } from '../playbook/index.js';
import type { LoadedPlaybook, YamlSource } from '../playbook/index.js';

type PathSegments = (string | number)[];
import { addressOf } from './address-of.js';
import { heldRoles, selectPeople } from './load-directory.js';
import type { Directory, Person } from './types.js';

/**
 * Checks a playbook against the people it would reach: every audience selects somebody, and
 * every message has a translation for each locale its audience's people use (a person whose
 * language has none would get the playbook's main locale).
 */
export function checkAudiences(playbook: LoadedPlaybook, directory: Directory): Problem[] {
  const source = parseYamlSource(playbook.source, playbook.file);
  const { definition } = playbook;
  const main = language(definition.locale ?? 'en');
  const problems: Problem[] = [];

  for (const [audienceId, audience] of Object.entries(definition.audiences)) {
    const people = selectPeople(directory, audience.select);
    if (people.length === 0) {
      problems.push({
        code: 'E_PLAYBOOK_EMPTY_AUDIENCE',
        message: `audience "${audienceId}" selects nobody in ${directory.file}; fix its select: or add the people to the directory`,
        location: locate(source, ['audiences', audienceId], 'key'),
      });
      continue;
    }

    const unreachable = people.filter((person) =>
      audience.channels.every((channel) => addressOf(person, channel) === undefined),
    );
    if (unreachable.length > 0) {
      problems.push({
        code: 'E_PLAYBOOK_UNREACHABLE_PEOPLE',
        message: `audience "${audienceId}" selects ${namesOf(unreachable)}, who ${unreachable.length === 1 ? 'has' : 'have'} no address for any of its channels (${audience.channels.join(', ')}); add a channel or the missing contact to the directory`,
        location: locate(source, ['audiences', audienceId, 'channels'], 'key'),
      });
    }
    const ack = definition.acknowledgement;
    if (
      ack?.audience === audienceId &&
      ack.mode === 'quorum' &&
      (ack.quorum ?? 1) > people.length
    ) {
      problems.push({
        code: 'E_PLAYBOOK_BAD_ACKNOWLEDGEMENT',
        message: `acknowledgement needs ${ack.quorum ?? 1} people from audience "${audienceId}", which has ${people.length}; lower the quorum or widen the audience`,
        location: locate(source, ['acknowledgement', 'quorum']),
      });
    }

    const used = [...new Set(Array.from(people, (person) => person.locale))];
    for (const [stageId, byAudience] of Object.entries(definition.messages)) {
      const message = byAudience[audienceId];
      if (!message) continue;
      const translated = Object.keys(message.locales ?? {});
      const missing = used.filter(
        (locale) =>
          language(locale) !== main &&
          !translated.includes(locale) &&
          !translated.includes(language(locale)),
      );
      if (missing.length === 0) continue;
      const list = missing.map((locale) => `"${locale}"`).join(', ');
      problems.push({
        code: 'E_PLAYBOOK_MISSING_TRANSLATION',
        message: `people of audience "${audienceId}" read ${list}, but this message has no translation for it; add ${missing.map((locale) => `locales.${language(locale)}`).join(', ')}`,
        location: locate(source, ['messages', stageId, audienceId], 'key'),
      });
    }
  }
  problems.push(...checkRoles(playbook, directory, source));

  playbook.stages.forEach((stage, index) => {
    if (!stage.approval) return;
    const roles = stage.approval.roles;
    const approvers = directory.people.filter((person) =>
      person.roles.some((role) => roles.includes(role)),
    );
    if (approvers.length >= stage.approval.quorum) return;
    problems.push({
      code: 'E_PLAYBOOK_NO_APPROVERS',
      message: `stage "${stage.id}" needs ${stage.approval.quorum} approval(s) from ${roles.map((role) => `"${role}"`).join(' or ')}, but ${directory.file} has ${approvers.length} such people; give the role to more people or lower the quorum`,
      location: locate(source, ['stages', index, 'approval'], 'key'),
    });
  });
  return problems;
}

/** Every role the playbook names is held by somebody; a typo would silently select nobody. */
function checkRoles(playbook: LoadedPlaybook, directory: Directory, source: YamlSource): Problem[] {
  const held = heldRoles(directory);
  const known = [...held]
    .sort()
    .map((role) => `"${role}"`)
    .join(', ');
  const { definition } = playbook;
  const places: [PathSegments, string[] | undefined][] = [
    ...Object.entries(definition.audiences).map(
      ([id, audience]): [PathSegments, string[] | undefined] => [
        ['audiences', id, 'select', 'roles'],
        audience.select.roles,
      ],
    ),
    ...definition.stages.map((stage, index): [PathSegments, string[] | undefined] => [
      ['stages', index, 'approval', 'roles'],
      stage.approval?.roles,
    ]),
    [['responsibilities', 'declare'], definition.responsibilities?.declare],
    [['responsibilities', 'communicate'], definition.responsibilities?.communicate],
  ];
  return places.flatMap(([path, roles]) =>
    (roles ?? []).flatMap((role, index): Problem[] =>
      held.has(role)
        ? []
        : [
            {
              code: 'E_PLAYBOOK_UNKNOWN_ROLE',
              message: `nobody in ${directory.file} has the role "${role}"; fix the name or give the role to someone (roles in use: ${known || 'none'})`,
              location: locate(source, [...path, index]),
            },
          ],
    ),
  );
}

function language(locale: string): string {
  return locale.split('-')[0] ?? locale;
}

/** Up to ten ids, then how many more: a large directory must not fill the screen. */
function namesOf(people: readonly Person[]): string {
  const shown = people.slice(0, NAMES_SHOWN).map((person) => `"${person.id}"`);
  const more = people.length - shown.length;
  return more > 0 ? `${shown.join(', ')} and ${more} more` : shown.join(', ');
}

const NAMES_SHOWN = 10;

export { buildMachine } from './build-machine.js';
export type {
  IncidentContext,
  IncidentEvent,
  IncidentMachine,
  IncidentTimer,
  StageDecision,
} from './build-machine.js';
export { createEngine, Engine, EXPANSION_FIRST_PART, EXPANSION_PART } from './engine.js';
export type { EngineDeps, StartIncidentRequest, TriggerOutcome } from './engine.js';
export { createDispatcher, Dispatcher } from './dispatcher.js';
export type { DispatcherOptions, FallbackReason } from './dispatcher.js';
export { RateLimits } from './rate-limits.js';
export type { ChannelLimit } from './rate-limits.js';
export { interpretReply } from './replies.js';
export type { ReplyIntent, ReplyOutcome } from './replies.js';

export { countSmsSegments } from './sms-segments.js';
export type { SmsSegments } from './sms-segments.js';
export { transliterateToGsm } from './transliterate.js';

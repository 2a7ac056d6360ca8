export { closingAfter, isWithin, nextOpening } from './windows.js';
export type { TimeWindow } from './windows.js';

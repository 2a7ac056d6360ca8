import { describe, expect, it } from 'vitest';

import { runCrashInjection } from './crash-injection.js';

// `npm test` runs a reduced form; `npm run test:crash` runs 50 kills and prints the counts.
const KILLS = Number(process.env.CRASH_KILLS ?? 5);
const SEED = Number(process.env.CRASH_SEED ?? 20261203);

describe('crash injection', () => {
  it(
    `loses and repeats no message across ${KILLS} SIGKILLs of the service`,
    async () => {
      const report = await runCrashInjection({
        recipients: 2_000,
        kills: KILLS,
        seed: SEED,
        maxLifeMs: 400,
      });
      console.log(`crash injection: ${JSON.stringify(report)}`);

      expect(report.problems).toEqual([]);
      expect(report.kills).toBe(KILLS);
      expect(report.decided).toBe(4_000);
      expect(report.duplicates).toBe(0);
      expect(report.accepted + report.unknown).toBe(4_000);
      expect(report.received).toBe(report.accepted + report.unknownReceived);
      expect(report.reportedUnknown).toBe(report.unknown);
      // Rows in flight at a kill are asked about at the next start (Twilio can be asked): found
      // ones are accepted, the others sent again; none is left unknown, and every recipient
      // got each page exactly once.
      expect(report.unknown).toBe(0);
      expect(report.received).toBe(4_000);
    },
    20 * 60_000,
  );
});

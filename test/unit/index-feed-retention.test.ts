import { describe, expect, it } from 'vitest';
import { createLogger } from '../../src/lib/logger.js';
import { IndexFeedRetention } from '../../src/services/index-feed-retention.js';

describe('IndexFeedRetention', () => {
  it('trims what is older than the retention, and a failed trim waits for the next run', async () => {
    const cuts: Date[] = [];
    let fail = false;
    const feed = {
      trim: async (before: Date) => {
        if (fail) throw new Error('connection refused');
        cuts.push(before);
        return 4;
      },
    };
    const retention = new IndexFeedRetention(feed, { retentionMs: 2 * 3_600_000 }, createLogger('silent'));
    const now = Date.parse('2026-12-07T12:00:00Z');
    expect(await retention.trimOnce(now)).toBe(4);
    expect(cuts.map((d) => d.toISOString())).toEqual(['2026-12-07T10:00:00.000Z']);
    fail = true;
    expect(await retention.trimOnce(now)).toBe(0);
  });
});

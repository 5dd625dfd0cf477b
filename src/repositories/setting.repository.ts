import type { DbClient } from './database.js';

/** Key-value facts about the installation (the Setting table); decides nothing. */
export class PrismaSettingRepository {
  constructor(private readonly db: DbClient) {}

  async get(key: string): Promise<string | null> {
    return (await this.db.setting.findUnique({ where: { key } }))?.value ?? null;
  }

  /**
   * Stores `value` unless the key is set already, and returns what is stored: two processes
   * starting at once on a new database agree on the first writer's value.
   */
  async setIfAbsent(key: string, value: string): Promise<string> {
    try {
      await this.db.setting.create({ data: { key, value } });
      return value;
    } catch (error) {
      const stored = await this.get(key);
      if (stored === null) throw error;
      return stored;
    }
  }

  async set(key: string, value: string): Promise<void> {
    await this.db.setting.upsert({ where: { key }, create: { key, value }, update: { value } });
  }
}

import { randomBytes } from 'node:crypto';
import { EventEmitter } from 'node:events';
import type { Redis } from 'ioredis';
import type { Logger } from '../logger.js';
import type { StatusListener, StatusRecord, StatusStore } from '../processing/status-store.js';
import { createKeyedSequence } from '../shared/keyed-sequence.js';

export type RedisStatusStoreOptions = Readonly<{
  /** Connection for commands; the store never closes it. */
  redis: Redis;
  /** Prefix of every key and of the event channel (default `tus:status:`). */
  prefix?: string;
  /** Attempts of one update against concurrent writers on other instances (default 100). */
  maxConflicts?: number;
  logger?: Logger;
}>;

/**
 * Compare-and-set: writes ARGV[3] only if the record is still what the caller read
 * (ARGV[1] = '1' and the same JSON in ARGV[2], or ARGV[1] = '0' and no record), then
 * publishes the change in the same step. 1 if written, 0 on a conflict.
 */
const COMPARE_AND_SET = `
local current = redis.call('GET', KEYS[1])
if ARGV[1] == '0' then
  if current then return 0 end
elseif current ~= ARGV[2] then
  return 0
end
redis.call('SET', KEYS[1], ARGV[3])
redis.call('PUBLISH', ARGV[4], ARGV[5])
return 1`;

type Event = { origin: string; record: StatusRecord };

/**
 * Status records in Redis (`<prefix><id>` holds the record's JSON), shared by every instance.
 *
 * - `update` is an optimistic read-modify-write: read, apply `change`, and write with a Lua
 *   compare-and-set; on a conflict (another instance wrote in between) it reads again and
 *   re-applies `change`, a bounded number of times. Updates of one id from this process are
 *   also chained, as in the file store, so they never conflict with each other.
 *   `change` may therefore run more than once per update: it must be a pure function of the
 *   record it gets (every caller's is).
 * - Subscribers hear about updates made on every instance: the compare-and-set publishes the
 *   new record on `<prefix>events`. Updates made in this process are delivered synchronously
 *   before `update` resolves (as with the file store); ones from other instances arrive
 *   through pub/sub shortly after. The subscriber connection (a `duplicate()` of `redis`) is
 *   opened on the first `subscribe` and ended by `close()`.
 */
export function createRedisStatusStore(options: RedisStatusStoreOptions): StatusStore & {
  /** Resolves once other instances' updates are being received (after the first subscribe). */
  subscribed(): Promise<void>;
  close(): Promise<void>;
} {
  const { redis, logger } = options;
  const prefix = options.prefix ?? 'tus:status:';
  const maxConflicts = options.maxConflicts ?? 100;
  const channel = `${prefix}events`;
  const origin = randomBytes(12).toString('hex');
  const events = new EventEmitter();
  events.setMaxListeners(0);
  /** Updates of one id from this process, one at a time (the compare-and-set settles the rest). */
  const sequence = createKeyedSequence();
  let subscriber: Redis | undefined;
  let subscribing: Promise<void> = Promise.resolve();
  const key = (id: string) => `${prefix}${id}`;

  async function get(id: string): Promise<StatusRecord | undefined> {
    const json = await redis.get(key(id));
    return json === null ? undefined : (JSON.parse(json) as StatusRecord);
  }

  const serialized = <T>(id: string, step: () => Promise<T>): Promise<T> => sequence.run(id, step);

  function update(id: string, change: (current: StatusRecord | undefined) => StatusRecord): Promise<StatusRecord> {
    return serialized(id, async () => {
      for (let attempt = 0; attempt < maxConflicts; attempt += 1) {
        const before = await redis.get(key(id));
        const record = change(before === null ? undefined : (JSON.parse(before) as StatusRecord));
        const event: Event = { origin, record };
        const written = await redis.eval(COMPARE_AND_SET, 1, key(id), before === null ? '0' : '1', before ?? '', JSON.stringify(record), channel, JSON.stringify(event));
        if (written === 1) {
          events.emit(id, record);
          return record;
        }
      }
      throw new Error(`status of ${id}: gave up after ${maxConflicts} conflicting concurrent updates`);
    });
  }

  function listen(): void {
    if (subscriber) return;
    const connection = redis.duplicate();
    subscriber = connection;
    connection.on('error', (error: unknown) => logger?.warn({ err: error }, 'status subscriber connection error'));
    connection.on('message', (_channel: string, message: string) => {
      try {
        const event = JSON.parse(message) as Event;
        if (event.origin !== origin) events.emit(event.record.id, event.record);
      } catch (error) {
        logger?.warn({ err: error }, 'unreadable status event');
      }
    });
    subscribing = connection.subscribe(channel).then(
      () => undefined,
      (error: unknown) => void logger?.error({ err: error }, 'could not subscribe to status events'),
    );
  }

  return {
    get,
    update,
    delete: (id: string) => serialized(id, async () => void (await redis.del(key(id)))),
    subscribe(id: string, listener: StatusListener): () => void {
      listen();
      events.on(id, listener);
      return () => events.off(id, listener);
    },
    subscribed: () => subscribing,
    async close(): Promise<void> {
      const connection = subscriber;
      subscriber = undefined;
      events.removeAllListeners();
      if (connection) await connection.quit().catch(() => connection.disconnect());
    },
  };
}

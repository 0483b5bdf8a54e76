import { describe } from 'vitest';
import { statusStoreContract } from '../processing/status-store.contract.js';
import { createRedisStatusStore } from './redis-status-store.js';
import { connections, deletePrefix, redisUrl, testPrefix } from './test-redis.js';

describe.skipIf(!redisUrl)('redis status store', () => {
  statusStoreContract(
    'redis',
    async () => {
      const conns = connections();
      const prefix = testPrefix('status');
      return {
        // A store on its own connection: one per simulated server instance.
        open: () => createRedisStatusStore({ redis: conns.connect(), prefix }),
        damage: async (id) => void (await conns.connect().set(`${prefix}${id}`, `{"id":"${id}",`)),
        async destroy() {
          await deletePrefix(conns.connect(), prefix);
          await conns.closeAll();
        },
      };
    },
    { sharedByInstances: true },
  );
});

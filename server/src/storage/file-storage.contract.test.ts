import fs from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { parseConfig } from '../config.js';
import { createStorage } from './index.js';
import { storageContract } from './storage.contract.js';

storageContract('file', async () => {
  const directory = await fs.mkdtemp(path.join(os.tmpdir(), 'tus-contract-'));
  const storage = await createStorage(parseConfig({ STORAGE: 'file', STORAGE_DIR: directory, UPLOAD_EXPIRY: '24h' }));
  return {
    storage,
    async leftovers(id) {
      const entries = await fs.readdir(directory);
      const tmp = await fs.readdir(path.join(directory, '.tmp')).catch(() => []);
      return [...entries, ...tmp].filter((name) => name.startsWith(id));
    },
    cleanup: () => fs.rm(directory, { recursive: true, force: true }),
  };
});

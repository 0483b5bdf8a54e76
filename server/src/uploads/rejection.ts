import type { StatusRecord, StatusStore } from '../processing/status-store.js';

/** Records an upload as rejected (a hook refused it or stopped it), keeping processor results so far. */
export function markRejected(statuses: StatusStore, id: string, error: string, extra: Pick<StatusRecord, 'stopped'> = {}): Promise<StatusRecord> {
  return statuses.update(id, (current) => ({
    id,
    processors: current?.processors ?? {},
    state: 'rejected',
    error,
    ...extra,
    updatedAt: new Date().toISOString(),
  }));
}

/** The workloads of issue 9 at full size, or small enough for a smoke run (--quick) or the bench's own test (--tiny). */
import { concurrentWorkload } from './workload-concurrent.js';
import { parallelWorkload } from './workload-parallel.js';
import { headOneWorkload, headSpreadWorkload } from './workload-head.js';
import { smallWorkload } from './workload-small.js';
import { chunkedChecksumWorkload, chunkedWorkload, memoryWorkload, singleWorkload } from './workload-throughput.js';
import { GiB, MiB } from './units.js';
import type { Workload, WorkloadName } from './workload-types.js';

export function createWorkloads(scale: 'full' | 'quick' | 'tiny'): Record<WorkloadName, Workload> {
  if (scale === 'tiny') {
    return {
      single: singleWorkload(8 * MiB),
      chunked: chunkedWorkload(8 * MiB, 1 * MiB),
      'chunked-checksum': chunkedChecksumWorkload(8 * MiB, 1 * MiB),
      parallel: parallelWorkload(8 * MiB, 4, 1 * MiB),
      concurrent: concurrentWorkload({ count: 4, size: 1 * MiB }, { count: 2, size: 1 * MiB }),
      small: smallWorkload(50, 16 * 1024, 8),
      'head-one': headOneWorkload(16, 100, 300),
      'head-spread': headSpreadWorkload(16, 100, 300),
      memory: memoryWorkload(16 * MiB),
    };
  }
  if (scale === 'quick') {
    return {
      single: singleWorkload(64 * MiB),
      chunked: chunkedWorkload(64 * MiB, 8 * MiB),
      'chunked-checksum': chunkedChecksumWorkload(64 * MiB, 8 * MiB),
      parallel: parallelWorkload(64 * MiB, 4, 8 * MiB),
      concurrent: concurrentWorkload({ count: 16, size: 4 * MiB }, { count: 4, size: 8 * MiB }),
      small: smallWorkload(200, 16 * 1024, 32),
      'head-one': headOneWorkload(64, 300, 1000),
      'head-spread': headSpreadWorkload(64, 300, 1000),
      memory: memoryWorkload(256 * MiB),
    };
  }
  return {
    single: singleWorkload(1 * GiB),
    chunked: chunkedWorkload(512 * MiB, 8 * MiB),
    'chunked-checksum': chunkedChecksumWorkload(512 * MiB, 8 * MiB),
    parallel: parallelWorkload(512 * MiB, 4, 8 * MiB),
    concurrent: concurrentWorkload({ count: 64, size: 16 * MiB }, { count: 16, size: 16 * MiB }),
    small: smallWorkload(2000, 16 * 1024, 32),
    'head-one': headOneWorkload(64, 1000, 5000),
    'head-spread': headSpreadWorkload(64, 1000, 5000),
    memory: memoryWorkload(2 * GiB),
  };
}

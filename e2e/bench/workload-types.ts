/** What a workload is to the benchmark: a timed run against one fresh server, and the figures it yields. */
import type { RunningServer, ServerRole, ServerSpec, StorageKind } from './bench-servers.js';

export const WORKLOAD_NAMES = ['single', 'chunked', 'chunked-checksum', 'parallel', 'concurrent', 'small', 'head-one', 'head-spread', 'memory'] as const;
export type WorkloadName = (typeof WORKLOAD_NAMES)[number];

/** Opens and closes the measured window: CPU, noise and RSS are read exactly around it. */
export interface Meter {
  begin(): void;
  end(): void;
}

export type RunContext = Readonly<{
  spec: ServerSpec;
  server: RunningServer;
  storageDir: string;
  signal: AbortSignal;
  meter: Meter;
  /** The stored size of an upload (its file, or its S3 object), undefined when there is none. */
  storedSize(uploadId: string): Promise<number | undefined>;
}>;

export type Outcome = Readonly<{
  /** The workload's own figures by metric key, e.g. { mibPerSec: 410, p99Ms: 2900 }. */
  metrics: Record<string, number | null>;
  /** What was done inside the window, for CPU per operation. */
  ops: number;
  /** Bytes (CPU per GiB) or requests (CPU per request). */
  opsUnit: 'bytes' | 'requests';
  detail?: Record<string, unknown>;
}>;

/**
 * A figure in the table. Besides a workload's own keys, every run has `vmHwmMiB` (the server
 * process's lifetime peak RSS), `cpuMsPerOp` (server CPU ms per request in the window), or
 * `cpuSecPerGiB` (per GiB, when the operations are bytes), and `lateRssGrowthMiB` (peak RSS in the window's last quarter minus its first).
 */
export type Metric = Readonly<{
  key: string;
  label: string;
  unit: string;
  higherIsBetter: boolean;
  digits: number;
  /** False for a figure near zero (a growth), whose ratios mean nothing: shown without them. */
  ratios?: boolean;
}>;

export interface Workload {
  readonly name: WorkloadName;
  /** What it does, for the table and the up-front plan. */
  readonly title: string;
  /** The title on S3, when the workload is shaped differently there. */
  readonly s3Title?: string;
  readonly storages: readonly StorageKind[];
  /** The servers it applies to, when not all (a protocol extension the reference lacks). */
  readonly roles?: readonly ServerRole[];
  readonly metrics: readonly Metric[];
  /** Rough seconds of work in one run, for the up-front estimate. */
  readonly estimateSec: number;
  /** Most bytes one run stores, for the free-space check. */
  readonly diskBytes: number;
  run(ctx: RunContext): Promise<Outcome>;
}

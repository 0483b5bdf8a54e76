/**
 * Medians per workload and figure: ours (A), the reference (B), ours ÷ reference, the ceiling
 * (C), ours ÷ ceiling, and the reference against itself (B' ÷ B), which says how far a ratio
 * moves by chance in this run.
 */
import type { StorageKind } from './bench-servers.js';
import type { Run } from './measured-run.js';
import { median, round2 } from './units.js';
import type { Workload } from './workload-types.js';

export type SummaryRow = {
  workload: Workload['name'];
  storage: StorageKind;
  title: string;
  metric: string;
  label: string;
  higherIsBetter: boolean;
  digits: number;
  ours: number | null;
  reference: number | null;
  oursVsReference: number | null;
  ceiling: number | null;
  oursVsCeiling: number | null;
  /** B' ÷ B: the reference measured twice per round, against itself. */
  referenceNoise: number | null;
  runs: { ours: number; reference: number; ceiling: number };
};

export type Noise = { rows: number; min: number; max: number; worst: number } | null;

function medianOf(runs: readonly Run[], key: string): number | null {
  const values = runs.map((r) => r.metrics[key]).filter((v): v is number => typeof v === 'number' && Number.isFinite(v));
  return values.length ? median(values) : null;
}

const ratio = (a: number | null, b: number | null) => (a === null || b === null || b === 0 ? null : round2(a / b));

/** Rows for this server (A), then for each --extra variant of it, in the place of ours. */
export function summarize(runs: readonly Run[], workloads: readonly Workload[], storages: readonly StorageKind[]): SummaryRow[] {
  const rows: SummaryRow[] = [];
  const variants = [...new Set(runs.filter((r) => r.role === 'X').map((r) => r.server))];
  for (const storage of storages) {
    for (const [ourName, workload] of [undefined, ...variants].flatMap((v) => workloads.map((w) => [v, w] as const))) {
      const of = (role: string) => runs.filter((r) => r.workload === workload.name && r.storage === storage && r.role === role);
      const [b, b2, c] = [of('B'), of("B'"), of('C')];
      const a = ourName === undefined ? of('A') : of('X').filter((r) => r.server === ourName);
      if (ourName !== undefined && a.length === 0) continue;
      if (a.length + b.length + c.length === 0) continue;
      for (const metric of workload.metrics) {
        const ours = medianOf(a, metric.key);
        const reference = medianOf(b, metric.key);
        const ceiling = medianOf(c, metric.key);
        const ratioOf = metric.ratios === false ? () => null : ratio;
        rows.push({
          workload: workload.name,
          storage,
          title: `${storage === 's3' ? (workload.s3Title ?? workload.title) : workload.title}${ourName === undefined ? '' : ` [${ourName}]`}`,
          metric: metric.key,
          label: metric.label,
          higherIsBetter: metric.higherIsBetter,
          digits: metric.digits,
          ours,
          reference,
          oursVsReference: ratioOf(ours, reference),
          ceiling,
          oursVsCeiling: ratioOf(ours, ceiling),
          referenceNoise: ratioOf(medianOf(b2, metric.key), reference),
          runs: { ours: a.length, reference: b.length, ceiling: c.length },
        });
      }
    }
  }
  return rows;
}

/** The spread of B' ÷ B over the rows: how much a ratio in this run can move by chance. */
export function noiseOf(rows: readonly SummaryRow[]): Noise {
  const values = rows.map((r) => r.referenceNoise).filter((v): v is number => v !== null);
  if (!values.length) return null;
  const worst = values.reduce((w, v) => (Math.abs(v - 1) > Math.abs(w - 1) ? v : w));
  return { rows: values.length, min: Math.min(...values), max: Math.max(...values), worst };
}

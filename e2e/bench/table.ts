/** Prints the summary as one Markdown table (readable in a terminal, pasteable into the README). */
import type { Noise, SummaryRow } from './summary.js';

function cell(value: number | null, digits: number): string {
  if (value === null) return '–';
  return value.toLocaleString('en-US', { minimumFractionDigits: digits, maximumFractionDigits: digits });
}

const ratioCell = (value: number | null) => (value === null ? '–' : value.toFixed(2));

export function markdownTable(rows: readonly SummaryRow[]): string {
  const header = ['workload', 'figure', 'ours', 'reference', 'ours ÷ reference', 'ceiling', 'ours ÷ ceiling', "B' ÷ B"];
  const lines = [header, header.map((h, i) => (i < 2 ? '---' : '---:'))];
  for (const r of rows) {
    lines.push([
      `${r.title}${r.storage === 's3' ? ' (S3)' : ''}`,
      `${r.label} (${r.higherIsBetter ? 'higher' : 'lower'} is better)`,
      cell(r.ours, r.digits),
      cell(r.reference, r.digits),
      ratioCell(r.oursVsReference),
      cell(r.ceiling, r.digits),
      ratioCell(r.oursVsCeiling),
      ratioCell(r.referenceNoise),
    ]);
  }
  const widths = header.map((_, i) => Math.max(...lines.map((l) => l[i]!.length)));
  return lines
    .map((l, li) => `| ${l.map((c, i) => (li === 1 ? (i < 2 ? '-'.repeat(widths[i]!) : `${'-'.repeat(widths[i]! - 1)}:`) : i < 2 ? c.padEnd(widths[i]!) : c.padStart(widths[i]!))).join(' | ')} |`)
    .join('\n');
}

export function noiseLine(noise: Noise): string {
  if (!noise) return "noise: no B' runs (the reference against itself) in this run";
  return (
    `noise: the reference against itself (B' ÷ B, ${noise.rows} figures) read ${noise.min.toFixed(2)}–${noise.max.toFixed(2)}; ` +
    `a ratio within ±${Math.abs(noise.worst - 1).toFixed(2)} of another is not a difference in this run`
  );
}

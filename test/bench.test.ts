/**
 * Smoke test of the benchmark (bench/run.ts) at its tiny scale: it must run to the end, clean
 * up, and report every figure. Figures themselves are not asserted beyond being plausible:
 * this file runs in parallel with the others, so throughput is noisy here.
 * (Needs the built CLI: npm test builds first.)
 */
import { spawn } from 'node:child_process';
import { existsSync, mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { dirname, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { afterAll, describe, expect, it } from 'vitest';

const ROOT = resolve(dirname(fileURLToPath(import.meta.url)), '..');
const TSX_CLI = join(ROOT, 'node_modules/tsx/dist/cli.mjs');
const dir = mkdtempSync(join(tmpdir(), 'prm-bench-test-'));

afterAll(() => {
  rmSync(dir, { recursive: true, force: true });
});

interface Report {
  scale: { name: string };
  figures: { id: string; label: string; none: unknown; diy: unknown; mirror: unknown }[];
  targets: { target: string }[];
}

function runBench(jsonOut: string): Promise<{ code: number | null; stdout: string; stderr: string }> {
  return new Promise((resolvePromise, reject) => {
    const child = spawn(process.execPath, [TSX_CLI, 'bench/run.ts', '--no-write', '--json-out', jsonOut], {
      cwd: ROOT,
      env: { ...process.env, BENCH_SCALE: 'small' },
      stdio: ['ignore', 'pipe', 'pipe'],
    });
    let stdout = '';
    let stderr = '';
    child.stdout.setEncoding('utf8').on('data', (chunk: string) => (stdout += chunk));
    child.stderr.setEncoding('utf8').on('data', (chunk: string) => (stderr += chunk));
    // SIGINT lets the benchmark clean up its scratch database, keys and children.
    const timer = setTimeout(() => child.kill('SIGINT'), 110_000);
    child.on('error', reject);
    child.on('close', (code) => {
      clearTimeout(timer);
      resolvePromise({ code, stdout, stderr });
    });
  });
}

describe('npm run bench (BENCH_SCALE=small)', () => {
  it('runs to the end and reports every figure', { timeout: 120_000 }, async () => {
    expect(existsSync(TSX_CLI)).toBe(true);
    const jsonOut = join(dir, 'report.json');
    const result = await runBench(jsonOut);
    expect(result.code, `stdout:\n${result.stdout}\nstderr:\n${result.stderr}`).toBe(0);

    const report = JSON.parse(readFileSync(jsonOut, 'utf8')) as Report;
    expect(report.scale.name).toBe('small');
    const byId = new Map(report.figures.map((f) => [f.id, f]));
    for (const id of [
      'write_update_tps',
      'write_insert_tps',
      'bulk_statement_ms',
      'bulk_all_in_redis_ms',
      'bulk_all_matched',
      'latency_p50_ms',
      'latency_p99_ms',
      'copy_rows_per_s',
      'copy_rss_mb',
      'catchup_seconds',
      'catchup_rss_mb',
      'big_row_insert',
      'changes_while_down',
      'redis_benchmark_set',
      'redis_benchmark_hset',
    ]) {
      expect(byId.has(id), `figure ${id}`).toBe(true);
    }
    for (const id of ['write_update_tps', 'write_insert_tps']) {
      for (const config of ['none', 'diy', 'mirror'] as const) {
        const value = byId.get(id)![config];
        expect(typeof value === 'number' && value > 0, `${id} ${config} = ${String(value)}`).toBe(true);
      }
    }
    // The event counter saw every key's new value arrive, for both listeners.
    for (const config of ['diy', 'mirror'] as const) {
      const value = byId.get('bulk_all_in_redis_ms')![config];
      expect(typeof value === 'number' && value > 0, `bulk_all_in_redis_ms ${config} = ${String(value)}`).toBe(true);
    }
    // Correctness facts do not depend on load.
    expect(byId.get('bulk_all_matched')!.mirror).toBe('yes');
    expect(byId.get('bulk_all_matched')!.diy).toBe('yes');
    expect(String(byId.get('big_row_insert')!.diy)).toMatch(/payload string too long/);
    expect(byId.get('big_row_insert')!.mirror).toBe('ok, in Redis');
    expect(byId.get('changes_while_down')!.diy).toBe('0 / 100');

    // The printed table names the figures too.
    for (const label of ['write: single-row UPDATE', 'bulk:', 'latency:', 'copy:', 'catch-up:', 'reference: redis-benchmark']) {
      expect(result.stdout).toContain(label);
    }
  });
});

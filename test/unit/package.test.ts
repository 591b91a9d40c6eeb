import { readFileSync } from 'node:fs';
import { expect, it } from 'vitest';

it('exports the library API from the package entry point that package.json names', async () => {
  const pkg = JSON.parse(readFileSync(new URL('../../package.json', import.meta.url), 'utf8')) as { main: string };
  const api = (await import(new URL(`../../${pkg.main}`, import.meta.url).href)) as Record<string, unknown>;
  for (const name of ['install', 'uninstall', 'MirrorDaemon', 'syncTables', 'verifyMirror', 'loadConfig']) expect(typeof api[name]).toBe('function');
});

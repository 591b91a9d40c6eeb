// ad-hoc: time from COMMIT of a 100k-row UPDATE until the journal is empty (daemon must be running)
import pg from 'pg';
const c = new pg.Client({ connectionString: 'postgres://postgres@127.0.0.1/prm_b' });
await c.connect();
for (let round = 0; round < 3; round++) {
  const t0 = performance.now();
  await c.query('UPDATE items SET v = v + 1');
  const t1 = performance.now();
  for (;;) {
    const r = await c.query('SELECT NOT EXISTS (SELECT 1 FROM redis_mirror.journal) AS e');
    if (r.rows[0].e) break;
    await new Promise((res) => setTimeout(res, 2));
  }
  const t2 = performance.now();
  console.log(`statement ${(t1 - t0).toFixed(0)} ms, commit->drained ${(t2 - t1).toFixed(0)} ms`);
  await new Promise((res) => setTimeout(res, 300));
}
await c.end();

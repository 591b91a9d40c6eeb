import pg from 'pg';
const c = new pg.Client({ connectionString: 'postgres://postgres@127.0.0.1/prm_b' });
await c.connect();
const r = await c.query({ text: 'BEGIN; SELECT 1 AS a; SELECT 2 AS b, 3 AS c', rowMode: 'array' });
console.log(Array.isArray(r), r.length, JSON.stringify(r.map((x) => x.rows)));
await c.query('COMMIT');
await c.end();

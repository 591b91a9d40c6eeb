# A/B of daemon variants under pgbench (UPDATE), interleaved; args: build labels; reads BUSY values
declare -A res
export DATABASE_URL=postgres://postgres@127.0.0.1/prm_b
for r in 1 2 3; do for v in "$@"; do
  sed -i "s/^const BUSY_POLL_MS = [0-9]*;/const BUSY_POLL_MS = $v;/" src/daemon/daemon.ts; npx tsc -p tsconfig.build.json >/dev/null 2>&1
  node bin/pg-redis-mirror.js listen --prefix b: --log-level warn & P=$!; sleep 1
  t=$(pgbench -h 127.0.0.1 -U postgres -n -M prepared -c 4 -j 2 -T 5 -f /tmp/upd.sql prm_b 2>&1 | grep "^tps" | awk '{print int($3)}')
  kill $P; wait $P 2>/dev/null
  res[$v]="${res[$v]} $t"
done; done
for v in "$@"; do echo "BUSY_POLL_MS=$v: ${res[$v]} median $(echo ${res[$v]} | tr ' ' '\n' | sort -n | sed -n 2p)"; done
sed -i "s/^const BUSY_POLL_MS = [0-9]*;/const BUSY_POLL_MS = 10;/" src/daemon/daemon.ts; npx tsc -p tsconfig.build.json >/dev/null 2>&1

# usage: ab.sh variant.sql ... ; runs each variant 3 times interleaved, prints median TPS
declare -A res
for r in 1 2 3; do for v in "$@"; do
  if [ "$v" = none ]; then psql -h 127.0.0.1 -U postgres -d prm_b -qc "ALTER TABLE items DISABLE TRIGGER USER"; else psql -h 127.0.0.1 -U postgres -d prm_b -qc "ALTER TABLE items ENABLE TRIGGER USER"; psql -h 127.0.0.1 -U postgres -d prm_b -q -f $v; fi
  t=$(pgbench -h 127.0.0.1 -U postgres -n -M prepared -c 4 -j 2 -T 5 -f /tmp/upd.sql prm_b 2>&1 | grep "^tps" | awk '{print int($3)}')
  psql -h 127.0.0.1 -U postgres -d prm_b -qc "truncate redis_mirror.journal"
  res[$v]="${res[$v]} $t"
done; done
for v in "$@"; do echo "$v: ${res[$v]} median $(echo ${res[$v]} | tr ' ' '\n' | sort -n | sed -n 2p)"; done
psql -h 127.0.0.1 -U postgres -d prm_b -qc "ALTER TABLE items ENABLE TRIGGER USER"

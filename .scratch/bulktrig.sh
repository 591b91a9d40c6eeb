for i in 1 2 3; do psql -h 127.0.0.1 -U postgres -d prm_b -c "\timing on" -c "UPDATE items SET v = v + 1" | grep Time; psql -h 127.0.0.1 -U postgres -d prm_b -qc "truncate redis_mirror.journal"; done

import type { TablePlan } from './table-plan.js';
import { keyArgsSql } from './framed-call.js';
import { bulkStringSql, framedHashSql } from './framed-hash.js';
import { bulkString } from '../redis/encoded-command.js';
import type { ReplyChecks } from '../redis/pipe.js';
import { quoteLiteral } from '../sql/quote.js';
import { concatTextSql } from '../sql/concat.js';

/**
 * SQL that frames each key's write as plain Redis commands, for a pipe (redis/pipe.ts) rather
 * than a script call; used by copies (pipelined) and by the daemon (inside MULTI ... EXEC).
 * Per key of a hash table: HSET of its fields, HDEL of the fields of its NULL columns (if
 * any), HLEN, and the TTL command; DEL for a row with no fields (or none at all). Per key of a
 * json table: SET and the TTL command, or DEL.
 *
 * HSET overwrites in place, which is cheaper for Redis than replacing the key; HDEL removes
 * what a column that became NULL left. The key then holds exactly the row, unless it held a
 * field of no mirrored column (the table's columns changed) or was of another type: the HLEN
 * reply shows both (a count other than the row's fields, or an error), and the caller writes
 * those keys again, whole.
 *
 * Each key's commands are described by one entry of a comma-separated layout, which tells
 * where its HLEN reply is and what it must be (see parseLayout): 'd' (DEL), 's' (SET and TTL),
 * 'N' (HSET, HLEN = N, TTL), 'N+' (HSET, HDEL, HLEN = N, TTL).
 */

/** How writes treat TTLs: set this one, remove any, or leave a key's TTL as it is (null). */
export type TtlMode = number | 'persist' | null;

export interface KeyCommandsSql {
  /** Select-list items over the table `t`: the values, each read once. */
  inner: string;
  /** Select-list items over a query of `inner` aliased `v`, among them the framed key `kf`. */
  mid: string;
  /** Over a query of `mid` aliased `x`: the key's commands, and its layout entry. */
  commands: string;
  entry: string;
  /** TTL commands after each 's' or 'N' entry's HLEN (or SET). */
  ttlCommands: number;
}

const DEL = '*2\r\n$3\r\nDEL\r\n';

export function keyCommandsSql(plan: TablePlan, keyTexts: readonly string[], utf8Server: boolean, ttl: TtlMode): KeyCommandsSql {
  const inner = keyArgsSql(plan, keyTexts, utf8Server).inner;
  const kf = `${bulkStringSql('v.k', utf8Server)} AS kf`;
  const lit = quoteLiteral;
  const ttlCommand =
    ttl === null ? [] : ttl === 'persist' ? [lit('*2\r\n$7\r\nPERSIST\r\n'), 'x.kf'] : [lit('*3\r\n$6\r\nEXPIRE\r\n'), 'x.kf', lit(bulkString(String(ttl)))];
  const del = `${lit(DEL)} || x.kf`;
  if (plan.format === 'json') {
    // SET drops any TTL itself: only a TTL to set needs a command.
    const ttlAfterSet = typeof ttl === 'number' ? ttlCommand : [];
    return {
      inner,
      mid: `${kf}, v.found, ${bulkStringSql('v.j', utf8Server)} AS f`,
      commands: `CASE WHEN x.found THEN ${concatTextSql([lit('*3\r\n$3\r\nSET\r\n'), 'x.kf', 'x.f', ...ttlAfterSet])} ELSE ${del} END`,
      entry: `CASE WHEN x.found THEN 's' ELSE 'd' END`,
      ttlCommands: ttlCommandsPerKey('json', ttl),
    };
  }
  const hash = framedHashSql(plan.columns, utf8Server, plan.columnTypeOids);
  const all = plan.columns.length;
  // The names of the NULL columns, framed: NULL when there are none (then no HDEL is sent).
  const nulls = concatTextSql(plan.columns.map((c, i) => `CASE WHEN v.v${i} IS NULL THEN ${lit(bulkString(c))} ELSE '' END`));
  const hdel = concatTextSql([lit('*'), `(${2 + all} - x.n)::pg_catalog.text`, lit('\r\n$4\r\nHDEL\r\n'), 'x.kf', 'x.d']);
  const write = concatTextSql([
    lit('*'),
    '(2 + 2 * x.n)::pg_catalog.text',
    lit('\r\n$4\r\nHSET\r\n'),
    'x.kf',
    'x.f',
    `COALESCE(${hdel}, '')`,
    lit('*2\r\n$4\r\nHLEN\r\n'),
    'x.kf',
    ...ttlCommand,
  ]);
  return {
    inner,
    mid: `${kf}, ${hash.count} AS n, ${hash.framed} AS f, CASE WHEN ${hash.count} < ${all} THEN ${nulls} END AS d`,
    // A row without fields has no key: Redis holds no empty hash.
    commands: `CASE WHEN x.n = 0 THEN ${del} ELSE ${write} END`,
    entry: `CASE WHEN x.n = 0 THEN 'd' WHEN x.d IS NULL THEN x.n::pg_catalog.text ELSE x.n::pg_catalog.text || '+' END`,
    ttlCommands: ttlCommandsPerKey('hash', ttl),
  };
}

/** TTL commands after each written key (see KeyCommandsSql): SET drops any TTL by itself. */
export function ttlCommandsPerKey(format: TablePlan['format'], ttl: TtlMode): number {
  if (ttl === null) return 0;
  return format === 'json' && ttl === 'persist' ? 0 : 1;
}

/** The commands of a layout (see KeyCommandsSql), and the HLEN replies to check. */
export interface CommandLayout {
  keys: number;
  commands: number;
  checks: ReplyChecks;
}

const COMMA = 44;
const PLUS = 43;
const D = 100;
const S = 115;

/** Reads a layout of `keys` entries whose 's' and 'N' entries have `ttlCommands` after them. */
export function parseLayout(text: string, keys: number, ttlCommands: number): CommandLayout {
  const at = new Int32Array(keys);
  const expected = new Int32Array(keys);
  let checks = 0;
  let commands = 0;
  let value = 0;
  let kind = 0;
  const entry = (): void => {
    if (kind === D) {
      commands += 1;
    } else if (kind === S) {
      commands += 1 + ttlCommands;
    } else {
      const hdel = kind === PLUS ? 1 : 0;
      at[checks] = commands + 1 + hdel;
      expected[checks++] = value;
      commands += 2 + hdel + ttlCommands;
    }
    value = 0;
    kind = 0;
  };
  for (let i = 0; i < text.length; i++) {
    const c = text.charCodeAt(i);
    if (c === COMMA) entry();
    else if (c === D || c === S || c === PLUS) kind = c;
    else value = value * 10 + (c - 48);
  }
  if (text.length > 0) entry();
  return { keys, commands, checks: { at: at.subarray(0, checks), expected: expected.subarray(0, checks) } };
}

/** The layout's checks for its commands sent after `offset` other commands. */
export function shiftChecks(checks: ReplyChecks, offset: number): ReplyChecks {
  return { at: checks.at.map((a) => a + offset), expected: checks.expected };
}

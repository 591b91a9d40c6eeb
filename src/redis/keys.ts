import { UserError } from '../errors.js';
import { quoteLiteral } from '../sql/quote.js';
import { concatTextSql } from '../sql/concat.js';

/**
 * Redis key layout of one table: `<prefix><schema>.<table>:<k1>[:<k2>...]` by default, or
 * `<prefix>` + a template such as `user:{id}`. Key values are escaped (`\` and `:` get a
 * backslash) so a `:` inside a value can never make two rows share a key; schema and table
 * names also escape `.`.
 */
export interface KeyLayout {
  /** Key for the key column values, in key column order. */
  build(values: readonly string[]): string;
  /**
   * A SQL text expression that builds the same key as build() from SQL text expressions of the
   * key column values (PostgreSQL frames whole script calls, see apply-statement). `plain[i]`:
   * value i never holds `:` or `\` (an integer, a uuid), so it needs no escaping.
   */
  sql(values: readonly string[], plain?: readonly boolean[]): string;
  /** SCAN MATCH pattern that covers every key of the table. */
  readonly pattern: string;
  /** Key column values of a key under this layout, or null when it is not one of its keys. */
  parse(key: string): string[] | null;
}

export interface KeyLayoutSpec {
  prefix: string;
  schema: string;
  name: string;
  keyColumns: readonly string[];
  keyTemplate?: string | null;
}

export function escapeKeyValue(value: string): string {
  return value.replace(/[\\:]/g, (c) => `\\${c}`);
}

/** escapeKeyValue in SQL, for a SQL text expression. */
function escapeKeyValueSql(value: string): string {
  return `pg_catalog.replace(pg_catalog.replace(${value}, '\\', '\\\\'), ':', '\\:')`;
}

export function escapeKeyName(name: string): string {
  return name.replace(/[\\:.]/g, (c) => `\\${c}`);
}

export function escapeGlob(text: string): string {
  return text.replace(/[*?[\]\\]/g, (c) => `\\${c}`);
}

export function tableKeyPrefix(prefix: string, schema: string, name: string): string {
  return `${prefix}${escapeKeyName(schema)}.${escapeKeyName(name)}:`;
}

/**
 * The change stream of a table (its `stream` option): `<prefix>changes:<schema>.<table>`, names
 * escaped as in keys. A default-layout key has `.` where this has its first `:`, so no row key
 * of any table is a stream; a key template that begins with the literal `changes:` could
 * collide, which is why `<prefix>changes:` is reserved (README).
 */
export function changeStreamKey(prefix: string, schema: string, name: string): string {
  return `${prefix}changes:${escapeKeyName(schema)}.${escapeKeyName(name)}`;
}

const STREAM_TAIL = /^(?:[^\\:.]|\\.)+\.(?:[^\\:.]|\\.)+$/;

/**
 * A key the table pattern under `prefix` matched that is a change stream (of this or another
 * table), not a row: a broad key template (`{id}`) matches the streams too, and TRUNCATE or
 * verify must not delete them.
 */
export function isChangeStreamKey(prefix: string, key: string): boolean {
  const head = `${prefix}changes:`;
  return key.startsWith(head) && STREAM_TAIL.test(key.slice(head.length));
}

type Segment = { literal: string } | { column: number };

export function keyLayout(spec: KeyLayoutSpec): KeyLayout {
  if (spec.keyTemplate === undefined || spec.keyTemplate === null) {
    const head = tableKeyPrefix(spec.prefix, spec.schema, spec.name);
    return {
      build: (values) => head + values.map(escapeKeyValue).join(':'),
      sql: (values, plain = []) =>
        concatTextSql([quoteLiteral(head), ...values.map((v, i) => (plain[i] === true ? v : escapeKeyValueSql(v))).flatMap((v, i) => (i === 0 ? [v] : [`':'`, v]))]),
      pattern: `${escapeGlob(head)}*`,
      parse(key) {
        if (!key.startsWith(head)) return null;
        const values = splitEscaped(key.slice(head.length));
        return values !== null && values.length === spec.keyColumns.length ? values : null;
      },
    };
  }
  const segments = parseKeyTemplate(spec.keyTemplate, spec.keyColumns);
  const prefix = spec.prefix;
  return {
    build(values) {
      let key = prefix;
      for (const s of segments) key += 'literal' in s ? s.literal : escapeKeyValue(values[s.column] ?? '');
      return key;
    },
    sql: (values, plain = []) =>
      concatTextSql([
        quoteLiteral(prefix),
        ...segments.map((s) => ('literal' in s ? quoteLiteral(s.literal) : plain[s.column] === true ? values[s.column]! : escapeKeyValueSql(values[s.column] ?? "''"))),
      ]),
    pattern: escapeGlob(prefix) + segments.map((s) => ('literal' in s ? escapeGlob(s.literal) : '*')).join(''),
    parse(key) {
      if (!key.startsWith(prefix)) return null;
      const values: string[] = [];
      let rest = key.slice(prefix.length);
      for (const segment of segments) {
        if ('literal' in segment) {
          if (!rest.startsWith(segment.literal)) return null;
          rest = rest.slice(segment.literal.length);
          continue;
        }
        // A value runs to the first unescaped ':' (or the end); escaped characters are its own.
        let value = '';
        let i = 0;
        while (i < rest.length && rest[i] !== ':') {
          if (rest[i] === '\\') i++;
          if (i >= rest.length) return null;
          value += rest[i];
          i++;
        }
        const nextLiteral = segments[segments.indexOf(segment) + 1];
        if (nextLiteral !== undefined && 'literal' in nextLiteral && !nextLiteral.literal.startsWith(':')) {
          // The separator has text before its ':', which the scan above took as value.
          const head = nextLiteral.literal.slice(0, nextLiteral.literal.indexOf(':'));
          if (!value.endsWith(head)) return null;
          value = value.slice(0, value.length - head.length);
          i -= head.length;
        }
        values[segment.column] = value;
        rest = rest.slice(i);
      }
      return rest === '' && values.length === spec.keyColumns.length ? values : null;
    },
  };
}

/** Splits at unescaped ':' and removes the escapes; null for a dangling backslash. */
function splitEscaped(text: string): string[] | null {
  const parts: string[] = [];
  let part = '';
  for (let i = 0; i < text.length; i++) {
    const c = text[i]!;
    if (c === '\\') {
      i++;
      if (i >= text.length) return null;
      part += text[i];
    } else if (c === ':') {
      parts.push(part);
      part = '';
    } else {
      part += c;
    }
  }
  parts.push(part);
  return parts;
}

/** `user:{id}:{region}` → segments; every key column exactly once, nothing else. */
export function parseKeyTemplate(template: string, keyColumns: readonly string[]): Segment[] {
  const segments: Segment[] = [];
  const used = new Set<number>();
  let rest = template;
  while (rest.length > 0) {
    const open = rest.indexOf('{');
    if (open === -1) {
      segments.push({ literal: rest });
      break;
    }
    if (open > 0) segments.push({ literal: rest.slice(0, open) });
    const close = rest.indexOf('}', open);
    if (close === -1) throw new UserError(`keyTemplate "${template}": "{" without a closing "}"`);
    const column = rest.slice(open + 1, close);
    const index = keyColumns.indexOf(column);
    if (index === -1) {
      throw new UserError(`keyTemplate "${template}": {${column}} is not a key column; use the key columns ${keyColumns.map((c) => `{${c}}`).join(', ')}`);
    }
    if (used.has(index)) throw new UserError(`keyTemplate "${template}": {${column}} appears twice`);
    used.add(index);
    segments.push({ column: index });
    rest = rest.slice(close + 1);
  }
  const missing = keyColumns.filter((_, i) => !used.has(i));
  if (missing.length > 0) {
    throw new UserError(`keyTemplate "${template}" must contain every key column; add ${missing.map((c) => `{${c}}`).join(', ')}`);
  }
  // Values escape only `:`, so a separator without one could let two rows share a key.
  let previousWasColumn = false;
  let separator = '';
  for (const segment of segments) {
    if ('column' in segment) {
      if (previousWasColumn && !separator.includes(':')) {
        throw new UserError(`keyTemplate "${template}": separate {…} placeholders with a ":" so keys cannot collide`);
      }
      previousWasColumn = true;
      separator = '';
    } else {
      separator += segment.literal;
    }
  }
  return segments;
}

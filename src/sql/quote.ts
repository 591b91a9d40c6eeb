/**
 * Quoting for SQL text that is rendered rather than parameterised (DDL, which cannot take
 * bind parameters, and the script `sql install` prints for review).
 * Identifiers are always quoted so names with capitals, spaces, quotes or unicode keep their
 * exact spelling and can never be read as SQL.
 */

export function quoteIdent(name: string): string {
  assertNoNul(name, 'identifier');
  return `"${name.replace(/"/g, '""')}"`;
}

export function quoteQualified(schema: string, name: string): string {
  return `${quoteIdent(schema)}.${quoteIdent(name)}`;
}

/** A standard-conforming string literal; the rendered scripts set standard_conforming_strings on. */
export function quoteLiteral(value: string): string {
  assertNoNul(value, 'string');
  return `'${value.replace(/'/g, "''")}'`;
}

/** A dollar-quote tag that does not occur in `body`, so the body cannot end the quote early. */
export function dollarTag(body: string): string {
  for (let i = 0; ; i++) {
    const tag = i === 0 ? '$body$' : `$body${i}$`;
    if (!body.includes(tag)) return tag;
  }
}

function assertNoNul(value: string, what: string): void {
  if (value.includes('\u0000')) throw new Error(`a SQL ${what} cannot contain a NUL character`);
}

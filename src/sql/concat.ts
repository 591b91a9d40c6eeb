/**
 * SQL that joins text expressions with `||`, as a balanced tree: (a || b) || (c || d).
 *
 * concat() looks up and calls the output function of each argument on every row, then
 * copies its text; for the many short pieces of a framed row that was most of the framing's
 * cost (1M rows framed as the copy's commands: 1.25 s with concat(), 0.70 s with `||`).
 * `||` on texts is one call that copies both sides. Balanced, so that a row of many pieces is
 * copied log(n) times rather than once per piece, and the expression stays shallow for the
 * planner (a chain of 1,600 columns would nest 1,600 deep).
 *
 * `||` yields NULL if any piece is NULL, where concat() skipped it: each piece must be
 * non-NULL, or wrapped in coalesce(..., '') by the caller.
 */
export function concatTextSql(parts: readonly string[]): string {
  if (parts.length === 0) return `''`;
  if (parts.length === 1) return parts[0]!;
  const middle = Math.ceil(parts.length / 2);
  return `(${concatTextSql(parts.slice(0, middle))} || ${concatTextSql(parts.slice(middle))})`;
}

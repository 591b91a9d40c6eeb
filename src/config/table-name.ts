import { UserError } from '../errors.js';

export interface TableName {
  schema: string;
  name: string;
}

/**
 * Parses `schema.table`, `table` (schema public) or the double-quoted forms
 * (`"my schema"."my.table"`, `""` for a quote inside). Names are taken exactly as written:
 * no case folding, so `Users` and `users` are different tables.
 */
export function parseTableName(text: string): TableName {
  const parts: string[] = [];
  let i = 0;
  while (i <= text.length) {
    let part = '';
    if (text[i] === '"') {
      i++;
      for (;;) {
        if (i >= text.length) throw new UserError(`table name ${text}: unterminated double quote`);
        if (text[i] === '"') {
          if (text[i + 1] === '"') {
            part += '"';
            i += 2;
            continue;
          }
          i++;
          break;
        }
        part += text[i];
        i++;
      }
      if (i < text.length && text[i] !== '.') {
        throw new UserError(`table name ${text}: expected "." after a quoted name`);
      }
    } else {
      const dot = text.indexOf('.', i);
      const end = dot === -1 ? text.length : dot;
      part = text.slice(i, end);
      i = end;
    }
    if (part === '') throw new UserError(`table name "${text}" is empty or has an empty part; write schema.table`);
    parts.push(part);
    i++; // skip the dot (or step past the end)
  }
  if (parts.length === 1) return { schema: 'public', name: parts[0]! };
  if (parts.length === 2) return { schema: parts[0]!, name: parts[1]! };
  throw new UserError(
    `table name ${text} has ${parts.length} parts; write schema.table, and double-quote names that contain a dot`,
  );
}

/** The unambiguous display form: parts quoted only where needed to parse back. */
export function formatTableName(table: TableName): string {
  return `${formatPart(table.schema)}.${formatPart(table.name)}`;
}

function formatPart(part: string): string {
  return /^[^".]+$/.test(part) ? part : `"${part.replace(/"/g, '""')}"`;
}

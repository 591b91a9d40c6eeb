import { readFileSync } from 'node:fs';
import { dollarTag } from './quote.js';

const SQL_DIR = new URL('../../sql/', import.meta.url);
const cache = new Map<string, string>();

/** The text of a file in sql/, before its placeholders are filled. */
export function sqlFileText(name: string): string {
  let text = cache.get(name);
  if (text === undefined) {
    text = readFileSync(new URL(name, SQL_DIR), 'utf8');
    cache.set(name, text);
  }
  return text;
}

/**
 * Fills `{{name}}` placeholders of a file in sql/ with SQL fragments that are already quoted.
 * One pass, so a substituted name that happens to contain `{{...}}` is never expanded again;
 * `{{tag}}` becomes a dollar-quote tag that no substituted value contains.
 */
export function renderSqlFile(name: string, vars: Record<string, string>): string {
  const tag = dollarTag(Object.values(vars).join('\n'));
  return sqlFileText(name).replace(/\{\{(\w+)\}\}/g, (_, key: string) => {
    if (key === 'tag') return tag;
    const value = vars[key];
    if (value === undefined) throw new Error(`sql/${name}: no value for {{${key}}}`);
    return value;
  });
}

import { UserError, errorMessage } from '../errors.js';

interface PgLikeError {
  code?: string;
  message: string;
}

/** host:port/database of a URL, never its password. */
export function describeDatabaseUrl(databaseUrl: string): string {
  try {
    const url = new URL(databaseUrl);
    const db = url.pathname.replace(/^\//, '') || '(default database)';
    return `${url.hostname || 'localhost'}:${url.port || '5432'}/${decodeURIComponent(db)}`;
  } catch {
    return '(unparsable database URL)';
  }
}

export function redactUrl(text: string): string {
  return text.replace(/(\w+:\/\/[^:/@\s]*:)[^@\s]*@/g, '$1***@');
}

/** Turns a connection or privilege failure into one line that says what to do. */
export function describePgError(error: unknown, databaseUrl: string): Error {
  if (error instanceof UserError) return error;
  const e = error as PgLikeError;
  const where = `PostgreSQL at ${describeDatabaseUrl(databaseUrl)}`;
  const fix = 'check --database-url / DATABASE_URL';
  switch (e.code) {
    case 'ECONNREFUSED':
      return new UserError(`cannot connect to ${where}: connection refused; is the server running? ${fix}`, { cause: error });
    case 'ENOTFOUND':
    case 'EAI_AGAIN':
      return new UserError(`cannot connect to ${where}: host not found; ${fix}`, { cause: error });
    case 'ETIMEDOUT':
      return new UserError(`cannot connect to ${where}: timed out; ${fix}`, { cause: error });
    case '3D000':
      return new UserError(`cannot connect to ${where}: ${e.message}; create it or ${fix}`, { cause: error });
    case '28P01':
    case '28000':
      return new UserError(`cannot log in to ${where}: ${e.message}; ${fix}`, { cause: error });
    case '2BP01':
      // uninstall drops its schema without CASCADE: something it did not create is in there.
      return new UserError(`${where}: ${e.message}; pg-redis-mirror removes only what it created: move or drop those objects, then run uninstall again`, { cause: error });
    case '42501':
      return new UserError(`${where}: ${e.message}; grant the privilege (see the README's "Privileges") or connect as a role that has it`, { cause: error });
    case '57P03':
      return new UserError(`${where} is not accepting connections yet (${e.message}); try again shortly`, { cause: error });
    case '57P01':
    case '57P02':
    case 'ECONNRESET':
    case 'EPIPE':
      return new UserError(`lost the connection to ${where}: ${e.message}; run the command again once it is back (it starts over, which is safe)`, { cause: error });
    default:
      if (e.code?.startsWith('08') === true) {
        return new UserError(`lost the connection to ${where}: ${e.message}; run the command again once it is back`, { cause: error });
      }
      if (error instanceof Error && /connect|ECONN|socket|terminat/i.test(e.message) && e.code === undefined) {
        return new UserError(`cannot connect to ${where}: ${redactUrl(errorMessage(error))}; ${fix}`, { cause: error });
      }
      return error instanceof Error ? error : new Error(String(error));
  }
}

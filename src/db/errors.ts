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

/**
 * Hides the password of every URL in `text`. The password runs to the last `@` of the
 * authority (a URL parser reads `u:p@ss@host` that way too), so an `@` in it hides all of it.
 */
export function redactUrl(text: string): string {
  return text.replace(/(\b[a-z][a-z0-9+.-]*:\/\/[^:/?#@\s]*:)[^/?#\s]*@/gi, '$1***@');
}

/** Node's codes for a certificate that could not be verified (chain, host name, dates). */
function isCertificateError(code: string | undefined): boolean {
  return code !== undefined && /CERT|SELF_SIGNED|UNABLE_TO_VERIFY|UNABLE_TO_GET_ISSUER/.test(code);
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
      return new UserError(`cannot log in to ${where}: ${e.message}; check the user and password in --database-url / DATABASE_URL`, { cause: error });
    case '28000':
      if (/no encryption/.test(e.message)) {
        return new UserError(`cannot log in to ${where}: ${e.message}; the server accepts only TLS here: add sslmode=require (or verify-full) to the URL`, { cause: error });
      }
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
      if (e.code === 'ERR_TLS_CERT_ALTNAME_INVALID') {
        return new UserError(
          `cannot connect to ${where}: its TLS certificate is not for this host name (${e.message.replace(/[:\s]+$/, '')}); connect with the host name the certificate names, or use sslmode=verify-ca to check only the CA`,
          { cause: error },
        );
      }
      if (isCertificateError(e.code)) {
        return new UserError(
          `cannot connect to ${where}: its TLS certificate was not accepted (${e.message}); pass the CA that signed it with sslrootcert=/path/to/ca.crt in the URL (verify-full also checks the host name), or use sslmode=require to encrypt without verification`,
          { cause: error },
        );
      }
      if (error instanceof Error && /does not support SSL/.test(e.message)) {
        return new UserError(`cannot connect to ${where}: the server does not accept TLS (ssl = off); turn ssl on in postgresql.conf or drop sslmode from the URL`, { cause: error });
      }
      if (e.code?.startsWith('08') === true) {
        return new UserError(`lost the connection to ${where}: ${e.message}; run the command again once it is back`, { cause: error });
      }
      if (error instanceof Error && /connect|ECONN|socket|terminat/i.test(e.message) && e.code === undefined) {
        return new UserError(`cannot connect to ${where}: ${redactUrl(errorMessage(error))}; ${fix}`, { cause: error });
      }
      return error instanceof Error ? error : new Error(String(error));
  }
}

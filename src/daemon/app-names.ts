import { fitIdentifier } from '../install/names.js';

/**
 * application_name of a daemon's connections, with the install's schema in it, so `status`
 * can tell the daemons of two installs in one database apart (63 bytes at most, as
 * PostgreSQL would otherwise cut it).
 */
export function listenApplicationName(toolSchema: string): string {
  return fitIdentifier(`pg-redis-mirror listen ${toolSchema}`);
}

export function daemonApplicationName(toolSchema: string): string {
  return fitIdentifier(`pg-redis-mirror daemon ${toolSchema}`);
}

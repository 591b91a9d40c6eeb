import pgListen from 'pg-listen';
import type { Logger } from '../log.js';
import { clientConfig } from '../db/connect.js';
import { listenApplicationName } from './app-names.js';

// pg-listen is CommonJS with `exports.default`: under NodeNext its function is pgListen.default.
const createSubscriber = pgListen.default;

export type Wakeup = { kind: 'change'; rel: number } | { kind: 'reload' };

/** Reads a payload the triggers or `install` sent; anything else (foreign, malformed) is null. */
export function parseWakeup(payload: unknown): Wakeup | null {
  if (typeof payload !== 'string' || payload.length > 200) return null;
  let data: unknown;
  try {
    data = JSON.parse(payload);
  } catch {
    return null;
  }
  if (typeof data !== 'object' || data === null) return null;
  const record = data as Record<string, unknown>;
  if (record.event === 'reload' && Object.keys(record).length === 1) return { kind: 'reload' };
  if (Number.isInteger(record.rel) && Object.keys(record).length === 1) return { kind: 'change', rel: record.rel as number };
  return null;
}

export interface WakeupListener {
  close(): Promise<void>;
}

/**
 * Holds the LISTEN connection through pg-listen. Its default gives up reconnecting after 3 s,
 * so a PostgreSQL restart would silence the daemon for good: here it retries forever with
 * backoff, and every (re)connect triggers a drain, because NOTIFYs sent while it was away
 * are gone (the journal is not).
 */
export async function listenForWakeups(
  databaseUrl: string,
  channel: string,
  logger: Logger,
  handlers: { onWakeup: (wakeup: Wakeup) => void; onConnected: () => void; onReconnect?: (attempt: number) => void },
): Promise<WakeupListener> {
  const subscriber = createSubscriber(clientConfig(databaseUrl, listenApplicationName(channel)), {
    retryTimeout: Infinity,
    retryLimit: Infinity,
    retryInterval: (attempt: number) => Math.min(250 * 2 ** Math.min(attempt, 6), 10_000),
    paranoidChecking: 10_000,
    parse: (text: string) => text,
  });
  subscriber.notifications.on(channel, (payload: unknown) => {
    const wakeup = parseWakeup(payload);
    if (wakeup === null) {
      logger.warn({ channel, payload: String(payload).slice(0, 100) }, 'ignored a notification with an unexpected payload');
      return;
    }
    handlers.onWakeup(wakeup);
  });
  subscriber.events.on('reconnect', (attempt: number) => {
    logger.warn({ attempt }, 'LISTEN connection lost; reconnecting');
    handlers.onReconnect?.(attempt);
  });
  subscriber.events.on('connected', () => handlers.onConnected());
  subscriber.events.on('error', (error: Error) => logger.error({ err: error.message }, 'LISTEN connection error'));
  await subscriber.connect();
  await subscriber.listenTo(channel);
  return { close: () => subscriber.close() };
}

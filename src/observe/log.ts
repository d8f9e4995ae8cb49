/**
 * Structured logging: one JSON object per line on stderr. A Logger carries its context fields
 * (component, request id …) so callers pass the logger, not the fields.
 */
export type Level = 'debug' | 'info' | 'warn' | 'error';
const order: Record<Level, number> = { debug: 10, info: 20, warn: 30, error: 40 };

export interface Logger {
  debug(msg: string, fields?: Record<string, unknown>): void;
  info(msg: string, fields?: Record<string, unknown>): void;
  warn(msg: string, fields?: Record<string, unknown>): void;
  error(msg: string, fields?: Record<string, unknown>): void;
  with(fields: Record<string, unknown>): Logger;
}

function minLevel(): number {
  const env = (process.env.KUBICLE_LOG_LEVEL ?? 'info') as Level;
  return order[env] ?? order.info;
}

export function createLogger(context: Record<string, unknown> = {}, sink: (line: string) => void = (l) => process.stderr.write(l)): Logger {
  const threshold = minLevel();
  const emit = (level: Level, msg: string, fields?: Record<string, unknown>) => {
    if (order[level] < threshold) return;
    const rec: Record<string, unknown> = { ts: new Date().toISOString(), level, msg, ...context, ...fields };
    if (rec.err instanceof Error) rec.err = { message: rec.err.message, code: (rec.err as { code?: unknown }).code };
    sink(`${JSON.stringify(rec)}\n`);
  };
  return {
    debug: (m, f) => emit('debug', m, f),
    info: (m, f) => emit('info', m, f),
    warn: (m, f) => emit('warn', m, f),
    error: (m, f) => emit('error', m, f),
    with: (fields) => createLogger({ ...context, ...fields }, sink),
  };
}

/** A logger that drops everything, for tests and benchmarks. */
export const silentLogger: Logger = createLogger({}, () => {});

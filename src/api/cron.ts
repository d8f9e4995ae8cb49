import { KubicleError } from '../observe/errors.js';

/**
 * Cron schedules as CronJobs use them: five fields (minute hour day-of-month month day-of-week)
 * with lists, ranges, steps, names (JAN, MON) and ?, or @yearly/@monthly/@weekly/@daily/@hourly,
 * evaluated in an IANA time zone. Like cron, when both day fields are restricted a time matches
 * if either does.
 */
export interface Schedule {
  minute: Set<number>;
  hour: Set<number>;
  dom: Set<number>;
  month: Set<number>;
  dow: Set<number>;
  domStar: boolean;
  dowStar: boolean;
}

const months = ['JAN', 'FEB', 'MAR', 'APR', 'MAY', 'JUN', 'JUL', 'AUG', 'SEP', 'OCT', 'NOV', 'DEC'];
const days = ['SUN', 'MON', 'TUE', 'WED', 'THU', 'FRI', 'SAT'];
const macros: Record<string, string> = { '@yearly': '0 0 1 1 *', '@annually': '0 0 1 1 *', '@monthly': '0 0 1 * *', '@weekly': '0 0 * * 0', '@daily': '0 0 * * *', '@midnight': '0 0 * * *', '@hourly': '0 * * * *' };

function field(text: string, min: number, max: number, names?: string[]): Set<number> {
  const out = new Set<number>();
  const value = (s: string) => {
    const i = names?.indexOf(s.toUpperCase()) ?? -1;
    const n = i >= 0 ? i + (min === 1 ? 1 : 0) : Number(s);
    if (!Number.isInteger(n) || n < min || n > max + (max === 6 ? 1 : 0)) throw new KubicleError('Invalid', `unparseable schedule: ${JSON.stringify(s)} out of range`);
    return max === 6 && n === 7 ? 0 : n;
  };
  for (const part of text.split(',')) {
    const [range, stepText] = part.split('/');
    const step = stepText === undefined ? 1 : Number(stepText);
    if (!Number.isInteger(step) || step < 1) throw new KubicleError('Invalid', `unparseable schedule: bad step in ${JSON.stringify(part)}`);
    let lo: number;
    let hi: number;
    if (range === '*' || range === '?') [lo, hi] = [min, max];
    else if (range.includes('-')) [lo, hi] = range.split('-').map(value) as [number, number];
    else {
      lo = value(range);
      hi = stepText === undefined ? lo : max;
    }
    if (lo > hi) throw new KubicleError('Invalid', `unparseable schedule: empty range ${JSON.stringify(part)}`);
    for (let v = lo; v <= hi; v += step) out.add(v);
  }
  return out;
}

export function parseSchedule(text: string): Schedule {
  const t = (macros[text.trim()] ?? text).trim().split(/\s+/);
  if (t.length !== 5) throw new KubicleError('Invalid', `unparseable schedule: expected exactly 5 fields, found ${t.length}: ${JSON.stringify(text)}`);
  return {
    minute: field(t[0], 0, 59),
    hour: field(t[1], 0, 23),
    dom: field(t[2], 1, 31),
    month: field(t[3], 1, 12, months),
    dow: field(t[4], 0, 6, days),
    domStar: t[2] === '*' || t[2] === '?',
    dowStar: t[4] === '*' || t[4] === '?',
  };
}

const formatters = new Map<string, Intl.DateTimeFormat>();

function wallClock(ms: number, timeZone: string) {
  let f = formatters.get(timeZone);
  if (!f) {
    f = new Intl.DateTimeFormat('en-US', { timeZone, hourCycle: 'h23', minute: 'numeric', hour: 'numeric', day: 'numeric', month: 'numeric', weekday: 'short' });
    formatters.set(timeZone, f);
  }
  const parts = Object.fromEntries(f.formatToParts(ms).map((p) => [p.type, p.value]));
  return { minute: Number(parts.minute), hour: Number(parts.hour), dom: Number(parts.day), month: Number(parts.month), dow: days.indexOf(String(parts.weekday).toUpperCase()) };
}

export function matches(s: Schedule, ms: number, timeZone = 'UTC'): boolean {
  const w = wallClock(ms, timeZone);
  if (!s.minute.has(w.minute) || !s.hour.has(w.hour) || !s.month.has(w.month)) return false;
  const domOk = s.dom.has(w.dom);
  const dowOk = s.dow.has(w.dow);
  if (s.domStar || s.dowStar) return domOk && dowOk;
  return domOk || dowOk;
}

/** The latest scheduled minute in (after, until], or undefined; looks back at most `maxMinutes`. */
export function lastScheduleBetween(s: Schedule, after: number, until: number, timeZone = 'UTC', maxMinutes = 7 * 24 * 60): number | undefined {
  let t = Math.floor(until / 60_000) * 60_000;
  for (let i = 0; t > after && i < maxMinutes; i++, t -= 60_000) if (matches(s, t, timeZone)) return t;
  return undefined;
}

/** The next scheduled minute after `from`, looking ahead at most `maxMinutes`. */
export function nextSchedule(s: Schedule, from: number, timeZone = 'UTC', maxMinutes = 366 * 24 * 60): number | undefined {
  let t = Math.floor(from / 60_000) * 60_000 + 60_000;
  for (let i = 0; i < maxMinutes; i++, t += 60_000) if (matches(s, t, timeZone)) return t;
  return undefined;
}

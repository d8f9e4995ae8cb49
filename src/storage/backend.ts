/**
 * The store contract: a key-value store with etcd semantics. Keys are strings, values bytes;
 * every successful write gets the next value of one global, strictly increasing revision.
 * The storage layer knows nothing about resource types.
 *
 * Errors are KubicleError codes: NotFound, AlreadyExists, Conflict, Gone (compacted),
 * TooNew (a revision beyond the current one), Unavailable (the store cannot be reached).
 */
export interface KeyValue {
  key: string;
  value: Uint8Array;
  /** Revision at which this key was (last) created. */
  createRevision: number;
  /** Revision of the write that produced this value: the object's resourceVersion. */
  modRevision: number;
}

export interface WatchEvent {
  type: 'put' | 'delete';
  /** For put: the new value. For delete: the key with the deleted value and modRevision = the delete's revision. */
  kv: KeyValue;
  /** The value before this event; absent for a create. */
  prev?: KeyValue;
}

export interface ListOptions {
  /** Read the state as of this revision (0 or absent: current). Gone if compacted, TooNew if in the future. */
  revision?: number;
  /** At most this many items (0 or absent: all). */
  limit?: number;
  /** Start at this key (inclusive), used to continue a paginated list. Must lie within the prefix. */
  startKey?: string;
}

export interface ListResult {
  items: KeyValue[];
  /** The revision the list was read at. */
  revision: number;
  /** True if keys remain after the last item at that revision. */
  more: boolean;
}

export interface WatchListener {
  /** Events arrive in revision order, each at most once. */
  event(ev: WatchEvent): void;
  /** The watch has ended with an error (for example Gone after a compaction). No more events follow. */
  error(err: Error): void;
}

export interface Watch {
  /** Stops delivery. Idempotent. */
  cancel(): void;
}

export interface Backend {
  /** The current revision. Never blocks on other writers for long. */
  currentRevision(): Promise<number>;
  /** The latest value of a key, or at a revision. Resolves null if absent. Gone / TooNew for bad revisions. */
  get(key: string, revision?: number): Promise<KeyValue | null>;
  /** Keys with this prefix in key order, as of one revision. */
  list(prefix: string, opts?: ListOptions): Promise<ListResult>;
  /** Number of live keys with this prefix now. */
  count(prefix: string): Promise<number>;
  /** Creates a key. AlreadyExists if it exists. Not idempotent. */
  create(key: string, value: Uint8Array): Promise<KeyValue>;
  /**
   * Replaces a key's value if its modRevision equals expectedRevision. NotFound if absent;
   * Conflict (with the current value readable by get) if the revision differs.
   */
  update(key: string, value: Uint8Array, expectedRevision: number): Promise<KeyValue>;
  /**
   * Deletes a key, if expectedRevision is given only at that revision. Resolves the deleted
   * value, with modRevision = the revision of the delete. NotFound if absent; Conflict on mismatch.
   */
  delete(key: string, expectedRevision?: number): Promise<KeyValue>;
  /**
   * Delivers every change under prefix after `afterRevision`, in revision order, with previous
   * values. Rejects with Gone when afterRevision is older than the compacted revision. Resolves
   * once the watch is established; no event after establishment is missed.
   */
  watch(prefix: string, afterRevision: number, listener: WatchListener): Promise<Watch>;
  /** Forgets history up to revision; reads and watches below it then answer Gone. Idempotent. */
  compact(revision: number): Promise<void>;
  /** Releases connections and files. Idempotent. */
  close(): Promise<void>;
}

/** The key that sorts right after every key with this prefix (etcd's range_end). */
export function prefixEnd(prefix: string): string {
  return prefix.slice(0, -1) + String.fromCharCode(prefix.charCodeAt(prefix.length - 1) + 1);
}

import { mkdtempSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { backendConformance } from '../conformance/conformance.js';
import { SqliteBackend } from './sqlite-backend.js';

const dir = mkdtempSync(path.join(os.tmpdir(), 'kubicle-sqlite-'));
let n = 0;
backendConformance('SqliteBackend', async () => new SqliteBackend(path.join(dir, `store-${n++}.db`)));

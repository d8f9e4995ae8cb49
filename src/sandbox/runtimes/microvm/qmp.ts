import { once } from 'node:events';
import net from 'node:net';
import { KubicleError } from '../../../observe/errors.js';

/**
 * A QEMU Machine Protocol client: JSON commands over QEMU's control socket, answered in order.
 * Only what saving a guest needs; events are ignored.
 */
export class Qmp {
  private buffered = '';
  private readonly waiting: { resolve: (v: unknown) => void; reject: (e: Error) => void }[] = [];

  private constructor(private readonly socket: net.Socket) {
    socket.setEncoding('utf8');
    socket.on('data', (d: string) => this.receive(d));
    socket.on('error', () => {});
    socket.on('close', () => {
      for (const w of this.waiting.splice(0)) w.reject(new KubicleError('Unavailable', 'QEMU closed its control socket'));
    });
  }

  /** Connects (retrying while QEMU creates the socket) and leaves capability negotiation. */
  static async connect(socketPath: string, timeoutMs = 5000): Promise<Qmp> {
    const deadline = Date.now() + timeoutMs;
    for (;;) {
      const socket = net.connect(socketPath);
      try {
        await once(socket, 'connect');
        const qmp = new Qmp(socket);
        // The greeting is the first line; it carries no `return`, so the first command's answer follows it.
        await qmp.command('qmp_capabilities');
        return qmp;
      } catch (err) {
        socket.destroy();
        if (Date.now() >= deadline) throw new KubicleError('Unavailable', `QEMU's control socket: ${(err as Error).message}`);
        await new Promise((r) => setTimeout(r, 20));
      }
    }
  }

  /** Runs one command; its `return`, or Internal with QEMU's error description. */
  command<T = unknown>(execute: string, args?: Record<string, unknown>): Promise<T> {
    return new Promise<T>((resolve, reject) => {
      this.waiting.push({ resolve: resolve as (v: unknown) => void, reject });
      this.socket.write(`${JSON.stringify(args ? { execute, arguments: args } : { execute })}\n`);
    });
  }

  close(): void {
    this.socket.destroy();
  }

  private receive(data: string): void {
    this.buffered += data;
    for (let nl = this.buffered.indexOf('\n'); nl >= 0; nl = this.buffered.indexOf('\n')) {
      const line = this.buffered.slice(0, nl).trim();
      this.buffered = this.buffered.slice(nl + 1);
      if (!line) continue;
      let msg: { return?: unknown; error?: { desc?: string } };
      try {
        msg = JSON.parse(line);
      } catch {
        continue;
      }
      if (!('return' in msg) && !msg.error) continue;
      const w = this.waiting.shift();
      if (msg.error) w?.reject(new KubicleError('Internal', `qemu: ${msg.error.desc ?? JSON.stringify(msg.error)}`));
      else w?.resolve(msg.return);
    }
  }
}

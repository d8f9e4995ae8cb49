import { generateKeyPair } from 'node:crypto';
import { promisify } from 'node:util';

/**
 * Fresh RSA keys made ahead of need: a new cluster's CA, serving, admin and service-account keys take ~0.6 s to
 * generate, most of what creating a control plane costs, so the provider keeps a few ready and
 * makes more in the background (libuv's thread pool, off the event loop). Each key is handed out
 * once. The provider is trusted with tenants' keys anyway (DESIGN §6): it starts their sandboxes.
 */
const generate = promisify(generateKeyPair);

export class KeyPool {
  private readonly ready: string[] = [];
  private filling = false;

  constructor(private readonly size = 6) {}

  /** A key (PKCS#1 PEM), from the pool when it has one; never the same key twice. */
  async take(): Promise<string> {
    const key = this.ready.shift() ?? (await make());
    void this.fill();
    return key;
  }

  /** Tops the pool up; safe to call any time. */
  async fill(): Promise<void> {
    if (this.filling) return;
    this.filling = true;
    try {
      while (this.ready.length < this.size) this.ready.push(await make());
    } finally {
      this.filling = false;
    }
  }
}

async function make(): Promise<string> {
  const { privateKey } = await generate('rsa', { modulusLength: 2048 });
  return privateKey.export({ type: 'pkcs1', format: 'pem' }).toString();
}

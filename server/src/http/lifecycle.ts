import type { UploadBody } from '../tus/upload-body.js';

/**
 * What shutdown needs to know: whether we are draining, and which upload bodies are
 * still streaming in so they can be cut (and their bytes persisted) before exit.
 */
export class ServerLifecycle {
  private draining = false;
  private readonly bodies = new Set<UploadBody>();

  get isDraining(): boolean {
    return this.draining;
  }

  get activeUploads(): number {
    return this.bodies.size;
  }

  track(body: UploadBody): () => void {
    this.bodies.add(body);
    return () => this.bodies.delete(body);
  }

  /** New requests get 503 from now on; bodies in flight end and keep what arrived. */
  beginShutdown(): void {
    this.draining = true;
    for (const body of this.bodies) body.cut('shutdown');
  }
}

import type { UploadBody } from './upload-body.js';

/**
 * What shutdown needs to know: whether we are draining, and which upload bodies are
 * still streaming in so they can be cut (and their bytes persisted) before exit.
 */
export class ServerLifecycle {
  private draining = false;
  private readonly bodies = new Map<UploadBody, string | undefined>();

  get isDraining(): boolean {
    return this.draining;
  }

  get activeUploads(): number {
    return this.bodies.size;
  }

  /** Registers a body in flight, with its upload id when known (creation has none yet). */
  track(body: UploadBody, uploadId?: string): () => void {
    this.bodies.set(body, uploadId);
    return () => this.bodies.delete(body);
  }

  /** Ends the bodies flowing into one upload (a hook stopped it); they keep what arrived. */
  stopUpload(uploadId: string): void {
    for (const [body, id] of this.bodies) if (id === uploadId) body.cut('stopped');
  }

  /** New requests get 503 from now on; bodies in flight end and keep what arrived. */
  beginShutdown(): void {
    this.draining = true;
    for (const body of this.bodies.keys()) body.cut('shutdown');
  }
}

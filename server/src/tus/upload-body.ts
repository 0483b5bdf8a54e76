/**
 * UploadBody now lives in http/upload-body.ts: both protocol front-ends (tus 1.0 and the IETF
 * draft) and the lifecycle use it. This re-export keeps the tus front-end's imports working.
 */
export { UploadBody, type CutReason, type MinUploadRate } from '../http/upload-body.js';

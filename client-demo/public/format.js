// Sizes, durations and server messages in words, for app.js (no DOM: pure functions).

const UNITS = ['B', 'KB', 'MB', 'GB', 'TB'];

/** 1024-based, labelled KB/MB/GB: 2147483648 reads "2 GB", 2.4 GiB reads "2.4 GB". */
export function formatBytes(bytes) {
  let value = bytes;
  let unit = 0;
  while (value >= 1024 && unit < UNITS.length - 1) {
    value /= 1024;
    unit += 1;
  }
  if (unit === 0) return `${bytes} B`;
  const rounded = value >= 100 ? Math.round(value) : Math.round(value * 10) / 10;
  return `${rounded} ${UNITS[unit]}`;
}

/** "movie.mp4 is 2.4 GB; the limit is 2 GB" (exact bytes when the rounded sizes would read the same). */
export function overLimitMessage(name, size, limit) {
  if (formatBytes(size) === formatBytes(limit)) {
    const exact = (n) => `${n.toLocaleString('en-US')} bytes`;
    return `${name} is ${exact(size)}; the limit is ${exact(limit)}`;
  }
  return `${name} is ${formatBytes(size)}; the limit is ${formatBytes(limit)}`;
}

export function formatDuration(seconds) {
  if (!Number.isFinite(seconds)) return '';
  const s = Math.max(1, Math.round(seconds));
  if (s < 60) return `${s} s`;
  if (s < 3600) return `${Math.floor(s / 60)} min ${String(s % 60).padStart(2, '0')} s`;
  return `${Math.floor(s / 3600)} h ${String(Math.floor((s % 3600) / 60)).padStart(2, '0')} min`;
}

export const STATUS_WORDS = {
  400: 'the server could not accept this request',
  401: 'this server needs a valid access token',
  403: 'you are not allowed to upload here',
  404: 'the upload no longer exists on the server',
  409: 'the server and this page disagree about how much was sent',
  410: 'the upload has expired on the server',
  413: 'the file is larger than the server accepts',
  415: 'the server does not accept this type of file',
  423: 'the upload is busy on the server',
  429: 'the server is busy; try again shortly',
  500: 'the server had an unexpected problem',
  502: 'the server could not reach a service it needs',
  503: 'the server is not available right now',
  504: 'the server took too long to answer',
};

export const capitalize = (text) => text.charAt(0).toUpperCase() + text.slice(1);

/** The message of a server's `ERR_CODE: message` body, or words for its status code. */
export function serverMessage(status, body) {
  const text = (body || '').trim();
  const match = /^ERR_[A-Z0-9_]+:\s*([\s\S]+)$/.exec(text);
  if (match) return match[1].trim();
  return STATUS_WORDS[status] || (status >= 500 ? 'the server had a problem' : `the server refused the request (${status})`);
}

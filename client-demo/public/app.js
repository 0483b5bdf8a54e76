// The browser demo: tus-js-client (loaded before this module as window.tus) uploading to the
// server that serves this page. Each file gets a row; uploads retry through dropped connections,
// resume after a reload (tus-js-client keeps upload URLs in localStorage, keyed by a fingerprint
// of the file), and once the last byte is in, the row follows /uploads/<id> until processing ends.

import { capitalize, formatBytes, formatDuration, overLimitMessage, serverMessage } from './format.js';

const tus = window.tus;

/** The server's tus endpoint, written into the page by the server (TUS_PATH). */
const endpoint = new URL(document.querySelector('meta[name="tus-endpoint"]').content, window.location.href).href;

/**
 * Waits between attempts after a failure: quick at first, then every 30 s for about 10 more
 * minutes, enough to ride out a restarting server or a long Wi-Fi drop. tus-js-client starts
 * again from the first delay once an attempt gets bytes through.
 */
const RETRY_DELAYS = [0, 1000, 3000, 5000, 10000, 10000, 20000, ...Array(20).fill(30000)];
/** Uploads sending at once; the others wait. Browsers allow about 6 connections per server. */
const MAX_PARALLEL = 3;
const STATUS_POLL_MS = 1000;
const STATUS_MAX_MS = 30 * 60 * 1000;
/** Progress over this window gives the speed and time left. */
const SPEED_WINDOW_MS = 5000;
/** How long "back online" stays on a row before it reads "Uploading" again. */
const NOTE_MS = 4000;
const TOKEN_KEY = 'tus-demo-token';

const $ = (selector) => document.querySelector(selector);
const list = $('#uploads');
const empty = $('#empty');
const announcer = $('#announcer');
const network = $('#network');
const tokenInput = $('#token');
const fileInput = $('#files');
const dropZone = $('#drop-zone');

/** @type {Set<Item>} */
const items = new Set();
let nextId = 1;

// ---------------------------------------------------------------------------------------------
// Words

/** What went wrong with a tus-js-client error, in words; never a status code alone. */
function describeError(error) {
  const response = error && error.originalResponse;
  const status = response ? response.getStatus() : 0;
  if (status > 0) {
    const message = capitalize(serverMessage(status, response.getBody())).replace(/\.$/, '');
    return status === 401 ? `${message}. Enter a token above, then press Retry.` : `${message}.`;
  }
  if (!navigator.onLine) return 'You are offline.';
  return 'Cannot reach the server. Check your connection, then press Retry.';
}

function announce(text) {
  // Cleared first so the same words are announced again.
  announcer.textContent = '';
  window.setTimeout(() => {
    announcer.textContent = text;
  }, 50);
}

function token() {
  return tokenInput.value.trim();
}

function authHeaders() {
  const value = token();
  return value ? { Authorization: `Bearer ${value}` } : {};
}

function sleep(ms) {
  return new Promise((resolve) => window.setTimeout(resolve, ms));
}

// ---------------------------------------------------------------------------------------------
// The server's limit (OPTIONS → Tus-Max-Size), asked once and again after a failure

let limitRequest;

function serverLimit() {
  limitRequest ??= fetch(endpoint, { method: 'OPTIONS', headers: { 'Tus-Resumable': '1.0.0' } }).then(
    (response) => {
      const value = response.headers.get('Tus-Max-Size');
      const limit = value === null ? null : Number(value);
      return Number.isSafeInteger(limit) && limit > 0 ? limit : null;
    },
    (error) => {
      limitRequest = undefined;
      throw error;
    },
  );
  return limitRequest;
}

function showLimit() {
  serverLimit().then(
    (limit) => {
      $('#limit').textContent = limit === null ? '' : `Up to ${formatBytes(limit)} per file`;
    },
    () => undefined,
  );
}

// ---------------------------------------------------------------------------------------------
// Rows

/**
 * @typedef {object} Item
 * @property {number} id
 * @property {File} file
 * @property {string} state  checking | queued | uploading | retrying | paused | processing | done
 *   | failed | rejected | refused | error | cancelling | cancelled
 * @property {any} upload    the tus.Upload, once started
 */

const ACTIVE = new Set(['uploading', 'retrying']);
const FINAL = new Set(['done', 'failed', 'rejected', 'refused', 'cancelled']);

function element(tag, className, text) {
  const node = document.createElement(tag);
  if (className) node.className = className;
  if (text !== undefined) node.textContent = text;
  return node;
}

function createRow(item) {
  const name = item.file.name || 'unnamed file';
  const li = element('li', 'upload');
  li.dataset.uploadRow = String(item.id);

  const head = element('div', 'upload-head');
  const title = element('span', 'upload-name', name);
  title.title = name;
  head.append(title, element('span', 'upload-size', formatBytes(item.file.size)));

  const progress = element('progress', 'upload-progress');
  progress.max = Math.max(item.file.size, 1);
  progress.value = 0;
  progress.setAttribute('aria-label', `Upload progress of ${name}`);

  const stats = element('p', 'upload-stats');
  const percent = element('span', 'stat-percent');
  const bytes = element('span', 'stat-bytes');
  const speed = element('span', 'stat-speed');
  const eta = element('span', 'stat-eta');
  stats.append(percent, bytes, speed, eta);

  const state = element('p', 'upload-state');
  const result = element('div', 'upload-result');
  result.hidden = true;

  const actions = element('div', 'upload-actions');
  const pause = element('button', 'button pause');
  pause.type = 'button';
  const cancel = element('button', 'button cancel', 'Cancel');
  cancel.type = 'button';
  cancel.setAttribute('aria-label', `Cancel ${name}`);
  const retry = element('button', 'button retry', 'Retry');
  retry.type = 'button';
  retry.setAttribute('aria-label', `Retry ${name}`);
  const remove = element('button', 'button remove', 'Remove');
  remove.type = 'button';
  remove.setAttribute('aria-label', `Remove ${name} from the list`);
  actions.append(pause, retry, cancel, remove);

  // The state and the buttons share a line when it is wide enough.
  const foot = element('div', 'upload-foot');
  foot.append(state, actions);
  li.append(head, progress, stats, foot, result);
  pause.addEventListener('click', () => (item.state === 'paused' ? resume(item) : pauseItem(item)));
  cancel.addEventListener('click', () => cancelItem(item));
  retry.addEventListener('click', () => retryItem(item));
  remove.addEventListener('click', () => removeItem(item));
  item.el = { li, progress, percent, bytes, speed, eta, state, result, pause, cancel, retry, remove, name };
}

/** Sets a row's state and its words; `announcement` also goes to screen readers. */
function setState(item, state, words, announcement) {
  item.state = state;
  item.note = undefined;
  item.el.li.dataset.state = state;
  item.el.state.textContent = words;
  if (announcement) announce(`${item.el.name}: ${announcement}`);
  renderButtons(item);
  renderStats(item);
}

function renderButtons(item) {
  const { pause, cancel, retry, remove, name } = item.el;
  const state = item.state;
  pause.hidden = !['queued', 'uploading', 'retrying', 'paused'].includes(state);
  pause.textContent = state === 'paused' ? 'Resume' : 'Pause';
  pause.setAttribute('aria-label', `${state === 'paused' ? 'Resume' : 'Pause'} ${name}`);
  cancel.hidden = !['checking', 'queued', 'uploading', 'retrying', 'paused', 'error'].includes(state) || item.uploaded;
  retry.hidden = state !== 'error';
  remove.hidden = !FINAL.has(state) && !(state === 'error' && item.uploaded);
}

function renderStats(item) {
  const { percent, bytes, speed, eta, progress } = item.el;
  const size = item.file.size;
  const sent = Math.min(item.sent, size);
  progress.value = size === 0 ? (item.uploaded ? 1 : 0) : sent;
  const ratio = size === 0 ? (item.uploaded ? 1 : 0) : sent / size;
  // 100% only once the server has every byte.
  const shown = item.uploaded ? 100 : Math.min(99, Math.floor(ratio * 100));
  percent.textContent = `${shown}%`;
  bytes.textContent = `${formatBytes(sent)} of ${formatBytes(size)}`;
  const rate = item.state === 'uploading' ? currentSpeed(item) : undefined;
  speed.textContent = rate ? `${formatBytes(rate)}/s` : '';
  eta.textContent = rate ? `${formatDuration((size - sent) / rate)} left` : '';
}

function currentSpeed(item) {
  const samples = item.samples;
  if (samples.length < 2) return undefined;
  const first = samples[0];
  const last = samples[samples.length - 1];
  const span = last.at - first.at;
  if (span < 500 || last.bytes <= first.bytes) return undefined;
  return ((last.bytes - first.bytes) * 1000) / span;
}

function onProgress(item, sent) {
  const now = performance.now();
  // A retry or resume restarts the count (from the server's offset): measure speed afresh.
  if (sent < item.sent || item.freshSamples) {
    item.samples = [];
    item.freshSamples = false;
  }
  item.sent = sent;
  item.samples.push({ at: now, bytes: sent });
  while (item.samples.length > 2 && now - item.samples[0].at > SPEED_WINDOW_MS) item.samples.shift();
  if (item.state !== 'uploading') return;
  if (now - item.renderedAt < 100 && sent < item.file.size) return;
  item.renderedAt = now;
  // "Starting…", "Resuming…" or "Back online…" give way to "Uploading" (a note after a while).
  if (item.note === undefined || now > item.note) {
    item.note = undefined;
    item.el.state.textContent = 'Uploading';
  }
  renderStats(item);
}

function updateEmpty() {
  empty.hidden = items.size > 0;
}

// ---------------------------------------------------------------------------------------------
// Life of an upload

function fingerprintOf(file) {
  return [file.name, file.type, file.size, file.lastModified].join('/');
}

function addFiles(files) {
  for (const file of files) {
    const duplicate = [...items].find((other) => !FINAL.has(other.state) && fingerprintOf(other.file) === fingerprintOf(file));
    if (duplicate) {
      announce(`${file.name} is already in the list`);
      continue;
    }
    /** @type {Item} */
    const item = { id: nextId++, file, state: 'checking', sent: 0, samples: [], renderedAt: 0, uploaded: false };
    createRow(item);
    items.add(item);
    list.append(item.el.li);
    setState(item, 'checking', 'Checking the size limit…');
    void check(item);
  }
  updateEmpty();
}

/** The size limit, before a byte is sent. */
async function check(item) {
  let limit = null;
  try {
    limit = await serverLimit();
  } catch {
    // Unknown for now (server unreachable): the server checks the size on creation anyway.
  }
  if (item.state !== 'checking') return;
  if (limit !== null && item.file.size > limit) {
    const message = overLimitMessage(item.file.name, item.file.size, limit);
    setState(item, 'refused', message, `not uploaded: ${message}`);
    return;
  }
  setState(item, 'queued', 'Waiting to start…');
  pump();
}

/** Starts queued uploads while fewer than MAX_PARALLEL are sending. */
function pump() {
  let active = [...items].filter((item) => ACTIVE.has(item.state)).length;
  for (const item of items) {
    if (active >= MAX_PARALLEL) break;
    if (item.state !== 'queued') continue;
    active += 1;
    void begin(item);
  }
}

async function begin(item) {
  setState(item, 'uploading', 'Starting…');
  if (item.upload) {
    item.freshSamples = true;
    item.upload.start();
    return;
  }
  const upload = new tus.Upload(item.file, {
    endpoint,
    // Proxies and CDNs in front of upload servers often cap request bodies (Cloudflare at
    // 100 MB, the 413s of our users' reports): 50 MiB PATCHes pass them and cost little speed.
    chunkSize: 50 * 1024 * 1024,
    retryDelays: RETRY_DELAYS,
    removeFingerprintOnSuccess: true,
    metadata: { filename: item.file.name, ...(item.file.type ? { filetype: item.file.type } : {}) },
    // Read at each request: a token typed after the start (say, after a 401) is used from then on.
    onBeforeRequest(request) {
      const value = token();
      if (value) request.setHeader('Authorization', `Bearer ${value}`);
    },
    onAfterResponse(request, response) {
      const link = response.getHeader('Link');
      const match = link && /<([^>]+)>\s*;\s*rel="?status"?/.exec(link);
      if (match) item.statusUrl = new URL(match[1], request.getURL()).href;
      if (item.state === 'retrying' && response.getStatus() > 0) backOnline(item);
    },
    onUploadUrlAvailable() {
      item.url = upload.url;
    },
    onProgress(sent) {
      onProgress(item, sent);
    },
    onShouldRetry(error, attempt) {
      const status = error.originalResponse ? error.originalResponse.getStatus() : 0;
      // Connection failures and server trouble pass; a refusal (4xx) will not change by retrying.
      const retriable = status === 0 || status >= 500 || status === 409 || status === 423 || status === 429;
      if (retriable && (item.state === 'uploading' || item.state === 'retrying')) {
        const why = !navigator.onLine ? 'You are offline' : status === 0 ? 'Connection lost' : capitalize(serverMessage(status, error.originalResponse.getBody()));
        setState(item, 'retrying', `${why}. Retrying… (attempt ${attempt + 1})`, `connection lost, retrying (attempt ${attempt + 1})`);
      }
      return retriable;
    },
    onSuccess() {
      void uploaded(item);
    },
    onError(error) {
      if (item.state === 'cancelling' || item.state === 'cancelled') return;
      setState(item, 'error', describeError(error), `failed: ${describeError(error)}`);
      pump();
    },
  });

  // After a reload (or a browser restart) the same file resumes from the server's offset.
  const previous = await upload.findPreviousUploads().catch(() => []);
  if (item.state !== 'uploading') return; // paused or cancelled meanwhile: a later start begins afresh
  if (previous.length > 0) {
    previous.sort((a, b) => String(b.creationTime).localeCompare(String(a.creationTime)));
    upload.resumeFromPreviousUpload(previous[0]);
    item.el.state.textContent = 'Resuming where it stopped…';
  }
  item.upload = upload;
  upload.start();
}

function backOnline(item) {
  setState(item, 'uploading', 'Back online, resuming…', 'back online, resuming');
  item.note = performance.now() + NOTE_MS;
  item.freshSamples = true;
}

function pauseItem(item) {
  if (item.state === 'queued') {
    setState(item, 'paused', 'Paused', 'paused');
    return;
  }
  if (!ACTIVE.has(item.state)) return;
  // Not terminated: the server keeps what it has, and Resume carries on from there.
  void item.upload?.abort(false);
  // The percentage beside the bar keeps moving until the request in flight is answered; the label should not disagree with it.
  setState(item, 'paused', 'Paused: Resume carries on from where it stopped', 'paused');
  pump();
}

function resume(item) {
  setState(item, 'queued', 'Waiting to start…', 'resumed');
  pump();
}

function retryItem(item) {
  setState(item, 'queued', 'Waiting to start…', 'retrying');
  pump();
}

async function cancelItem(item) {
  const hadUpload = Boolean(item.upload);
  item.stopFollowing = true;
  setState(item, 'cancelling', 'Cancelling…');
  pump();
  if (!hadUpload) {
    setState(item, 'cancelled', 'Cancelled', 'cancelled');
    return;
  }
  try {
    // Terminates the upload on the server (DELETE) and forgets its URL here.
    await item.upload.abort(true);
    setState(item, 'cancelled', item.url ? 'Cancelled; the server has deleted what it received' : 'Cancelled', 'cancelled');
  } catch (error) {
    setState(item, 'cancelled', `Cancelled here, but the server could not delete it: ${describeError(error)}`, 'cancelled');
  }
}

function removeItem(item) {
  item.stopFollowing = true;
  items.delete(item);
  item.el.li.remove();
  updateEmpty();
  fileInput.focus();
}

/** The last byte is in: follow the status resource until processing ends. */
async function uploaded(item) {
  item.uploaded = true;
  item.sent = item.file.size;
  setState(item, 'processing', 'Uploaded. Checking it on the server…', 'uploaded, checking it on the server');
  pump();
  const id = new URL(item.upload.url).pathname.split('/').pop();
  const statusUrl = item.statusUrl || new URL(`/uploads/${id}`, item.upload.url).href;
  const deadline = Date.now() + STATUS_MAX_MS;
  let unreachable = 0;
  while (!item.stopFollowing && Date.now() < deadline) {
    try {
      const response = await fetch(statusUrl, { headers: authHeaders(), cache: 'no-store' });
      if (response.ok) {
        unreachable = 0;
        const status = await response.json();
        if (status.state === 'done' || status.state === 'failed' || status.state === 'rejected') {
          settled(item, status);
          return;
        }
        item.el.state.textContent = 'Uploaded. Checking it on the server…';
      } else if (response.status < 500) {
        const reason = capitalize(serverMessage(response.status, await response.text()));
        setState(item, 'error', `Uploaded, but its status cannot be read: ${reason}.`, 'uploaded, but its status cannot be read');
        return;
      }
    } catch {
      unreachable += 1;
      if (unreachable > 2) item.el.state.textContent = 'Uploaded. Waiting for the server to report on it…';
    }
    await sleep(STATUS_POLL_MS);
  }
  if (!item.stopFollowing) setState(item, 'error', 'Uploaded, but the server has not finished checking it yet. Reload later to see the result.');
}

// The status resource's downloadUrl: with authentication on, a short-lived signed link that
// grants this download only. The token never goes in a URL (history, proxy logs).
function downloadUrl(item, status) {
  return new URL(status.downloadUrl ?? item.upload.url, item.upload.url).href;
}

function settled(item, status) {
  const result = item.el.result;
  result.replaceChildren();
  if (status.state === 'done') {
    setState(item, 'done', 'Done', 'done');
    const sha = status.processors?.sha256?.result?.sha256;
    const type = status.processors?.type?.result;
    const facts = element('dl', 'facts');
    if (sha) facts.append(element('dt', '', 'SHA-256'), element('dd', 'sha256', sha));
    if (type) {
      const declared = type.declared ? ` (declared ${type.declared})` : '';
      const words = type.detected ? `${type.detected}${type.declared && type.declared !== type.detected ? declared : ''}` : `not recognised from its contents${declared}`;
      facts.append(element('dt', '', 'Type'), element('dd', 'type', words));
    }
    const media = status.processors?.media?.result;
    if (media && Array.isArray(media.streams)) {
      const video = media.streams.find((stream) => stream.type === 'video');
      if (Number.isFinite(media.duration)) facts.append(element('dt', '', 'Duration'), element('dd', 'duration', formatDuration(media.duration)));
      if (video && video.width && video.height) facts.append(element('dt', '', 'Resolution'), element('dd', 'resolution', `${video.width} × ${video.height}`));
    }
    // The poster's link is signed like the download's: an <img> sends no Authorization header.
    if (status.posterUrl) {
      const poster = element('img', 'poster');
      poster.src = new URL(status.posterUrl, item.upload.url).href;
      poster.alt = `A frame from ${item.el.name}`;
      poster.decoding = 'async';
      result.append(poster);
    }
    const link = element('a', 'download', `Download ${item.el.name}`);
    link.href = downloadUrl(item, status);
    link.rel = 'noreferrer';
    result.append(facts, link);
  } else {
    const reason = status.error || 'no reason given';
    const words = status.state === 'rejected' ? `Rejected: ${reason}` : `Processing failed: ${reason}`;
    setState(item, status.state, words, words);
  }
  result.hidden = result.childElementCount === 0;
}

// ---------------------------------------------------------------------------------------------
// The page

function onOffline() {
  network.hidden = false;
  network.textContent = 'You are offline. Uploads continue by themselves when the connection is back.';
  announce('You are offline');
  // A request in flight on a dead link can hang for minutes before it fails: stop it now (the
  // server keeps what arrived) and let the retries, and the online event, take over.
  for (const item of items) {
    if (item.state !== 'uploading' || !item.upload) continue;
    void item.upload.abort(false);
    setState(item, 'retrying', 'You are offline. Retrying… (attempt 1)');
    item.upload.start();
  }
}

function onOnline() {
  network.hidden = true;
  network.textContent = '';
  announce('Back online');
  // Do not sit out the rest of a 30 s retry delay: try again now.
  for (const item of items) {
    if (item.state !== 'retrying' || !item.upload) continue;
    void item.upload.abort(false);
    backOnline(item);
    item.upload.start();
  }
}

function init() {
  $('#endpoint').textContent = endpoint;
  if (!tus || !tus.isSupported) {
    $('#unsupported').hidden = false;
    fileInput.disabled = true;
    return;
  }
  tokenInput.value = window.sessionStorage.getItem(TOKEN_KEY) ?? '';
  tokenInput.addEventListener('input', () => window.sessionStorage.setItem(TOKEN_KEY, tokenInput.value));
  // Enter in the token field has nothing to submit.
  $('#settings').addEventListener('submit', (event) => event.preventDefault());

  fileInput.addEventListener('change', () => {
    addFiles([...fileInput.files]);
    // The same file may be picked again later (after a reload it resumes).
    fileInput.value = '';
  });

  // Files dropped anywhere on the page are taken, not opened by the browser.
  let depth = 0;
  const hasFiles = (event) => [...(event.dataTransfer?.types ?? [])].includes('Files');
  window.addEventListener('dragenter', (event) => {
    if (!hasFiles(event)) return;
    event.preventDefault();
    depth += 1;
    dropZone.classList.add('dragging');
  });
  window.addEventListener('dragleave', () => {
    depth = Math.max(0, depth - 1);
    if (depth === 0) dropZone.classList.remove('dragging');
  });
  window.addEventListener('dragover', (event) => {
    if (!hasFiles(event)) return;
    event.preventDefault();
    event.dataTransfer.dropEffect = 'copy';
  });
  window.addEventListener('drop', (event) => {
    if (!hasFiles(event)) return;
    event.preventDefault();
    depth = 0;
    dropZone.classList.remove('dragging');
    addFiles([...event.dataTransfer.files]);
  });

  window.addEventListener('offline', onOffline);
  window.addEventListener('online', onOnline);
  if (!navigator.onLine) onOffline();
  showLimit();
  updateEmpty();
}

init();

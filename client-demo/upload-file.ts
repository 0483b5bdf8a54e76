/**
 * A minimal tus client: uploads one file with tus-js-client and resumes it if you run it again
 * with the upload URL it printed.
 *
 *   npx tsx client-demo/upload-file.ts ./movie.mp4 http://localhost:8080/files/ [upload-url-to-resume]
 */
import fs from 'node:fs';
import path from 'node:path';
import { Upload } from 'tus-js-client';

const [file, endpoint = 'http://localhost:8080/files/', resumeUrl] = process.argv.slice(2);
if (!file) {
  process.stderr.write('usage: upload-file.ts <file> [endpoint] [upload-url-to-resume]\n');
  process.exit(2);
}

const size = fs.statSync(file).size;
const upload = new Upload(fs.createReadStream(file), {
  endpoint,
  uploadUrl: resumeUrl ?? null,
  uploadSize: size,
  chunkSize: 8 * 1024 * 1024,
  retryDelays: [0, 1000, 3000, 5000, 10000, 20000],
  metadata: { filename: path.basename(file), filetype: 'application/octet-stream' },
  onUploadUrlAvailable: () => process.stderr.write(`upload URL (pass it as 3rd argument to resume): ${upload.url}\n`),
  onProgress: (sent, total) => process.stderr.write(`\r${((sent / total) * 100).toFixed(1)}% of ${total} bytes`),
  onError: (error) => {
    process.stderr.write(`\nupload failed: ${error.message}\n`);
    process.exit(1);
  },
  onSuccess: () => {
    process.stderr.write('\n');
    process.stdout.write(`${upload.url}\n`);
  },
});
upload.start();

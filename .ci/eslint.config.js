// @ts-check
import js from '@eslint/js';
import globals from 'globals';
import tseslint from 'typescript-eslint';

/** Storage packages: only server/src/storage/ may import them. */
const STORE_PACKAGES = ['@tus/file-store', '@tus/s3-store', '@aws-sdk/client-s3'];

export default tseslint.config(
  { ignores: ['node_modules/**', 'data/**', '.tmp/**', 'client-demo/public/vendor/**', 'server/dist/**', 'server/.dist-*/**'] },
  js.configs.recommended,
  ...tseslint.configs.recommended,
  {
    languageOptions: { globals: { ...globals.node } },
    rules: {
      '@typescript-eslint/no-unused-vars': ['error', { argsIgnorePattern: '^_', varsIgnorePattern: '^_' }],
      '@typescript-eslint/consistent-type-imports': 'error',
    },
  },
  {
    // Only main.ts reads the environment; everything else receives a parsed Config.
    files: ['server/src/**/*.ts'],
    ignores: ['server/src/main.ts'],
    rules: {
      'no-restricted-properties': ['error', { object: 'process', property: 'env', message: 'Only server/src/main.ts reads process.env; take a Config.' }],
    },
  },
  // Dependency direction: only tus/ imports @tus/server, only storage/ imports the store packages.
  ...[
    { files: ['server/src/**/*.ts'], ignores: ['server/src/tus/**', 'server/src/storage/**'], banned: ['@tus/server', ...STORE_PACKAGES] },
    { files: ['server/src/tus/**/*.ts'], ignores: [], banned: STORE_PACKAGES },
    { files: ['server/src/storage/**/*.ts'], ignores: [], banned: ['@tus/server'] },
  ].map(({ files, ignores, banned }) => ({
    files,
    ignores,
    rules: {
      'no-restricted-imports': [
        'error',
        {
          paths: banned.map((name) => ({
            name,
            message: name === '@tus/server' ? 'Only server/src/tus/ talks to @tus/server.' : 'Only server/src/storage/ imports store packages.',
          })),
        },
      ],
    },
  })),
  { files: ['client-demo/public/**/*.js'], languageOptions: { globals: { ...globals.browser } } },
);

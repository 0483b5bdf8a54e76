#!/usr/bin/env node
// `npx tus-upload` (package.json "bin"): loads tsx from this checkout, then runs the TypeScript
// entry, so it works from any working directory without a build step.
import { register } from 'tsx/esm/api';

register();
await import('./main.ts');

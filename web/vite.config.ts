// Builds the chat widget into one file a portal page loads with one script tag:
// web/dist/parley-widget.js (an IIFE; the CSS is inlined into it).
import { defineConfig } from 'vite';
import { fileURLToPath } from 'node:url';

const here = fileURLToPath(new URL('.', import.meta.url));

export default defineConfig({
  root: here,
  logLevel: 'warn',
  build: {
    outDir: 'dist',
    emptyOutDir: true,
    target: 'es2020',
    sourcemap: true,
    lib: {
      entry: 'src/index.ts',
      name: 'ParleyWidget',
      formats: ['iife'],
      fileName: () => 'parley-widget.js',
    },
  },
});

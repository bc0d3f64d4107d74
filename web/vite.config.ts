// Builds the chat widget into one file a portal page loads with one script tag:
// web/dist/parley-widget.js (an IIFE; the CSS is inlined into it, and injected as a
// <style> unless the page links web/dist/parley-widget.css itself with
// id="parley-widget-css", as a page with a strict CSP (no inline styles) does).
import { defineConfig } from 'vite';
import { readFileSync } from 'node:fs';
import { fileURLToPath } from 'node:url';

const here = fileURLToPath(new URL('.', import.meta.url));

export default defineConfig({
  root: here,
  plugins: [
    {
      name: 'parley-widget-css',
      generateBundle() {
        this.emitFile({ type: 'asset', fileName: 'parley-widget.css', source: readFileSync(new URL('src/widget.css', import.meta.url)) });
      },
    },
  ],
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

// ESLint flat config (issue 19): typescript-eslint's type-checked rules over the server
// (tsconfig.json: src, test, bench, loadtest) and the browser widget (web/tsconfig.json).
// Every rule turned off or narrowed here says why.
import js from '@eslint/js';
import tseslint from 'typescript-eslint';
import globals from 'globals';

export default tseslint.config(
  { ignores: ['dist/**', 'web/dist/**', 'node_modules/**', 'data/**', 'test-artifacts/**'] },
  js.configs.recommended,
  ...tseslint.configs.recommendedTypeChecked,
  {
    languageOptions: {
      parserOptions: {
        project: ['./tsconfig.json', './web/tsconfig.json'],
        tsconfigRootDir: import.meta.dirname,
      },
    },
    rules: {
      // node:test's test()/describe() return promises that the runner itself awaits.
      '@typescript-eslint/no-floating-promises': [
        'error',
        { allowForKnownSafeCalls: [{ from: 'package', package: 'node:test', name: ['test', 'it', 'describe', 'suite'] }] },
      ],
      // Off: it fires ~560 times on `xs[i]!`, the non-null assertions the code writes on
      // purpose on indexed access, as if `noUncheckedIndexedAccess` were on (tsconfig has it off).
      '@typescript-eslint/no-unnecessary-type-assertion': 'off',
      // Off: `async` without `await` is how the code implements Promise-returning interfaces
      // (stores, fakes, `until()` probes); dropping it would turn a throw into a synchronous
      // exception instead of a rejected promise, a behaviour change.
      '@typescript-eslint/require-await': 'off',
      // The parser's ParseFailure is deliberately not an Error (no stack capture on hostile
      // input); it never leaves src/xml/parser.ts.
      '@typescript-eslint/only-throw-error': ['error', { allow: [{ from: 'file', name: 'ParseFailure', path: 'src/xml/parser.ts' }] }],
      // The code marks unused parameters and dropped fields with a leading `_` (`{ id: _id, ...rest }`).
      '@typescript-eslint/no-unused-vars': [
        'error',
        { argsIgnorePattern: '^_', varsIgnorePattern: '^_', caughtErrorsIgnorePattern: '^_', ignoreRestSiblings: true },
      ],
      // `let x` read by callbacks created before its one assignment (the widget's view, a
      // fuzz target's session) cannot be `const`.
      'prefer-const': ['error', { ignoreReadBeforeAssign: true }],
    },
  },
  {
    // Tests drive untyped things: @xmpp/client has no types, and the browser tests reach into
    // converse.js/the widget through page.evaluate. They use `any` for them on purpose.
    // ws hands tests a RawData that is a Buffer there, hence `d.toString()`.
    files: ['test/**'],
    rules: {
      '@typescript-eslint/no-explicit-any': 'off',
      '@typescript-eslint/no-unsafe-argument': 'off',
      '@typescript-eslint/no-unsafe-assignment': 'off',
      '@typescript-eslint/no-unsafe-call': 'off',
      '@typescript-eslint/no-unsafe-member-access': 'off',
      '@typescript-eslint/no-unsafe-return': 'off',
      '@typescript-eslint/no-base-to-string': 'off',
    },
  },
  {
    // The load generator's failures are plain `{ condition }` records (ClientFailure), thrown
    // and rejected on purpose: worker.ts tallies them by `condition`; no stack is wanted.
    files: ['loadtest/**'],
    rules: {
      '@typescript-eslint/only-throw-error': 'off',
      '@typescript-eslint/prefer-promise-reject-errors': 'off',
    },
  },
  {
    // Plain JavaScript (bin/, scripts/, examples/, this file): no type information, Node globals.
    files: ['**/*.js', '**/*.mjs', '**/*.cjs'],
    extends: [tseslint.configs.disableTypeChecked],
    languageOptions: { globals: { ...globals.node } },
  },
  {
    // Its callbacks run in the browser page (Playwright's waitForFunction).
    files: ['scripts/demo-screenshot.js'],
    languageOptions: { globals: { ...globals.browser } },
  },
);

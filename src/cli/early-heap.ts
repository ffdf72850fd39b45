// Imported first by cli.ts, so that tuneHeap() runs before any other module
// is loaded: module loading and config parsing already allocate enough to
// grow V8's young generation, and a grown generation never shrinks.
import { tuneHeap, tuneWasm } from "../observability/heap-tuning.js";

tuneHeap();
tuneWasm();

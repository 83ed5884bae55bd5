// Package registry is chorus's model registry: a server.Models that loads variants beside
// the live one, verifies, validates and warms them, promotes them atomically, pins each
// stream to the variant it opened on, and drains and unloads retired variants once their
// last stream ends.
//
// # Where variants come from
//
// A Store lists and opens variants. DirStore is a models directory with one variant folder
// per sub-folder (docs/format/variant.md); a store over object storage can be added behind
// the same interface. The default model built into the binary (asr/defaultmodel, source
// "embedded:chorus-micro") serves the default model whenever the store holds no variant of
// it that loads: an empty or absent directory, or one whose only such variant is broken.
//
// # Names
//
//   - A variant's name is its folder's name.
//   - The model a folder serves is its card.json's "serves" field when present, else the
//     folder's name. Publishing a folder with "serves": "chorus-micro" therefore replaces
//     the live chorus-micro; publishing one without it adds a model named after the folder.
//   - The binary also embeds chorus-micro-moe (the default MoE-fied, as an overlay over its
//     weights) and chorus-micro-flagship (pruned, then MoE-fied; see asr/defaultmodel): with
//     Config.EmbeddedVariants, which chorus serve sets, each serves under its name when the
//     store holds no variant of that model, and the admin Load takes "chorus-micro-moe" or
//     "embedded:chorus-micro-moe" (and so on) at any time.
//   - The embedded default serves as "chorus-micro"; Config.DefaultModel (default
//     "chorus-micro") answers requests that name no model.
//   - The admin Load takes an explicit model; without one, the card's "serves", else the
//     default model (the API's rule for an operator loading by hand).
//
// # Publishing and automatic promotion
//
// A folder is complete when it holds card.json. Publishers write the folder under a name
// starting with "." (ignored, like names starting with "_") and rename it into place, or at
// least write card.json last. Every new folder, and every folder whose card.json changed
// (republished), found by a rescan is loaded and promoted: publishing hot-swaps. When one
// rescan finds several new folders for one model, the newest (card.json's modification
// time, then the greater name) that loads is promoted and the others are only remembered.
// A folder that fails to load is reported and not retried until it is republished.
// Folders that disappear are retired, except the live one, which keeps serving from memory
// until something replaces it. At startup (Warm) the same rule picks each model's live
// variant. Loading a folder by hand through the admin API keeps it on standby (unless the
// request says promote) and marks it seen, so the watcher does not promote it behind the
// operator's back.
//
// # Loading
//
// Every change goes through one reload entry point (logged per step with durations and
// counted in chorus_model_reloads_total{trigger,result}), one at a time: the admin RPCs,
// SIGHUP (Config.Hangup), the directory watcher (Run, debounced) and startup (Warm). A load
//
//  1. verifies every file card.json's files_sha256 lists (the weights and config.json must
//     be listed when any file is) and takes the version, the first 12 hex digits of the
//     weights file's SHA-256;
//  2. opens the weights and tokenizer beside whatever is live;
//  3. validates: config sanity (a tokenizer that fits the vocabulary, 80 or 128 mel bins)
//     and the golden clip (golden/golden.wav) transcribed greedily, which must succeed with
//     finite scores and, when card.json has "golden_transcript", produce exactly that text;
//  4. warms with one second of silence through the request options.
//
// A variant that fails any step is FAILED with the error (logged, counted in
// chorus_model_loads_total{result="failure"}) and whatever was live keeps serving.
//
// # Leases and draining
//
// Acquire pins the live variant under a short lock that promotion also takes, so a stream
// always gets a variant live at that moment and keeps it for its whole life, whatever is
// promoted meanwhile. A retired variant (DRAINING) refuses new leases and is unloaded when
// its last lease is released: the registry drops its pointer and a reaper goroutine hands the
// memory back to the OS. Releasing a lease twice is ignored (and logged and counted).
//
// # Wiring
//
//	reg, err := registry.New(registry.Config{Dir: dir, Logger: log, Registerer: promReg,
//		Open: asr.OpenOptions{F16: true}, Hangup: hup}) // signal.Notify(hup, syscall.SIGHUP)
//	go reg.Run(ctx)                                     // first scan, watcher, SIGHUP
//	chorusv1.RegisterModelsServer(grpcServer, registry.NewAdminServer(reg))
//	... serve with reg as the server.Models (it is a server.Warmer: Warm is the first scan)
//	reg.Close(shutdownCtx)                              // last, after the servers stopped
package registry

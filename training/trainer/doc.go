// Package trainer is chorus's generic training engine: AdamW with decoupled weight decay,
// learning-rate schedules, gradient accumulation and clipping, a guard that skips steps with
// non-finite gradients, atomic checkpoints with exact resume, a progress display, a CSV log and
// PNG plots. It knows nothing about Whisper: a Task supplies the parameters and, for each
// micro-batch, the loss and its gradients.
//
// # Implementing a Task
//
// Params returns the trainable tensors with a gradient buffer each (set Decay with DecayFor).
// Step(ctx, b, rng) chooses micro-batch b's data from (b.Seed, b.Index) — Order maps positions
// to a shuffled dataset — runs forward and backward, and adds (+=) the gradient of the
// micro-batch's mean loss into each Grad. Eval (optional, see Evaluator) returns dev metrics
// such as {"wer": 0.31}.
//
// With tensor's tape: Watch every trainable weight once and use Param{W: w, Grad: tape.Grad(w)}
// — watched tensors keep one gradient buffer that accumulates over Backward calls — then in
// Step run forward on the training Ctx, take the loss (Ctx.CrossEntropy seeds its own
// gradient of the mean), call tape.Backward() and ctx.Reset(). Do not call tape.Reset: the
// trainer zeroes Grad itself, in the same pass as the AdamW update.
//
// For the resume to be exact the task must be deterministic given (b, rng): the same data for
// the same Index, random draws in a fixed order, and a fixed floating-point reduction order in
// its kernels.
//
// # What is written
//
// CheckpointDir/ckpt-<step>.chk (layout on ReadCheckpoint): params, AdamW moments and step,
// the step and data position, the RNG state and the config hash, zstd-compressed with a
// SHA-256 of the payload. The newest KeepCheckpoints are kept; a corrupt newest one is set
// aside (renamed *.corrupt) in favour of the one before, with a warning.
//
// LogCSV: one row per step with columns step, time (UTC, RFC 3339), elapsed_s (training time
// over all sessions), loss (mean over the step's micro-batches), lr, grad_norm (global L2 norm
// before clipping), items_per_s, skipped (steps skipped so far), then <counter>_per_s for each
// task counter and eval_<metric> on evaluated steps. Columns appear as they are first
// reported. A resumed run drops rows after its checkpoint's step before appending, so each
// step appears once.
//
// PlotDir: loss.png and eval_<metric>.png, redrawn at every checkpoint (see package
// training/plot).
package trainer

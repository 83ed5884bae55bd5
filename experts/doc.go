// Package experts turns a ReLU feed-forward block into a mixture of experts (MoEfication,
// Zhang et al. 2022) and runs it sparsely: it partitions the block's hidden neurons into E
// equal experts (partition.go), permutes them so each expert is a contiguous block (ffn.go),
// chooses per token or per request which experts run (router.go, mlprouter.go), computes only
// the chosen blocks (sparse.go), records which experts each token used (pathway.go) and
// describes the whole arrangement for a variant's config.json (layout.go).
//
// The package knows nothing of Whisper: a model hands it fc1/fc2 weights and FFN inputs.
// Only ReLU blocks are supported; a GELU model is ReLU-fied first (issue 5, step 1), because
// MoEfication relies on most neurons of a token being exactly zero.
//
// Shape legend used throughout: T tokens (audio frames or text positions) in one call, C model
// width (FFN input and output), N hidden neurons of the FFN, E experts, S = N/E neurons per
// expert, K experts selected per token, H hidden width of a router MLP.
package experts

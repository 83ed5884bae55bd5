// Package formats reads and writes the checkpoint file formats chorus meets, independent of
// the model math: Hugging Face safetensors (optionally zstd-compressed) and config.json,
// whisper.cpp's legacy ggml model files, and NumPy .npy arrays.
//
// Everything converges on one neutral in-memory type, [Checkpoint]: named tensors in PyTorch
// (row-major, outermost-first) shape order, each stored as float32, float16 or bfloat16. The
// model packages map a Checkpoint onto their weights; this package knows tensor names only
// where a format dictates them (the Hugging Face ↔ OpenAI/whisper.cpp name table, see
// [HFToOpenAI]).
//
// Every parser here reads outside input: it validates every size and offset against the input
// it was given, returns an error naming the tensor or field at fault, never panics, and never
// allocates much more than the input actually supplies (a header that claims a 1 TB tensor
// fails when the bytes run out, not when make() is called). Each parser has a go test -fuzz
// target in fuzz_test.go.
package formats

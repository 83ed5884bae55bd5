package formats_test

import (
	"bytes"
	"fmt"

	"github.com/chorus-asr/chorus/asr/formats"
)

func ExampleWriteSafetensors() {
	ck := formats.NewCheckpoint()
	ck.Metadata["format"] = "pt"
	ck.Add(formats.NewF32("model.encoder.layer_norm.bias", []int{2}, []float32{0.5, -1}))
	ck.Add(formats.NewF32("model.encoder.layer_norm.weight", []int{2}, []float32{1, 1}).Convert(formats.F16))

	var buf bytes.Buffer
	if err := formats.WriteSafetensors(&buf, ck); err != nil {
		panic(err)
	}
	back, err := formats.ReadSafetensors(buf.Bytes())
	if err != nil {
		panic(err)
	}
	for _, name := range back.Order {
		t := back.Tensors[name]
		fmt.Println(name, t.DType, t.Shape, t.ToF32())
	}
	// Output:
	// model.encoder.layer_norm.bias F32 [2] [0.5 -1]
	// model.encoder.layer_norm.weight F16 [2] [1 1]
}

func ExampleHFToOpenAI() {
	for _, hf := range []string{
		"model.decoder.layers.3.encoder_attn.k_proj.weight",
		"model.encoder.embed_positions.weight",
		"proj_out.weight",
	} {
		name, ok := formats.HFToOpenAI(hf)
		fmt.Printf("%s → %q %v\n", hf, name, ok)
	}
	// Output:
	// model.decoder.layers.3.encoder_attn.k_proj.weight → "decoder.blocks.3.cross_attn.key.weight" true
	// model.encoder.embed_positions.weight → "encoder.positional_embedding" true
	// proj_out.weight → "" false
}

func ExampleF32ToF16() {
	for _, v := range []float32{1, 65504, 65520, 0x1p-25, 0x1.000002p-25} {
		fmt.Printf("%g → %#04x\n", v, formats.F32ToF16(v))
	}
	// Output:
	// 1 → 0x3c00
	// 65504 → 0x7bff
	// 65520 → 0x7c00
	// 2.9802322e-08 → 0x0000
	// 2.9802326e-08 → 0x0001
}

package audio

import (
	"encoding/binary"
	"errors"
	"math"
	"testing"
)

func TestFromPCM16(t *testing.T) {
	tests := []struct {
		name string
		in   []byte
		want []float32
	}{
		{"empty", nil, []float32{}},
		{"values", pcm16Bytes(0, 1, -1, 16384, -32768, 32767), []float32{0, 1.0 / 32768, -1.0 / 32768, 0.5, -1, 32767.0 / 32768}},
		{"trailing odd byte ignored", append(pcm16Bytes(-16384), 0x7f), []float32{-0.5}},
		{"single byte", []byte{1}, []float32{}},
	}
	for _, tt := range tests {
		got := FromPCM16(tt.in)
		if len(got) != len(tt.want) || (len(got) > 0 && maxAbsDiff(got, tt.want) != 0) {
			t.Errorf("%s: got %v, want %v", tt.name, got, tt.want)
		}
	}
}

func float32Bytes(v ...float32) []byte {
	var b []byte
	for _, x := range v {
		b = binary.LittleEndian.AppendUint32(b, math.Float32bits(x))
	}
	return b
}

func TestFromFloat32LE(t *testing.T) {
	inf := float32(math.Inf(1))
	tests := []struct {
		name    string
		in      []byte
		want    []float32
		wantErr bool
	}{
		{"empty", nil, []float32{}, false},
		{"values", float32Bytes(0, -1, 0.25, 1.5, -1e-30), []float32{0, -1, 0.25, 1.5, -1e-30}, false},
		{"partial sample", float32Bytes(1)[:3], nil, true},
		{"trailing bytes", append(float32Bytes(1), 0), nil, true},
		{"NaN", float32Bytes(0, float32(math.NaN())), nil, true},
		{"+Inf", float32Bytes(inf), nil, true},
		{"-Inf", float32Bytes(-inf), nil, true},
	}
	for _, tt := range tests {
		got, err := FromFloat32LE(tt.in)
		if tt.wantErr {
			if !errors.Is(err, ErrMalformed) {
				t.Errorf("%s: got %v, %v; want ErrMalformed", tt.name, got, err)
			}
			continue
		}
		if err != nil || len(got) != len(tt.want) || (len(got) > 0 && maxAbsDiff(got, tt.want) != 0) {
			t.Errorf("%s: got %v, %v; want %v", tt.name, got, err, tt.want)
		}
	}
}

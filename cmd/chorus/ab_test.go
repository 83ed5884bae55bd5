package main

import (
	"reflect"
	"testing"

	"github.com/chorus-asr/chorus/asr"
)

func TestParseArms(t *testing.T) {
	for _, tc := range []struct {
		in   string
		want []arm
		bad  bool
	}{
		{in: "dense,random:0.25,mlp:0.25,oracle:0.25", want: []arm{
			{"dense", asr.RoutingChoice{Router: "dense"}},
			{"random:0.25", asr.RoutingChoice{Router: "random", Fraction: 0.25}},
			{"mlp:0.25", asr.RoutingChoice{Router: "mlp", Fraction: 0.25}},
			{"oracle:0.25", asr.RoutingChoice{Router: "oracle", Fraction: 0.25}},
		}},
		{in: "mlp:4/request, oracle:1.0", want: []arm{
			{"mlp:4/request", asr.RoutingChoice{Router: "mlp", K: 4, PerRequest: true}},
			{"oracle:1.0", asr.RoutingChoice{Router: "oracle", Fraction: 1}},
		}},
		{in: "mlp:0.25/min225,random:2/min2/request", want: []arm{
			{"mlp:0.25/min225", asr.RoutingChoice{Router: "mlp", Fraction: 0.25, MinTokens: 225}},
			{"random:2/min2/request", asr.RoutingChoice{Router: "random", K: 2, PerRequest: true, MinTokens: 2}},
		}},
		{in: "mlp:8/enc,oracle:0.5/request/enc/min3", want: []arm{
			{"mlp:8/enc", asr.RoutingChoice{Router: "mlp", K: 8, EncoderOnly: true}},
			{"oracle:0.5/request/enc/min3", asr.RoutingChoice{Router: "oracle", Fraction: 0.5, PerRequest: true, EncoderOnly: true, MinTokens: 3}},
		}},
		{in: "mlp:8/enc/enc", bad: true},
		{in: "mlp:8/fast", bad: true},
		{in: "dense/enc", bad: true},
		{in: "mlp:0.25/min1", bad: true},
		{in: "mlp:0.25/minx", bad: true},
		{in: "dense/min4", bad: true},
		{in: "", bad: true},
		{in: "dense,,mlp:2", bad: true},
		{in: "lstm:0.25", bad: true},
		{in: "mlp", bad: true},
		{in: "mlp:0", bad: true},
		{in: "mlp:-2", bad: true},
		{in: "mlp:0.0", bad: true},
		{in: "mlp:1.5", bad: true},
		{in: "mlp:abc", bad: true},
		{in: "mlp:NaN.", bad: true},
		{in: "dense:0.5", bad: true},
		{in: "dense/request", bad: true},
		{in: "mlp:2,mlp:2", bad: true},
	} {
		got, err := parseArms(tc.in)
		if tc.bad {
			if err == nil {
				t.Errorf("%q: accepted as %+v", tc.in, got)
			}
			continue
		}
		if err != nil || !reflect.DeepEqual(got, tc.want) {
			t.Errorf("%q: got %+v, %v; want %+v", tc.in, got, err, tc.want)
		}
	}
}

package transcribe

import (
	"slices"
	"testing"
)

func TestWindowSegments(t *testing.T) {
	const tb = 1000 // <|0.00|>
	ts := func(i int) int { return tb + i }
	const a, b, c = 1, 2, 3
	type seg struct {
		tokens     []int
		start, end float64
	}
	for _, tc := range []struct {
		name    string
		tokens  []int
		size    int
		want    []seg
		advance int
	}{
		{
			"pairs split segments; the unfinished tail is dropped and the seek moves to the last pair",
			[]int{ts(0), a, ts(100), ts(100), b, ts(250), ts(260), c}, 3000,
			[]seg{{[]int{ts(0), a, ts(100)}, 0, 2}, {[]int{ts(100), b, ts(250)}, 2, 5}},
			500,
		},
		{
			"a single timestamp ending closes the last segment and consumes the window",
			[]int{ts(0), a, ts(100), ts(100), b, ts(250)}, 3000,
			[]seg{{[]int{ts(0), a, ts(100)}, 0, 2}, {[]int{ts(100), b, ts(250)}, 2, 5}},
			3000,
		},
		{
			"a trailing pair: seek to its first timestamp",
			[]int{ts(0), a, ts(100), ts(120)}, 3000,
			[]seg{{[]int{ts(0), a, ts(100)}, 0, 2}},
			200,
		},
		{
			"no pair: one segment up to the last timestamp",
			[]int{ts(0), a, b, ts(150)}, 2500,
			[]seg{{[]int{ts(0), a, b, ts(150)}, 0, 3}},
			2500,
		},
		{
			"no pair and only <|0.00|>: the segment spans the window content",
			[]int{ts(0), a, b}, 1234,
			[]seg{{[]int{ts(0), a, b}, 0, 12.34}},
			1234,
		},
		{
			"no timestamps at all",
			[]int{a, b, c}, 3000,
			[]seg{{[]int{a, b, c}, 0, 30}},
			3000,
		},
		{
			"nothing decoded",
			[]int{}, 800,
			[]seg{{[]int{}, 0, 8}},
			800,
		},
		{
			"a pair at <|0.00|> cannot stall the seek",
			[]int{ts(0), ts(0), a}, 3000,
			[]seg{{[]int{ts(0)}, 0, 0}},
			3000,
		},
	} {
		t.Run(tc.name, func(t *testing.T) {
			pieces, adv := windowSegments(tc.tokens, tb, tc.size, 2, 0.02)
			var got []seg
			for _, p := range pieces {
				got = append(got, seg{p.tokens, p.start, p.end})
			}
			if !slices.EqualFunc(got, tc.want, func(x, y seg) bool {
				return slices.Equal(x.tokens, y.tokens) && near(x.start, y.start) && near(x.end, y.end)
			}) {
				t.Errorf("segments %v, want %v", got, tc.want)
			}
			if adv != tc.advance {
				t.Errorf("advance %d, want %d", adv, tc.advance)
			}
		})
	}
}

func near(a, b float64) bool { return a-b < 1e-9 && b-a < 1e-9 }

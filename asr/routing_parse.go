package asr

import (
	"fmt"
	"strconv"
	"strings"
)

// ParseRoutingChoice reads one routing choice as the command line and recipes name it:
// ROUTER[:AMOUNT][/minN][/enc][/request], where ROUTER is dense, random, mlp, oracle or gate
// (an upcycled variant's learned gate), AMOUNT a fraction of each layer's experts when it
// has a decimal point ("0.25") or an expert count otherwise ("4"), /minN runs every expert in
// calls of fewer than N tokens (MinTokens: N above the text context keeps the decoder dense),
// /enc routes the encoder only (EncoderOnly), and /request selects one subset per utterance
// (PerRequest); the modifiers come in any order. Every router but dense needs an amount;
// dense takes none.
func ParseRoutingChoice(s string) (RoutingChoice, error) {
	var c RoutingChoice
	spec := strings.TrimSpace(s)
	if spec == "" {
		return c, fmt.Errorf("empty routing choice")
	}
	for { // modifiers, in any order
		i := strings.LastIndex(spec, "/")
		if i < 0 {
			break
		}
		switch mod := spec[i+1:]; {
		case mod == "request" && !c.PerRequest:
			c.PerRequest = true
		case mod == "enc" && !c.EncoderOnly:
			c.EncoderOnly = true
		case strings.HasPrefix(mod, "min") && c.MinTokens == 0:
			n, err := strconv.Atoi(mod[len("min"):])
			if err != nil || n < 2 {
				return c, fmt.Errorf("routing %q: /minN wants a token count N ≥ 2 (calls of fewer tokens run every expert)", s)
			}
			c.MinTokens = n
		default:
			return c, fmt.Errorf("routing %q: unknown or repeated modifier /%s (want /request, /enc or /minN)", s, mod)
		}
		spec = spec[:i]
	}
	name, amount, has := strings.Cut(spec, ":")
	c.Router = name
	switch name {
	case "dense":
		if has || c.PerRequest || c.MinTokens > 0 || c.EncoderOnly {
			return c, fmt.Errorf("routing %q: dense takes no amount or mode", s)
		}
	case "random", "mlp", "oracle", "gate":
		if !has {
			return c, fmt.Errorf("routing %q: want %s:FRACTION or %s:COUNT", s, name, name)
		}
		if strings.Contains(amount, ".") {
			f, err := strconv.ParseFloat(amount, 64)
			if err != nil || !(f > 0 && f <= 1) {
				return c, fmt.Errorf("routing %q: fraction %q outside (0, 1]", s, amount)
			}
			c.Fraction = f
		} else {
			k, err := strconv.Atoi(amount)
			if err != nil || k < 1 {
				return c, fmt.Errorf("routing %q: expert count %q must be a positive integer", s, amount)
			}
			c.K = k
		}
	default:
		return c, fmt.Errorf("routing %q: unknown router %q (want dense, random, mlp, oracle or gate)", s, name)
	}
	return c, nil
}

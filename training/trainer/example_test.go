package trainer_test

import (
	"context"
	"fmt"
	"log/slog"
	"math/rand/v2"
	"slices"

	"github.com/chorus-asr/chorus/tensor"
	"github.com/chorus-asr/chorus/training/trainer"
)

// lineFit fits y = a·x + b to points on y = 2x + 1, one example per micro-batch, with the
// gradient of the squared error written by hand.
type lineFit struct {
	params []trainer.Param
	order  *trainer.Order
	xs     []float32
}

func (l *lineFit) Params() []trainer.Param { return l.params }

func (l *lineFit) Step(_ context.Context, b trainer.Batch, _ *rand.Rand) (trainer.StepResult, error) {
	_, i := l.order.At(b.Index) // the example this micro-batch trains on
	a, c := l.params[0].W.Data[0], l.params[1].W.Data[0]
	x := l.xs[i]
	r := a*x + c - (2*x + 1)
	l.params[0].Grad.Data[0] += r * x // accumulate: the trainer zeroes after each update
	l.params[1].Grad.Data[0] += r
	return trainer.StepResult{Loss: float64(r*r) / 2, Items: 1}, nil
}

func ExampleRun() {
	order, _ := trainer.NewOrder(1, 8)
	task := &lineFit{order: order, xs: []float32{-1, -0.75, -0.5, -0.25, 0.25, 0.5, 0.75, 1}}
	for _, name := range []string{"a", "b"} {
		task.params = append(task.params, trainer.Param{Name: name, W: tensor.New(1), Grad: tensor.New(1)})
	}
	err := trainer.Run(context.Background(), task, trainer.Config{
		Steps:    300,
		Accum:    4, // four examples per update
		Schedule: trainer.WarmupDecay{Peak: 0.1, Floor: 0.001, Warmup: 10, Total: 300, Shape: trainer.DecayCosine},
		Logger:   slog.New(slog.DiscardHandler),
	})
	fmt.Printf("err=%v a=%.2f b=%.2f\n", err, task.params[0].W.Data[0], task.params[1].W.Data[0])
	// Output: err=<nil> a=2.00 b=1.00
}

// Each epoch visits every example once, in an order fixed by (seed, epoch); a resumed run asks
// for position 6 directly and gets what an uninterrupted run got there.
func ExampleOrder() {
	order, _ := trainer.NewOrder(7, 4)
	seen := map[int64][]int{}
	for pos := int64(0); pos < 8; pos++ {
		epoch, i := order.At(pos)
		seen[epoch] = append(seen[epoch], i)
	}
	fresh, _ := trainer.NewOrder(7, 4)
	_, i := fresh.At(6)
	fmt.Println(len(seen[0]), len(seen[1]), slices.Sorted(slices.Values(seen[1])), i == seen[1][2])
	// Output: 4 4 [0 1 2 3] true
}

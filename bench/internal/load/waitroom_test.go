package load

import (
	"math"
	"math/rand/v2"
	"testing"
)

func TestSpearman(t *testing.T) {
	n := 10_000
	up, down, shuffled := make([]float64, n), make([]float64, n), make([]float64, n)
	for i := range n {
		up[i], down[i], shuffled[i] = float64(i), float64(n-i), float64(i)
	}
	r := rand.New(rand.NewPCG(1, 2))
	r.Shuffle(n, func(i, j int) { shuffled[i], shuffled[j] = shuffled[j], shuffled[i] })
	tests := []struct {
		name string
		y    []float64
		want float64
		tol  float64
	}{
		{"same order", up, 1, 1e-9},
		{"reversed", down, -1, 1e-9},
		{"shuffled", shuffled, 0, 0.05},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := spearman(up, tt.y); math.Abs(got-tt.want) > tt.tol {
				t.Fatalf("spearman = %f, want %f ± %g", got, tt.want, tt.tol)
			}
		})
	}
}

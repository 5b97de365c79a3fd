package queue_test

import (
	"fmt"
	"sync/atomic"
	"testing"

	"github.com/convox-build-action/convox-build-action/internal/queue"
)

// BenchmarkAccept records one push delivery and its build job, one after
// another: the cost of a delivery's transaction.
func BenchmarkAccept(b *testing.B) {
	for _, be := range backends {
		b.Run(be.name, func(b *testing.B) {
			q := be.open(b, queue.Options{})
			i := 0
			for b.Loop() {
				i++
				_, err := q.Accept(b.Context(), queue.Delivery{ID: fmt.Sprint("d", i), Event: "push"},
					queue.Plan{Builds: []queue.BuildRequest{push("o", "r", fmt.Sprintf("%040d", i), fmt.Sprint("b", i))}})
				if err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}

// BenchmarkAcceptConcurrent records deliveries from 32 goroutines at
// once, as a burst of webhooks does: they share transactions.
func BenchmarkAcceptConcurrent(b *testing.B) {
	for _, be := range backends {
		b.Run(be.name, func(b *testing.B) {
			q := be.open(b, queue.Options{})
			var n atomic.Int64
			b.SetParallelism(16) // 32 goroutines on 2 CPUs
			b.RunParallel(func(pb *testing.PB) {
				for pb.Next() {
					i := n.Add(1)
					_, err := q.Accept(b.Context(), queue.Delivery{ID: fmt.Sprint("d", i), Event: "push"},
						queue.Plan{Builds: []queue.BuildRequest{push("o", "r", fmt.Sprintf("%040d", i), fmt.Sprint("b", i))}})
					if err != nil {
						b.Fatal(err)
					}
				}
			})
		})
	}
}

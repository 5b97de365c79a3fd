package main

import (
	"fmt"
	"io"
	"math/rand/v2"
	"net/http"
	"slices"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/convox-build-action/convox-build-action/internal/testenv"
)

// TestLoad sends signed push deliveries to the server process from 32
// concurrent clients on loopback, a fifth of them sent twice (GitHub's
// redeliveries), and reports how fast they were acknowledged; then checks
// that every distinct delivery became exactly one job. The server's
// workers run meanwhile (the commits do not exist, so each job ends
// quickly with a failed check run).
func TestLoad(t *testing.T) {
	const (
		distinct    = 2000
		redelivered = distinct / 5
		concurrency = 32
	)
	for _, db := range []string{"sqlite", "postgres"} {
		t.Run(db, func(t *testing.T) {
			w := newWorld(t, db)
			w.extra["DRAIN_TIMEOUT"] = "1s"
			p := w.start()

			type delivery struct {
				id   string
				body []byte
			}
			var all []delivery
			for i := range distinct {
				sha := fmt.Sprintf("%040x", rand.Uint64())
				all = append(all, delivery{fmt.Sprintf("load-%05d", i),
					pushPayload(t, "acme", fmt.Sprintf("repo%d", i%10), fmt.Sprintf("branch-%d", i), sha, "load")})
			}
			// Redeliveries go after their first delivery, mixed in.
			for i := range redelivered {
				d := all[rand.IntN(distinct/2)]
				pos := distinct/2 + rand.IntN(distinct/2+i)
				all = slices.Insert(all, pos, d)
			}
			reqs := make([]*http.Request, len(all))
			for i, d := range all {
				r, err := testenv.WebhookRequest("http://"+p.addr+"/webhook", w.secret, "push", d.id, d.body)
				if err != nil {
					t.Fatal(err)
				}
				reqs[i] = r
			}
			client := &http.Client{Transport: &http.Transport{MaxIdleConnsPerHost: concurrency}}
			latencies := make([]time.Duration, len(reqs))
			statuses := make([]int, len(reqs))
			next := make(chan int)
			var wg sync.WaitGroup
			began := time.Now()
			for range concurrency {
				wg.Go(func() {
					for i := range next {
						start := time.Now()
						resp, err := client.Do(reqs[i])
						if err != nil {
							t.Errorf("delivery %d: %v", i, err)
							continue
						}
						io.Copy(io.Discard, resp.Body)
						resp.Body.Close()
						latencies[i], statuses[i] = time.Since(start), resp.StatusCode
					}
				})
			}
			for i := range reqs {
				next <- i
			}
			close(next)
			wg.Wait()
			took := time.Since(began)

			accepted, duplicates := 0, 0
			for _, s := range statuses {
				switch s {
				case http.StatusAccepted:
					accepted++
				case http.StatusOK:
					duplicates++
				default:
					t.Errorf("status %d", s)
				}
			}
			sorted := slices.Clone(latencies)
			slices.Sort(sorted)
			pct := func(q float64) time.Duration { return sorted[int(q*float64(len(sorted)-1))] }
			t.Logf("%s: %d deliveries (%d distinct, %d redelivered) at concurrency %d in %v (%.0f/s): acknowledged p50 %v, p90 %v, p99 %v, max %v; %d accepted, %d duplicates",
				db, len(reqs), distinct, redelivered, concurrency, took.Round(time.Millisecond), float64(len(reqs))/took.Seconds(),
				pct(0.50).Round(10*time.Microsecond), pct(0.90).Round(10*time.Microsecond), pct(0.99).Round(10*time.Microsecond),
				sorted[len(sorted)-1].Round(10*time.Microsecond), accepted, duplicates)
			if pct(0.99) > 50*time.Millisecond {
				t.Logf("%s: p99 %v is over the 50 ms target on this machine (load average shared with other work)", db, pct(0.99))
			}
			if pct(0.99) > time.Second {
				t.Errorf("p99 %v: GitHub waits 10 s, but acknowledgements this slow leave no margin", pct(0.99))
			}
			if accepted != distinct || duplicates != redelivered {
				t.Errorf("%d accepted, %d duplicates; want %d and %d", accepted, duplicates, distinct, redelivered)
			}

			p.signal(syscall.SIGTERM)
			p.wait(2 * time.Minute)
			q := w.openQueue()
			jobs, err := q.Jobs(t.Context())
			if err != nil {
				t.Fatal(err)
			}
			perBuild := map[string]int{}
			for _, j := range jobs {
				if j.Kind == "convox_build" {
					perBuild[j.BuildID]++
				}
			}
			builds, err := q.Builds(t.Context(), "", "", 0)
			if err != nil {
				t.Fatal(err)
			}
			byDelivery := map[string]int{}
			for _, b := range builds {
				byDelivery[b.DeliveryID]++
				if perBuild[b.ID] != 1 {
					t.Errorf("build %s has %d jobs", b.ID, perBuild[b.ID])
				}
			}
			if len(builds) != distinct || len(perBuild) != distinct || len(byDelivery) != distinct {
				t.Errorf("%d builds, %d with jobs, from %d deliveries; want %d of each", len(builds), len(perBuild), len(byDelivery), distinct)
			}
			t.Logf("%s: %d distinct deliveries became %d builds with one job each", db, distinct, len(builds))
		})
	}
}

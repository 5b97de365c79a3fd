// Command importcheck runs one build.Import in a process of its own, so
// that transfer_test.go can measure it: its peak RSS (VmHWM of
// /proc/self/status, read at the end: the high-water mark of this program's
// memory since exec; the parent's rusage maxrss would count the forked copy
// of the parent too) and the bytes it wrote (wchar of /proc/self/io around
// Import). It is built without -race, like the product.
//
//	importcheck -db FILE -app APP -repository REPO -file EXPORT
//
// prints one JSON line: {"build": ..., "release": ..., "error": ...,
// "written": N, "peak_rss": N}. The work dir goes under $TMPDIR, as for the
// CLI.
package main

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"flag"
	"fmt"
	"os"
	"strconv"
	"strings"

	"github.com/convox-build-action/convox-build-action/internal/build"
	"github.com/convox-build-action/convox-build-action/internal/registry"
	"github.com/convox-build-action/convox-build-action/internal/store"
)

type result struct {
	Build   string `json:"build"`
	Release string `json:"release"`
	Error   string `json:"error"`
	Written int64  `json:"written"`
	PeakRSS int64  `json:"peak_rss"`
}

func main() {
	db := flag.String("db", "", "SQLite file")
	app := flag.String("app", "", "app")
	repo := flag.String("repository", "", "repository")
	file := flag.String("file", "", "export file")
	flag.Parse()
	ctx := context.Background()
	st, err := store.Open(ctx, *db)
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(2)
	}
	defer st.Close()
	f, err := os.Open(*file)
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(2)
	}
	defer f.Close()
	var res result
	w0 := proc("io", "wchar:")
	b, err := build.Import(ctx, st, bufio.NewReader(f), *app, *repo, registry.Options{Insecure: true}, nil)
	res.Written = proc("io", "wchar:") - w0
	res.PeakRSS = proc("status", "VmHWM:") << 10 // kB
	if err != nil {
		res.Error = err.Error()
	} else {
		res.Build, res.Release = b.ID, b.Release
	}
	json.NewEncoder(os.Stdout).Encode(res)
}

// proc returns the number after key in /proc/self/<file>.
func proc(file, key string) int64 {
	data, err := os.ReadFile("/proc/self/" + file)
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(2)
	}
	for _, l := range bytes.Split(data, []byte("\n")) {
		if v, ok := strings.CutPrefix(string(l), key); ok {
			n, err := strconv.ParseInt(strings.TrimSuffix(strings.TrimSpace(v), " kB"), 10, 64)
			if err == nil {
				return n
			}
		}
	}
	fmt.Fprintf(os.Stderr, "no %s in /proc/self/%s\n", key, file)
	os.Exit(2)
	return 0
}

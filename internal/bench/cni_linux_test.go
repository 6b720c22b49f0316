package bench

import (
	"bytes"
	"context"
	"io"
	"strings"
	"testing"
	"time"
)

func TestMedianRatios(t *testing.T) {
	ms := func(n int) time.Duration { return time.Duration(n) * time.Millisecond }
	var rs []Result
	// weft's p50 and the baseline's, per run, at concurrency 20 (and one
	// run at concurrency 1 that must not mix in).
	for i, pair := range [][2]int{{40, 100}, {60, 100}, {45, 100}, {90, 100}} {
		rs = append(rs,
			Result{Run: i + 1, Plugin: "weft-cni", Concurrency: 20, P50: ms(pair[0]), P99: ms(2 * pair[0])},
			Result{Run: i + 1, Plugin: "bridge+host-local", Concurrency: 20, P50: ms(pair[1]), P99: ms(pair[1])})
	}
	rs = append(rs, Result{Run: 1, Plugin: "weft-cni", Concurrency: 1, P50: ms(10), P99: ms(10)},
		Result{Run: 1, Plugin: "bridge+host-local", Concurrency: 1, P50: ms(50), P99: ms(50)})
	p50, p99 := ratios(rs, 20)
	if len(p50) != 4 || len(p99) != 4 {
		t.Fatalf("ratios: %v %v", p50, p99)
	}
	if got := median(p50); got != 0.525 {
		t.Errorf("median p50 ratio %v, want 0.525 (of 0.40 0.45 0.60 0.90)", got)
	}
	if got := median([]float64{3, 1, 2}); got != 2 {
		t.Errorf("median of 3 1 2: %v", got)
	}
	var out bytes.Buffer
	reportMedians(&out, rs, []int{1, 20})
	for _, want := range []string{
		"concurrency 1   p50 0.20  p99 0.20   (p50 of each run: 0.20)",
		"concurrency 20  p50 0.53  p99 1.05   (p50 of each run: 0.40 0.60 0.45 0.90)",
	} {
		if !strings.Contains(out.String(), want) {
			t.Errorf("report lacks %q:\n%s", want, out.String())
		}
	}
}

// --help answers with the usage and exit status 0, lists every flag of
// cni, and leaves out the driver's internal flags; bad use exits 2.
func TestMainUsage(t *testing.T) {
	var out, errOut bytes.Buffer
	if code := Main(context.Background(), []string{"--help"}, &out, &errOut); code != 0 || !strings.HasPrefix(out.String(), "Usage: weft-bench cni") {
		t.Errorf("weft-bench --help: exit %d, stdout %q", code, out.String())
	}
	out.Reset()
	if code := Main(context.Background(), []string{"cni", "--help"}, &out, &errOut); code != 0 {
		t.Errorf("weft-bench cni --help: exit %d", code)
	}
	help := errOut.String()
	for _, f := range []string{"bin-dir", "baseline-dir", "iterations", "runs", "concurrency", "spares", "out", "log-level", "keep-logs"} {
		if !strings.Contains(help, "  -"+f+" ") && !strings.Contains(help, "  -"+f+"\n") {
			t.Errorf("weft-bench cni --help lacks -%s:\n%s", f, help)
		}
		if !strings.Contains(usage, "--"+f) {
			t.Errorf("the usage line lacks --%s:\n%s", f, usage)
		}
	}
	for _, f := range []string{"agent-socket", "data-dir", "daemon-pids"} {
		if strings.Contains(help, "-"+f) {
			t.Errorf("weft-bench cni --help shows the internal -%s:\n%s", f, help)
		}
	}
	for _, args := range [][]string{nil, {"latency"}, {"cni", "--iterations", "0"}, {"cni", "--concurrency", "1,x"}, {"cni", "extra"}, {"cni", "--agent-socket", "/x"}} {
		if code := Main(context.Background(), args, io.Discard, io.Discard); code != 2 {
			t.Errorf("weft-bench %q: exit %d, want 2", args, code)
		}
	}
}
